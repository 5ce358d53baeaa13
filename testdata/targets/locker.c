/* locker: after a line on stdin, locks two mutexes known numbers of times
 * (locker N1 N2 N3): main locks m1 and m2 once each from first_site(), then
 * thread A locks m1 N1 times and m2 N2 times from worker_a(), thread B locks
 * m1 N3 times from worker_b(). Prints "mutex m1 0xADDR", "mutex m2 0xADDR",
 * "locks m1 <1+N1+N3>", "locks m2 <1+N2>" and "calls <all locks>", then
 * stays alive until its stdin is closed, so that a tracer can still read its
 * maps. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static pthread_mutex_t m1 = PTHREAD_MUTEX_INITIALIZER, m2 = PTHREAD_MUTEX_INITIALIZER;
static long n1 = 100, n2 = 50, n3 = 70;
static volatile long shared;

__attribute__((noinline)) void first_site(void) {
	pthread_mutex_lock(&m1);
	shared++;
	pthread_mutex_unlock(&m1);
	pthread_mutex_lock(&m2);
	shared++;
	pthread_mutex_unlock(&m2);
}

__attribute__((noinline)) static void *worker_a(void *arg) {
	(void)arg;
	for (long i = 0; i < n1; i++) {
		pthread_mutex_lock(&m1);
		shared++;
		pthread_mutex_unlock(&m1);
	}
	for (long i = 0; i < n2; i++) {
		pthread_mutex_lock(&m2);
		shared++;
		pthread_mutex_unlock(&m2);
	}
	return NULL;
}

__attribute__((noinline)) static void *worker_b(void *arg) {
	(void)arg;
	for (long i = 0; i < n3; i++) {
		pthread_mutex_lock(&m1);
		shared++;
		pthread_mutex_unlock(&m1);
	}
	return NULL;
}

int main(int argc, char **argv) {
	if (argc > 1)
		n1 = atol(argv[1]);
	if (argc > 2)
		n2 = atol(argv[2]);
	if (argc > 3)
		n3 = atol(argv[3]);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready %d\n", getpid());
	getchar();
	first_site();
	pthread_t a, b;
	pthread_create(&a, NULL, worker_a, NULL);
	pthread_create(&b, NULL, worker_b, NULL);
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	printf("mutex m1 %p\nmutex m2 %p\n", (void *)&m1, (void *)&m2);
	printf("locks m1 %ld\nlocks m2 %ld\n", 1 + n1 + n3, 1 + n2);
	printf("calls %ld\n", 2 + n1 + n2 + n3);
	while (getchar() != EOF)
		;
	return 0;
}
