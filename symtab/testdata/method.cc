// A C++ method for the symtab tests: its symbol is _ZN2ns1K1mEi.
namespace ns {
struct K {
	__attribute__((noinline)) int m(int);
};
int K::m(int x) { return x + 1; }
}  // namespace ns

int main(int argc, char **) {
	ns::K k;
	return k.m(argc) == 0;
}
