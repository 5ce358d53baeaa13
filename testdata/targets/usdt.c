/* usdt: fires SystemTap SDT markers (<sys/sdt.h>, .note.stapsdt) a known
 * number of times and prints how many.
 *
 *   usdt CALLS [ROUNDS]
 *
 * It prints "ready <pid>"; then, ROUNDS times (1 by default), it waits for
 * a line on stdin and runs CALLS iterations; iteration i fires
 *   uprobectl:tick  (i, -i as an int, the constant 42)   no semaphore
 *   uprobectl:mem   (2i and -i, read from memory)        no semaphore
 *   uprobectl:global (i and -i, from global variables: sym(%rip) operands) no semaphore
 *   uprobectl:gated (i)                                   with a semaphore: only while it is raised
 * and after each round it prints "gated <N>": how many times the gated
 * marker's semaphore was seen raised in that round; at the end "calls
 * <CALLS>" (of one round).
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/sdt.h>

struct rec {
	long id;
	int neg;
};

/* Globals handed to a marker as memory operands ("m" for this marker
 * only; sdt.h's "nor" lets -O0 copy them to registers first): the note
 * then says usdt_last(%rip) and 8+usdt_rec(%rip), as in postgres's
 * NBuffers(%rip). */
volatile long usdt_last;
volatile struct rec usdt_rec;

__attribute__((noinline)) static void work(struct rec *r, long i) {
	int neg = (int)-i;
	DTRACE_PROBE3(uprobectl, tick, i, neg, 42);
	r->id = i * 2;
	r->neg = neg;
	DTRACE_PROBE2(uprobectl, mem, r->id, r->neg);
	usdt_last = i;
	usdt_rec.neg = neg;
#undef STAP_SDT_ARG_CONSTRAINT
#define STAP_SDT_ARG_CONSTRAINT m
	DTRACE_PROBE2(uprobectl, global, usdt_last, usdt_rec.neg);
#undef STAP_SDT_ARG_CONSTRAINT
#define STAP_SDT_ARG_CONSTRAINT nor
}

/* From here on markers name their semaphore in the note (sdt.h does it for
 * every marker of a file or for none; the ones above have none). */
volatile unsigned short uprobectl_gated_semaphore __attribute__((section(".probes")));
#undef _SDT_SEMAPHORE
#define _SDT_SEMAPHORE(p, n) _SDT_ASM_1(_SDT_ASM_ADDR p##_##n##_semaphore)

int main(int argc, char **argv) {
	long n = argc > 1 ? atol(argv[1]) : 1000;
	long rounds = argc > 2 ? atol(argv[2]) : 1;
	struct rec r;
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready %d\n", getpid());
	for (long round = 0; round < rounds; round++) {
		long gated = 0;
		int c;
		while ((c = getchar()) != '\n' && c != EOF)
			; /* one line a round */
		for (long i = 0; i < n; i++) {
			work(&r, i);
			if (uprobectl_gated_semaphore) {
				gated++;
				DTRACE_PROBE1(uprobectl, gated, i);
			}
		}
		printf("gated %ld\n", gated);
	}
	printf("calls %ld\n", n);
	return 0;
}
