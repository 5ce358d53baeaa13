/* cpptarget: C++ functions with known call counts, for probing by
 * demangled name: a namespace, a class with overloaded methods, a function
 * template with two instantiations, a nested namespace, an operator.
 *
 *   cpptarget [N]
 *
 * It prints "ready <pid>" and waits for a line on stdin before calling, so
 * a test can attach first. Then it calls
 *
 *   ns::Class::method(int)         N times
 *   ns::Class::method(double)      2N
 *   ns::Class::method(int, int)    3N
 *   int ns::twice<int>(int)        4N
 *   long ns::twice<long>(long)     5N
 *   ns::inner::bump(unsigned int)  6N
 *   ns::operator+(ns::Vec, ns::Vec) 7N
 *
 * and prints "calls <name> <count>" for each (the name as above, without
 * the return type), then "calls <total>": the ground truth.
 */
#include <cstdio>
#include <cstdlib>
#include <unistd.h>

static volatile long counts[7];

namespace ns {

struct Class {
	long sum = 0;
	__attribute__((noinline)) void method(int x) { counts[0]++; sum += x; }
	__attribute__((noinline)) void method(double x) { counts[1]++; sum += (long)x; }
	__attribute__((noinline)) void method(int a, int b) { counts[2]++; sum += a + b; }
};

template <typename T> __attribute__((noinline)) T twice(T x) {
	counts[sizeof(T) == sizeof(int) ? 3 : 4]++;
	return x + x;
}
template int twice<int>(int);
template long twice<long>(long);

namespace inner {
__attribute__((noinline)) unsigned int bump(unsigned int x) { counts[5]++; return x + 1; }
} // namespace inner

struct Vec {
	long x, y;
};
__attribute__((noinline)) Vec operator+(Vec a, Vec b) { counts[6]++; return Vec{a.x + b.x, a.y + b.y}; }

} // namespace ns

int main(int argc, char **argv) {
	long n = argc > 1 ? atol(argv[1]) : 10;
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready %d\n", getpid());
	getchar();
	ns::Class c;
	ns::Vec v{0, 0};
	long sink = 0;
	for (long i = 0; i < n; i++) {
		c.method((int)i);
		for (int k = 0; k < 2; k++)
			c.method((double)i);
		for (int k = 0; k < 3; k++)
			c.method((int)i, k);
		for (int k = 0; k < 4; k++)
			sink += ns::twice<int>((int)i);
		for (int k = 0; k < 5; k++)
			sink += ns::twice<long>(i);
		for (int k = 0; k < 6; k++)
			sink += ns::inner::bump((unsigned)k);
		for (int k = 0; k < 7; k++)
			v = v + ns::Vec{i, k};
	}
	static const char *names[7] = {
	    "ns::Class::method(int)",      "ns::Class::method(double)", "ns::Class::method(int, int)",
	    "ns::twice<int>(int)",         "ns::twice<long>(long)",     "ns::inner::bump(unsigned int)",
	    "ns::operator+(ns::Vec, ns::Vec)",
	};
	long total = 0;
	for (int i = 0; i < 7; i++) {
		printf("calls %s %ld\n", names[i], counts[i]);
		total += counts[i];
	}
	printf("calls %ld\n", total);
	return (int)((sink + c.sum + v.x + v.y) & 0); /* 0; uses the results */
}
