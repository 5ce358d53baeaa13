/* mallocs: after a line on stdin, calls malloc N times with the sizes given
 * in turn (mallocs N SIZE...), frees every block of an even index right away
 * and keeps the others to the end (never freed), then prints what it did:
 * "mallocs N", "frees F", "bytes B" and "calls N". Its stdio buffers are
 * allocated before the go line (first printf, first getchar), so these are
 * all the malloc and free calls it makes once released. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
	long n = argc > 1 ? atol(argv[1]) : 1000;
	int nsizes = argc > 2 ? argc - 2 : 1;
	size_t sizes[64];
	long mallocs = 0, frees = 0;
	unsigned long long bytes = 0;
	if (nsizes > 64)
		nsizes = 64;
	for (int i = 0; i < nsizes; i++)
		sizes[i] = argc > 2 ? (size_t)atol(argv[i + 2]) : 4242;
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready %d\n", getpid());
	getchar();
	void **kept = calloc((size_t)n + 1, sizeof(void *)); /* calloc: not malloc */
	for (long i = 0; i < n; i++) {
		size_t size = sizes[i % nsizes];
		void *p = malloc(size);
		mallocs++;
		bytes += size;
		__asm__ volatile("" : : "r"(p) : "memory");
		if (i % 2 == 0) {
			free(p);
			frees++;
		} else {
			kept[i] = p;
		}
	}
	printf("mallocs %ld\nfrees %ld\nbytes %llu\ncalls %ld\n", mallocs, frees, bytes, mallocs);
	return 0;
}
