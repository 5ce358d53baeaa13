/* swapper: the hostile container process of the symlink-race test.
 *
 *   swapper LIB          hold: dlopen LIB, print "ready <pid>", wait for a
 *                        line on stdin, exit
 *   swapper LIB A B      swap: dlopen LIB, print "ready <pid>", then
 *                        exchange A and B with renameat2(RENAME_EXCHANGE)
 *                        in a tight loop until killed
 *
 * The test makes A a directory that holds the library and B a symlink to an
 * absolute path that, seen from the host's root, is another library: a
 * tracer that resolves the path in user space and lets the kernel walk it
 * again can be made to probe the host's file.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv) {
	if (argc != 2 && argc != 4) {
		fprintf(stderr, "usage: swapper LIB [A B]\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!dlopen(argv[1], RTLD_NOW)) {
		fprintf(stderr, "error: dlopen %s: %s\n", argv[1], dlerror());
		return 1;
	}
	printf("ready %d\n", getpid());
	if (argc == 2) {
		getchar();
		return 0;
	}
	for (;;) {
		if (renameat2(AT_FDCWD, argv[2], AT_FDCWD, argv[3], RENAME_EXCHANGE) != 0) {
			perror("renameat2");
			return 1;
		}
	}
}
