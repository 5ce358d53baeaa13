/* churn: process churn for the task-finder.
 *
 *   churn SECONDS PROCS_PER_BATCH CALLS [THREADS]
 *
 * Until SECONDS elapse, the parent forks batches of PROCS_PER_BATCH
 * short-lived children. Each child creates THREADS threads (default 2) that
 * each call target_fn() CALLS times; then the child exits. Children end in
 * three ways, by their index in the batch, to stress the tracer's view of
 * exits:
 *   i % 3 == 0  the main thread joins its threads and exits;
 *   i % 3 == 1  the main thread calls pthread_exit() at once: the process
 *               lives on in its threads and ends when the last one does;
 *   i % 3 == 2  joins and exits, and the parent leaves it a zombie until the
 *               next batch has been reaped (or ~10 ms at the end).
 *
 * The ground truth: target_fn() itself adds 1 to a counter in shared memory
 * (MAP_SHARED, atomic add) that every child inherits, so the total is
 * exact whatever the scheduling. No thread is ever killed mid-call: every
 * process ends by exit() or its last thread's return.
 *
 * At the end it prints "processes N calls M" (N children forked and reaped,
 * M calls of target_fn). Exit 1 (with "error ..." on stderr) if a child
 * failed, 2 on bad usage.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static unsigned long *calls; /* shared with every child */
static long ncalls;

__attribute__((noinline)) void target_fn(void) {
	__atomic_add_fetch(calls, 1, __ATOMIC_RELAXED);
	__asm__ volatile("" ::: "memory");
}

static void *worker(void *arg) {
	(void)arg;
	for (long i = 0; i < ncalls; i++)
		target_fn();
	return NULL;
}

static double now(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void child(long idx, long threads) {
	pthread_t *t = calloc(threads ? threads : 1, sizeof *t);
	if (!t)
		_exit(3);
	for (long i = 0; i < threads; i++)
		if (pthread_create(&t[i], NULL, worker, NULL) != 0)
			_exit(4);
	if (idx % 3 == 1)
		pthread_exit(NULL); /* exit status 0 when the last thread returns */
	for (long i = 0; i < threads; i++)
		pthread_join(t[i], NULL);
	exit(0);
}

/* reap waits for pid; a failed child makes the whole run fail. */
static int reap(pid_t pid) {
	int status;
	if (waitpid(pid, &status, 0) < 0) {
		perror("waitpid");
		return 1;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "error: child %d: status 0x%x\n", (int)pid, status);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv) {
	if (argc < 4 || argc > 5) {
		fprintf(stderr, "usage: churn SECONDS PROCS_PER_BATCH CALLS [THREADS]\n");
		return 2;
	}
	double secs = atof(argv[1]);
	long batch = atol(argv[2]);
	ncalls = atol(argv[3]);
	long threads = argc > 4 ? atol(argv[4]) : 2;
	if (secs <= 0 || batch <= 0 || ncalls < 0 || threads < 1) {
		fprintf(stderr, "usage: churn SECONDS PROCS_PER_BATCH CALLS [THREADS]\n");
		return 2;
	}
	calls = mmap(NULL, sizeof *calls, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (calls == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	pid_t *pids = calloc(batch, sizeof *pids);
	pid_t *zombies = calloc(batch, sizeof *zombies); /* left unreaped for a batch */
	if (!pids || !zombies) {
		perror("calloc");
		return 1;
	}
	long nzombies = 0, processes = 0;
	int bad = 0;
	double end = now() + secs;
	while (now() < end && !bad) {
		long forked = 0;
		for (long i = 0; i < batch; i++) {
			pid_t pid = fork();
			if (pid < 0) {
				perror("fork");
				bad = 1;
				break;
			}
			if (pid == 0)
				child(i, threads);
			pids[forked++] = pid;
		}
		processes += forked;
		for (long i = 0; i < forked; i++)
			if (i % 3 != 2)
				bad |= reap(pids[i]);
		/* last batch's zombies have lived through a whole batch: reap them */
		for (long i = 0; i < nzombies; i++)
			bad |= reap(zombies[i]);
		nzombies = 0;
		for (long i = 0; i < forked; i++)
			if (i % 3 == 2)
				zombies[nzombies++] = pids[i];
	}
	if (nzombies > 0)
		usleep(10000);
	for (long i = 0; i < nzombies; i++)
		bad |= reap(zombies[i]);
	if (bad)
		return 1;
	printf("processes %ld calls %lu\n", processes, __atomic_load_n(calls, __ATOMIC_SEQ_CST));
	return 0;
}
