/* cbrtcaller: calls cbrt() from libm a known number of times.
 *
 *   cbrtcaller [N]
 *
 * Built against a private copy of the system's libm.so.6, found through
 * its DT_RUNPATH (see internal/targets, variant "privlib": DIR/libm-private): the library a
 * bare name "libm.so.6" must find in this process is that copy, not the
 * one in ld.so.cache. It prints "ready <pid>" and the path of the libm it
 * loaded ("libm <path>"), waits for a line on stdin, calls cbrt N times
 * and prints "calls <N>".
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile double sink;

static int find_libm(struct dl_phdr_info *info, size_t size, void *data) {
	(void)size;
	if (strstr(info->dlpi_name, "libm.so.6"))
		*(const char **)data = info->dlpi_name;
	return 0;
}

int main(int argc, char **argv) {
	long n = argc > 1 ? atol(argv[1]) : 100;
	const char *libm = "?";
	volatile double x = 27.0;
	setvbuf(stdout, NULL, _IOLBF, 0);
	dl_iterate_phdr(find_libm, &libm);
	printf("ready %d\n", getpid());
	printf("libm %s\n", libm);
	getchar();
	long calls = 0;
	for (long i = 0; i < n; i++) {
		sink = cbrt(x + (double)i);
		calls++;
	}
	printf("calls %ld\n", calls);
	return 0;
}
