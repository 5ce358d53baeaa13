/* forker: forks children that call fn() right after fork returns.
 *
 *   forker CHILDREN CALLS_PER_CHILD
 *
 * It prints "ready <pid>" and waits for a line on stdin. Then it forks
 * CHILDREN children as fast as it can, all of them before waiting for any.
 * Each child calls fn(i, "child") CALLS_PER_CHILD times as the first thing
 * it does after fork returns, then _exit(0)s (exit status 1 if its own count
 * is off). The parent then calls fn(i, "parent") CALLS_PER_CHILD times,
 * waits for every child (any status other than exit 0 is an error: it
 * prints "error ..." on stderr and exits 1) and prints
 * "calls <CHILDREN*CALLS_PER_CHILD + CALLS_PER_CHILD>": the calls of fn()
 * made by all the processes together. fn() has the signature of counter.c's
 * so the same probe spec works for both.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile long calls;

__attribute__((noinline)) int fn(long i, const char *s) {
	__atomic_add_fetch(&calls, 1, __ATOMIC_RELAXED);
	return (int)(i % 1000) + s[0];
}

int main(int argc, char **argv) {
	long children = argc > 1 ? atol(argv[1]) : 10;
	long n = argc > 2 ? atol(argv[2]) : 100;
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (children < 0 || n < 0) {
		fprintf(stderr, "usage: forker CHILDREN CALLS_PER_CHILD\n");
		return 2;
	}
	pid_t *pids = calloc(children ? children : 1, sizeof *pids);
	if (!pids) {
		perror("calloc");
		return 1;
	}
	printf("ready %d\n", getpid());
	getchar();
	for (long c = 0; c < children; c++) {
		pid_t pid = fork();
		if (pid == 0) {
			for (long i = 0; i < n; i++)
				fn(i, "child");
			_exit(calls == n ? 0 : 1);
		}
		if (pid < 0) {
			perror("fork");
			return 1;
		}
		pids[c] = pid;
	}
	for (long i = 0; i < n; i++)
		fn(i, "parent");
	int bad = 0;
	for (long c = 0; c < children; c++) {
		int status;
		if (waitpid(pids[c], &status, 0) < 0) {
			perror("waitpid");
			return 1;
		}
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			fprintf(stderr, "error: child %d: status 0x%x\n", pids[c], status);
			bad = 1;
		}
	}
	if (bad)
		return 1;
	if (calls != n) {
		fprintf(stderr, "error: parent made %ld calls, want %ld\n", calls, n);
		return 1;
	}
	printf("calls %ld\n", children * n + calls);
	return 0;
}
