/* zombie: a child makes its calls, exits, and stays a zombie.
 *
 *   zombie CALLS
 *
 * It prints "ready <pid>" and waits for a line on stdin. Then it forks a
 * child that calls fn(i, "zombie") CALLS times and _exits at once; the
 * parent does not reap it: it prints "child <pid>" and "calls <CALLS>" (the
 * child's own count, passed back through a pipe) and waits for another
 * line (or EOF) on stdin before it reaps the child and exits. Until then
 * the child is a zombie: gone from every look at /proc but its state.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile long calls;

__attribute__((noinline)) int fn(long i, const char *s) {
	__atomic_add_fetch(&calls, 1, __ATOMIC_RELAXED);
	return (int)(i % 1000) + s[0];
}

int main(int argc, char **argv) {
	long n = argc > 1 ? atol(argv[1]) : 100000;
	char line[64];
	int fds[2];
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready %d\n", getpid());
	if (!fgets(line, sizeof line, stdin))
		return 1;
	if (pipe(fds) != 0)
		return 1;
	pid_t child = fork();
	if (child < 0)
		return 1;
	if (child == 0) {
		for (long i = 0; i < n; i++)
			fn(i, "zombie");
		long done = calls;
		write(fds[1], &done, sizeof done);
		_exit(0);
	}
	long done = 0;
	if (read(fds[0], &done, sizeof done) != sizeof done)
		return 1;
	printf("child %d\n", child);
	printf("calls %ld\n", done);
	fgets(line, sizeof line, stdin); /* reap only when told, or at EOF */
	int status;
	waitpid(child, &status, 0);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
