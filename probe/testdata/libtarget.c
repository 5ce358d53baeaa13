/* Test shared library for the probe package: built by the tests with
 * gcc -shared -fPIC -Wl,-soname,libtarget.so.1 -Wl,--version-script=libtarget.map.
 * lt_func has two versions: lt_func@LT_1.0 (hidden, old) and
 * lt_func@@LT_2.0 (default). */

volatile int lt_sink;

__attribute__((noinline)) int lt_api(int x)
{
	lt_sink = x;
	return x * 2 + 1;
}

int lt_api_alias(int x) __attribute__((alias("lt_api")));

__attribute__((noinline)) int lt_func_v1(int x)
{
	return x + 1;
}

__attribute__((noinline)) int lt_func_v2(int x)
{
	return x + 2;
}

__asm__(".symver lt_func_v1, lt_func@LT_1.0");
__asm__(".symver lt_func_v2, lt_func@@LT_2.0");
