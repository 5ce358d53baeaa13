/* Test target for the probe package: built by the tests with gcc, as a PIE,
 * a non-PIE and a stripped -rdynamic executable. Functions are noinline so
 * that each has its own symbol and body. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

volatile long tgt_sink;

__attribute__((noinline)) long tgt_mix(long a, long b, long c)
{
	long r = a * b + c;
	if (r > 1000)
		r = r / 7 + (long)strlen("mix");
	tgt_sink = r;
	return r;
}

__attribute__((noinline)) int tgt_add(int a, int b)
{
	return a + b;
}

/* A local (static) function: only in .symtab. */
static __attribute__((noinline, used)) int tgt_static(int x)
{
	tgt_sink = x;
	return x * 3;
}

/* A GNU indirect function: the symbol's address is the resolver. */
static int tgt_ifunc_impl(int x)
{
	return x + 1;
}

static int (*tgt_ifunc_resolver(void))(int)
{
	return tgt_ifunc_impl;
}

int tgt_ifunc(int x) __attribute__((ifunc("tgt_ifunc_resolver")));

/* Two names for one function. */
int tgt_alias(int a, int b) __attribute__((alias("tgt_add")));

int main(int argc, char **argv)
{
	long r = tgt_mix(argc, 2, 3) + tgt_add(argc, 1) + tgt_static(argc) + tgt_ifunc(argc);
	if (argc > 1 && strcmp(argv[1], "wait") == 0) {
		char buf[8];
		printf("ready\n");
		fflush(stdout);
		if (fgets(buf, sizeof buf, stdin) == NULL)
			r++;
	}
	printf("%ld\n", r);
	return 0;
}
