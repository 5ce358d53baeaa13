/* A probe target for the kernel tests of package tracefs: the tests build it
 * with gcc and define uprobes on its functions' file offsets. It is never
 * run by those tests. */
#include <stdio.h>

struct pair {
	unsigned char bytes[4];
	const char *name;
};

int work(int a, long b, const char *s)
{
	return a + (int)b + s[0];
}

long fetch(const struct pair *p)
{
	return p->bytes[0] + (long)p->name[0];
}

int main(void)
{
	struct pair p = { { 1, 2, 3, 4 }, "pair" };
	printf("%d %ld\n", work(1, 2, "x"), fetch(&p));
	return 0;
}
