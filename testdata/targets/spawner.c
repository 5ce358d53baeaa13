/* spawner: runs another target N times, one after the other.
 *
 *   spawner N PROGRAM [ARGS...]
 *
 * It prints "ready <pid>" and waits for a line on stdin. Then, N times in
 * sequence, it forks and execv()s PROGRAM with argv {PROGRAM, ARGS...},
 * giving the child a pipe as stdin (it writes "go\n" into it and closes it,
 * so a target that waits for its go line, like counter, runs at once) and a
 * pipe as stdout, which it reads to the end. Stderr is inherited. For each
 * child it prints "child <pid> calls <n>" from the child's own "calls <n>"
 * line; a child that exits other than with 0 or prints no calls line is an
 * error ("error ..." on stderr, exit 1). At the end it prints
 * "calls <sum>": the calls counted by all the children together.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static long run(char **argv, pid_t *pidp) {
	int in[2], out[2];
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0) {
		perror("pipe2");
		exit(1);
	}
	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		exit(1);
	}
	if (pid == 0) {
		signal(SIGPIPE, SIG_DFL);
		if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0)
			_exit(127);
		execv(argv[0], argv);
		fprintf(stderr, "error: execv %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	*pidp = pid;
	close(in[0]);
	close(out[1]);
	if (write(in[1], "go\n", 3) != 3 && errno != EPIPE) {
		perror("write");
		exit(1);
	}
	close(in[1]);
	FILE *f = fdopen(out[0], "r");
	if (!f) {
		perror("fdopen");
		exit(1);
	}
	long calls = -1;
	char *line = NULL;
	size_t cap = 0;
	while (getline(&line, &cap, f) >= 0) {
		if (strncmp(line, "calls ", 6) == 0)
			calls = atol(line + 6);
	}
	free(line);
	fclose(f);
	int status;
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			perror("waitpid");
			exit(1);
		}
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "error: child %d (%s): status 0x%x\n", pid, argv[0], status);
		exit(1);
	}
	if (calls < 0) {
		fprintf(stderr, "error: child %d (%s) printed no calls line\n", pid, argv[0]);
		exit(1);
	}
	return calls;
}

int main(int argc, char **argv) {
	if (argc < 3) {
		fprintf(stderr, "usage: spawner N PROGRAM [ARGS...]\n");
		return 2;
	}
	long n = atol(argv[1]);
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	printf("ready %d\n", getpid());
	getchar();
	long sum = 0;
	for (long k = 0; k < n; k++) {
		pid_t pid;
		long c = run(argv + 2, &pid);
		printf("child %d calls %ld\n", pid, c);
		sum += c;
	}
	printf("calls %ld\n", sum);
	return 0;
}
