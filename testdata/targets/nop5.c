/* nop5: threads calling a function whose first instruction is a 5-byte nop.
 *
 *   nop5 CALLS [THREADS]      # default 2 threads; CALLS split between them
 *
 * On x86-64 since Linux 6.18 a uprobe on a 5-byte nop (0f 1f 44 00 00) is
 * optimized after its first hit into a call to a uprobe trampoline: no trap,
 * no single step, a fraction of the cost per hit. This is the fastest hit the
 * kernel can produce, so it is the workload that tests a tracer's ingest.
 *
 * nop5fn is written in a top-level asm block so that no compiler can change
 * it: the nop first, then an atomic increment of the call counter. It takes
 * the call's index in %rdi (arg1) and returns it, so fetch args can be used.
 *
 * The threads are created before "ready <pid>" is printed (they exist when a
 * tracer attaches) and start calling once a line is read on stdin. At the
 * end it prints "calls <N>", counted by nop5fn itself: the ground truth.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

long nop5_calls __attribute__((visibility("hidden")));

long nop5fn(long i);
__asm__(
	"	.text\n"
	"	.globl nop5fn\n"
	"	.type nop5fn, @function\n"
	"	.p2align 4\n"
	"nop5fn:\n"
	"	.byte 0x0f, 0x1f, 0x44, 0x00, 0x00\n" /* nopl 0x0(%rax,%rax,1) */
	"	lock incq nop5_calls(%rip)\n"
	"	movq %rdi, %rax\n"
	"	ret\n"
	"	.size nop5fn, .-nop5fn\n");

static long per_thread;
static pthread_barrier_t start;

static void *worker(void *arg) {
	long base = (long)arg;
	pthread_barrier_wait(&start);
	for (long i = 0; i < per_thread; i++)
		nop5fn(base + i);
	return NULL;
}

int main(int argc, char **argv) {
	long n = argc > 1 ? atol(argv[1]) : 1000;
	int threads = argc > 2 ? atoi(argv[2]) : 2;
	if (threads < 1)
		threads = 1;
	setvbuf(stdout, NULL, _IOLBF, 0);
	per_thread = n / threads;
	pthread_t t[threads];
	pthread_barrier_init(&start, NULL, threads + 1);
	for (int i = 0; i < threads; i++)
		pthread_create(&t[i], NULL, worker, (void *)(i * per_thread));
	printf("ready %d\n", getpid());
	getchar();
	pthread_barrier_wait(&start);
	for (int i = 0; i < threads; i++)
		pthread_join(t[i], NULL);
	printf("calls %ld\n", __atomic_load_n(&nop5_calls, __ATOMIC_RELAXED));
	return 0;
}
