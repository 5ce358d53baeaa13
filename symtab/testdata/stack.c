// A call chain main -> b -> a -> leaf for the symtab tests: noinline keeps
// one symbol per function, whatever the optimization level.
#include <stdio.h>

__attribute__((noinline)) int leaf(int x) { return x * 3 + 1; }
__attribute__((noinline)) int a(int x) { return leaf(x) + 1; }
__attribute__((noinline)) int b(int x) { return a(x) + 2; }

int main(int argc, char **argv) {
	(void)argv;
	printf("%d\n", b(argc));
	return 0;
}
