/* uselib: calls lib_fn() of libcounter.so CALLS times after a line on stdin,
 * then prints "calls <N>" as counted by the library itself. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

long lib_fn(long x);
long lib_calls_made(void);

int main(int argc, char **argv) {
	long n = argc > 1 ? atol(argv[1]) : 1000;
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready %d\n", getpid());
	getchar();
	for (long i = 0; i < n; i++)
		lib_fn(i);
	printf("calls %ld\n", lib_calls_made());
	return 0;
}
