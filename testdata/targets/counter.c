/* counter: calls fn() a known number of times and prints how many.
 *
 *   counter CALLS [THREADS]
 *
 * It prints "ready <pid>" and waits for a line on stdin before calling, so a
 * test can attach first. With THREADS > 1 the calls are split between that
 * many threads created before the wait (existing threads at attach time)
 * and as many created after it (new threads). Each call passes its index
 * and a string, so argument fetching can be checked. At the end it prints
 * "calls <N>": the ground truth a test compares with the hits it saw.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static volatile long calls;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_barrier_t start;

__attribute__((noinline)) int fn(long i, const char *s) {
	__atomic_add_fetch(&calls, 1, __ATOMIC_RELAXED);
	return (int)(i % 1000) + s[0];
}

static long per_thread;

static void *worker(void *arg) {
	long base = (long)arg;
	pthread_barrier_wait(&start);
	for (long i = 0; i < per_thread; i++)
		fn(base + i, "hello");
	return NULL;
}

int main(int argc, char **argv) {
	long n = argc > 1 ? atol(argv[1]) : 1000;
	int threads = argc > 2 ? atoi(argv[2]) : 1;
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (threads <= 1) {
		printf("ready %d\n", getpid());
		getchar();
		for (long i = 0; i < n; i++)
			fn(i, "hello");
	} else {
		/* threads before the wait, threads after: 2*threads in all */
		per_thread = n / (2 * threads);
		pthread_t t[2 * threads];
		pthread_barrier_init(&start, NULL, 2 * threads + 1);
		for (int i = 0; i < threads; i++)
			pthread_create(&t[i], NULL, worker, (void *)(long)(i * per_thread));
		printf("ready %d\n", getpid());
		getchar();
		for (int i = threads; i < 2 * threads; i++)
			pthread_create(&t[i], NULL, worker, (void *)(long)(i * per_thread));
		pthread_barrier_wait(&start);
		for (int i = 0; i < 2 * threads; i++)
			pthread_join(t[i], NULL);
	}
	(void)lock;
	printf("calls %ld\n", calls);
	return 0;
}
