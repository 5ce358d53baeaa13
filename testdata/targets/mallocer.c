/* mallocer: calls malloc(SIZE) CALLS times after a line on stdin, then
 * prints "calls <N>". Other allocations (stdio) use other sizes, so a test
 * can count the hits with size == SIZE. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
	long n = argc > 1 ? atol(argv[1]) : 1000;
	size_t size = argc > 2 ? (size_t)atol(argv[2]) : 4242;
	long calls = 0;
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready %d\n", getpid());
	getchar();
	for (long i = 0; i < n; i++) {
		void *p = malloc(size);
		calls++;
		__asm__ volatile("" : : "r"(p) : "memory");
		free(p);
	}
	printf("calls %ld\n", calls);
	return 0;
}
