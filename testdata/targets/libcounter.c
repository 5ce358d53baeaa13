/* libcounter.so: a shared library whose lib_fn() counts its calls. */
static volatile long lib_calls;

__attribute__((noinline)) long lib_fn(long x) {
	lib_calls++;
	return x * 2;
}

long lib_calls_made(void) { return lib_calls; }
