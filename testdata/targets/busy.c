/* busy: calls the probed functions all the time, also while a tracer
 * attaches (the SystemTap case).
 *
 *   busy CALLS
 *
 * Before it prints "ready <pid>" it starts a thread that calls lib_a(-1)
 * and lib_b(-1) of libcounter2.so in a tight loop (uncounted: x = -1), and
 * waits until that loop runs. After the line on stdin it stops that thread
 * (atomic flag), joins it, then calls lib_a(i) and lib_b(i) alternately for
 * i in 0..CALLS-1. It prints "warmup <N>" (the number of lib_a(-1)+lib_b(-1)
 * calls of the warm-up, for information) and then "calls <N>" as counted by
 * the library (only x >= 0): 2*CALLS.
 */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

long lib_a(long x);
long lib_b(long x);
long lib_a_calls_made(void);
long lib_b_calls_made(void);

static int stop;
static long warmup;

static void *spin(void *arg) {
	(void)arg;
	while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE)) {
		lib_a(-1);
		lib_b(-1);
		__atomic_add_fetch(&warmup, 2, __ATOMIC_RELEASE);
	}
	return NULL;
}

int main(int argc, char **argv) {
	long n = argc > 1 ? atol(argv[1]) : 1000;
	setvbuf(stdout, NULL, _IOLBF, 0);
	pthread_t t;
	if (pthread_create(&t, NULL, spin, NULL) != 0) {
		perror("pthread_create");
		return 1;
	}
	while (__atomic_load_n(&warmup, __ATOMIC_ACQUIRE) == 0)
		sched_yield();
	printf("ready %d\n", getpid());
	getchar();
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	pthread_join(t, NULL);
	for (long i = 0; i < n; i++) {
		lib_a(i);
		lib_b(i);
	}
	printf("warmup %ld\n", warmup);
	printf("calls %ld\n", lib_a_calls_made() + lib_b_calls_made());
	return 0;
}
