/* libcounter2.so: two library functions, lib_a() and lib_b(), that count
 * only their calls with x >= 0. Calls with x < 0 (busy.c's warm-up) are not
 * counted, so a test counts only hits whose argument is >= 0. */
static volatile long a_calls, b_calls;

__attribute__((noinline)) long lib_a(long x) {
	if (x >= 0)
		__atomic_add_fetch(&a_calls, 1, __ATOMIC_RELAXED);
	return x * 2;
}

__attribute__((noinline)) long lib_b(long x) {
	if (x >= 0)
		__atomic_add_fetch(&b_calls, 1, __ATOMIC_RELAXED);
	return x * 3;
}

long lib_a_calls_made(void) { return a_calls; }
long lib_b_calls_made(void) { return b_calls; }
