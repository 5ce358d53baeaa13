/* sleeper: after a line on stdin, two threads each call recurse(DEPTH) N
 * times (sleeper N DEPTH USEC); recurse calls itself down to depth 0, which
 * sleeps USEC microseconds, so every call of recurse lasts USEC and a bit
 * more, at every depth. The second thread starts USEC/2 after the first, so
 * that pairing entries and returns across threads would give wrong times.
 * Prints "calls <calls of recurse>". */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static long n = 20, usec = 3000;
static int depth = 3;

__attribute__((noinline)) int recurse(int d) {
	int r;
	if (d > 0)
		r = recurse(d - 1) + 1;
	else {
		usleep((useconds_t)usec);
		r = 0;
	}
	__asm__ volatile("" : : "r"(r) : "memory");
	return r;
}

static void *worker(void *arg) {
	if (arg)
		usleep((useconds_t)(usec / 2));
	for (long i = 0; i < n; i++)
		recurse(depth);
	return NULL;
}

int main(int argc, char **argv) {
	if (argc > 1)
		n = atol(argv[1]);
	if (argc > 2)
		depth = atoi(argv[2]);
	if (argc > 3)
		usec = atol(argv[3]);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready %d\n", getpid());
	getchar();
	pthread_t a, b;
	pthread_create(&a, NULL, worker, NULL);
	pthread_create(&b, NULL, worker, (void *)1);
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	printf("calls %ld\n", 2 * n * (depth + 1));
	return 0;
}
