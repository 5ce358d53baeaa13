/* stacks: calls leaf(key) along two call paths, a known number of times,
 * for the stack tests (build with frame pointers).
 *
 *   stacks [N]
 *
 * It prints "ready <pid>" and waits for a line on stdin. Then, for i in
 * 0..3N-1, with key = i % 5: when i % 3 == 2 it calls main→x→leaf(key)
 * (N calls), otherwise main→a→b→c→leaf(key) (2N calls). With N = 500 each
 * key is called 300 times; keys 0, 1, 3 and 4 are first seen on the a path,
 * key 2 on the x path. It prints "calls <3N>" at the end.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

volatile long sink;

__attribute__((noinline)) void leaf(long key) { sink += key; }
__attribute__((noinline)) void c(long key) { leaf(key); sink++; }
__attribute__((noinline)) void b(long key) { c(key); sink++; }
__attribute__((noinline)) void a(long key) { b(key); sink++; }
__attribute__((noinline)) void x(long key) { leaf(key); sink++; }

int main(int argc, char **argv) {
	long n = argc > 1 ? atol(argv[1]) : 500;
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready %d\n", getpid());
	int ch;
	while ((ch = getchar()) != '\n' && ch != EOF)
		;
	for (long i = 0; i < 3 * n; i++) {
		if (i % 3 == 2)
			x(i % 5);
		else
			a(i % 5);
	}
	printf("calls %ld\n", 3 * n);
	return 0;
}
