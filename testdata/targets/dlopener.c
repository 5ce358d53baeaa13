/* dlopener: loads a library only after the go line, then calls into it.
 *
 *   dlopener LIBPATH CALLS
 *
 * It prints "ready <pid>" and waits for a line on stdin. Only then does it
 * dlopen(LIBPATH, RTLD_NOW) (libcounter.so; the executable does not link
 * it), look up lib_fn and lib_calls_made, call lib_fn(i) CALLS times and
 * print "calls <N>" as counted by the library itself. A tracer attached
 * before the go line sees the library mapped only after it.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
	if (argc < 2) {
		fprintf(stderr, "usage: dlopener LIBPATH CALLS\n");
		return 2;
	}
	const char *path = argv[1];
	long n = argc > 2 ? atol(argv[2]) : 1000;
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready %d\n", getpid());
	getchar();
	void *h = dlopen(path, RTLD_NOW);
	if (!h) {
		fprintf(stderr, "error: dlopen %s: %s\n", path, dlerror());
		return 1;
	}
	long (*lib_fn)(long) = (long (*)(long))dlsym(h, "lib_fn");
	long (*lib_calls_made)(void) = (long (*)(void))dlsym(h, "lib_calls_made");
	if (!lib_fn || !lib_calls_made) {
		fprintf(stderr, "error: dlsym in %s: %s\n", path, dlerror());
		return 1;
	}
	for (long i = 0; i < n; i++)
		lib_fn(i);
	printf("calls %ld\n", lib_calls_made());
	return 0;
}
