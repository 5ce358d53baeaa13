/* usdt: fires SystemTap SDT markers (<sys/sdt.h>, .note.stapsdt) a known
 * number of times and prints how many.
 *
 *   usdt CALLS
 *
 * It prints "ready <pid>" and waits for a line on stdin, then runs CALLS
 * iterations; iteration i fires
 *   uprobectl:tick  (i, -i as an int, the constant 42)   no semaphore
 *   uprobectl:mem   (2i and -i, read from memory)        no semaphore
 *   uprobectl:gated (i)                                   with a semaphore: only while it is raised
 * and at the end it prints "calls <CALLS>" and "gated <N>": how many times
 * the gated marker's semaphore was seen raised.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/sdt.h>

struct rec {
	long id;
	int neg;
};

__attribute__((noinline)) static void work(struct rec *r, long i) {
	int neg = (int)-i;
	DTRACE_PROBE3(uprobectl, tick, i, neg, 42);
	r->id = i * 2;
	r->neg = neg;
	DTRACE_PROBE2(uprobectl, mem, r->id, r->neg);
}

/* From here on markers name their semaphore in the note (sdt.h does it for
 * every marker of a file or for none; the ones above have none). */
volatile unsigned short uprobectl_gated_semaphore __attribute__((section(".probes")));
#undef _SDT_SEMAPHORE
#define _SDT_SEMAPHORE(p, n) _SDT_ASM_1(_SDT_ASM_ADDR p##_##n##_semaphore)

int main(int argc, char **argv) {
	long n = argc > 1 ? atol(argv[1]) : 1000;
	long gated = 0;
	struct rec r;
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready %d\n", getpid());
	getchar();
	for (long i = 0; i < n; i++) {
		work(&r, i);
		if (uprobectl_gated_semaphore) {
			gated++;
			DTRACE_PROBE1(uprobectl, gated, i);
		}
	}
	printf("calls %ld\n", n);
	printf("gated %ld\n", gated);
	return 0;
}
