package probe

import (
	"github.com/uprobectl/uprobectl/internal/targets"

	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// TestParseSpecCpp: how a probe word with a C++ name splits into PATH and
// SYMBOL, and where '+' and '%' belong.
func TestParseSpecCpp(t *testing.T) {
	for _, tc := range []struct {
		name string
		word string
		want Spec // Raw and Args are not compared
	}{
		{"qualified", "./app:ns::Class::method(int)", Spec{Path: "./app", Symbol: "ns::Class::method(int)"}},
		{"two parameters, no space", "./app:ns::f(int,int)", Spec{Path: "./app", Symbol: "ns::f(int,int)"}},
		{"glob over a template", "./app:*ns::twice<*", Spec{Path: "./app", Symbol: "*ns::twice<*"}},
		{"library name", "libstdc++.so.6:std::string", Spec{Path: "libstdc++.so.6", Symbol: "std::string"}},
		{"directory with a colon", "/opt/a:b/app:ns::f(int)", Spec{Path: "/opt/a:b/app", Symbol: "ns::f(int)"}},
		{"global scope", "./app:::f()", Spec{Path: "./app", Symbol: "::f()"}},
		{"abi tag keeps its colon", `./app:ns::f\[abi:cxx11\]()`, Spec{Path: "./app", Symbol: `ns::f\[abi:cxx11\]()`}},
		{"return", "./app:ns::f(int)%return", Spec{Path: "./app", Symbol: "ns::f(int)", Return: true}},
		{"offset", "./app:ns::f(int)+0x8", Spec{Path: "./app", Symbol: "ns::f(int)", SymbolOffset: 8}},
		{"operator+", "./app:ns::operator+(ns::Vec,ns::Vec)", Spec{Path: "./app", Symbol: "ns::operator+(ns::Vec,ns::Vec)"}},
		{"operator+ bare", "./app:ns::operator+", Spec{Path: "./app", Symbol: "ns::operator+"}},
		{"operator++", "./app:ns::It::operator++", Spec{Path: "./app", Symbol: "ns::It::operator++"}},
		{"operator+=", "./app:ns::V::operator+=(int)", Spec{Path: "./app", Symbol: "ns::V::operator+=(int)"}},
		{"operator+ at an offset", "./app:ns::operator++0x10", Spec{Path: "./app", Symbol: "ns::operator+", SymbolOffset: 0x10}},
		{"operator+= at an offset", "./app:ns::V::operator+=(int)+4", Spec{Path: "./app", Symbol: "ns::V::operator+=(int)", SymbolOffset: 4}},
		{"operator%", "./app:ns::operator%(A,A)", Spec{Path: "./app", Symbol: "ns::operator%(A,A)"}},
		{"operator% return", "./app:ns::operator%%return", Spec{Path: "./app", Symbol: "ns::operator%", Return: true}},
		{"destructor", "./app:ns::C::~C()", Spec{Path: "./app", Symbol: "ns::C::~C()"}},
		{"rust", "./app:mycrate::foo", Spec{Path: "./app", Symbol: "mycrate::foo"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseSpec(tc.word)
			if err != nil {
				t.Fatal(err)
			}
			got.Raw, got.Args = "", nil
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
	t.Run("fetch args after a C++ name", func(t *testing.T) {
		got, err := ParseSpec("./app:ns::f(int,int) a=arg1:s32 b=arg2:s32")
		if err != nil {
			t.Fatal(err)
		}
		if got.Symbol != "ns::f(int,int)" || len(got.Args) != 2 {
			t.Errorf("got %+v", got)
		}
	})
	for _, tc := range []struct{ word, msg string }{
		{"./app::f", "missing ':'"},
		{"./app:ns::f(int)+", "missing number"},
		{"./app:ns::f(int)+xyz", "not a number"},
		{"./app:ns::f(int)%entry", `unknown suffix "%entry"`},
		{"./app:ns::operator/(A,A)", "contains '/'"},
	} {
		t.Run("error "+tc.word, func(t *testing.T) {
			_, err := ParseSpec(tc.word)
			if !errors.Is(err, ErrBadSpec) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want ErrBadSpec containing %q", err, tc.msg)
			}
		})
	}
}

func TestDemangleNames(t *testing.T) {
	for _, tc := range []struct {
		mangled string
		full    string
		forms   demangledNames
	}{
		{"_ZN2ns5Class6methodEi", "ns::Class::method(int)",
			demangledNames{"ns::Class::method(int)", "ns::Class::method(int)", "ns::Class::method"}},
		{"_ZN2ns5Class6methodEii", "ns::Class::method(int, int)",
			demangledNames{"ns::Class::method(int,int)", "ns::Class::method(int,int)", "ns::Class::method"}},
		{"_ZN2ns5twiceIiEET_S1_", "int ns::twice<int>(int)",
			demangledNames{"intns::twice<int>(int)", "ns::twice<int>(int)", "ns::twice<int>"}},
		{"_ZN2ns5inner4bumpEj", "ns::inner::bump(unsigned int)",
			demangledNames{"ns::inner::bump(unsignedint)", "ns::inner::bump(unsignedint)", "ns::inner::bump"}},
		{"_ZN2nsplENS_3VecES0_", "ns::operator+(ns::Vec, ns::Vec)",
			demangledNames{"ns::operator+(ns::Vec,ns::Vec)", "ns::operator+(ns::Vec,ns::Vec)", "ns::operator+"}},
		{"_ZNKSt6vectorIiSaIiEE4sizeEv", "std::vector<int, std::allocator<int> >::size() const",
			demangledNames{"std::vector<int,std::allocator<int>>::size()const", "std::vector<int,std::allocator<int>>::size()const", "std::vector<int,std::allocator<int>>::size"}},
		{"_ZN2ns1fEi.cold", "ns::f(int) [clone .cold]",
			demangledNames{"ns::f(int)[clone.cold]", "ns::f(int)[clone.cold]", ""}},
		{"_ZN4core3fmt5write17h0123456789abcdefE", "core::fmt::write",
			demangledNames{"core::fmt::write", "core::fmt::write", "core::fmt::write"}},
		{"_RNvCs1234_7mycrate3foo", "mycrate::foo", demangledNames{"mycrate::foo", "mycrate::foo", "mycrate::foo"}},
		{"malloc", "", demangledNames{}},
		{"main.main", "", demangledNames{}},
		{"_Znotmangled", "", demangledNames{}},
		{"_Rfoo", "", demangledNames{}},
	} {
		t.Run(tc.mangled, func(t *testing.T) {
			full, forms := demangleNames(tc.mangled)
			if full != tc.full || forms != tc.forms {
				t.Errorf("got %q %+v\nwant %q %+v", full, forms, tc.full, tc.forms)
			}
			if Demangle(tc.mangled) != tc.full {
				t.Errorf("Demangle = %q", Demangle(tc.mangled))
			}
		})
	}
}

// cppSymbols are the functions of a C++ file, with aliases and a plain C
// function, as Symbols lists them.
func cppSymbols() []Symbol {
	var syms []Symbol
	for i, name := range []string{
		"_ZN2ns5Class6methodEi", "_ZN2ns5Class6methodEd", "_ZN2ns5Class6methodEii",
		"_ZN2ns5twiceIiEET_S1_", "_ZN2ns5twiceIlEET_S1_", "_ZN2ns5inner4bumpEj",
		"_ZN2nsplENS_3VecES0_", "_ZN2nsdvENS_3VecES0_", "_ZN2ns1fEi", "_ZN2ns1fEi.cold",
		"foo", "_Z3fooi", "net/http.(*conn).serve",
	} {
		s := Symbol{Name: name, Offset: uint64(0x1000 + 0x100*i), Size: 0x40}
		s.Demangled, s.demangled = demangleNames(name)
		syms = append(syms, s)
	}
	return syms
}

func TestMatchSymbolsDemangled(t *testing.T) {
	syms := cppSymbols()
	for _, tc := range []struct {
		want string
		glob bool
		got  []string // ELF names
	}{
		{"ns::Class::method(int)", false, []string{"_ZN2ns5Class6methodEi"}},
		{"ns::Class::method(int,int)", false, []string{"_ZN2ns5Class6methodEii"}},
		{"ns::Class::method", false, []string{"_ZN2ns5Class6methodEi", "_ZN2ns5Class6methodEd", "_ZN2ns5Class6methodEii"}},
		{"ns::twice<int>(int)", false, []string{"_ZN2ns5twiceIiEET_S1_"}},
		{"intns::twice<int>(int)", false, []string{"_ZN2ns5twiceIiEET_S1_"}},
		{"ns::twice<long>", false, []string{"_ZN2ns5twiceIlEET_S1_"}},
		{"ns::inner::bump(unsignedint)", false, []string{"_ZN2ns5inner4bumpEj"}},
		{"ns::operator+(ns::Vec,ns::Vec)", false, []string{"_ZN2nsplENS_3VecES0_"}},
		{"_ZN2ns5Class6methodEi", false, []string{"_ZN2ns5Class6methodEi"}},
		{"ns::f", false, []string{"_ZN2ns1fEi"}}, // not the .cold part
		{"ns::f(int)", false, []string{"_ZN2ns1fEi"}},
		{"foo", false, []string{"foo"}}, // an ELF name first
		{"foo(int)", false, []string{"_Z3fooi"}},
		{"*ns::twice<*", true, []string{"_ZN2ns5twiceIiEET_S1_", "_ZN2ns5twiceIlEET_S1_"}},
		{"ns::Class::method(*)", true, []string{"_ZN2ns5Class6methodEi", "_ZN2ns5Class6methodEd", "_ZN2ns5Class6methodEii"}},
		{"ns::Class::*(int,*", true, []string{"_ZN2ns5Class6methodEii"}},
		{"ns::f*", true, []string{"_ZN2ns1fEi", "_ZN2ns1fEi.cold"}},
		{"ns::operator?(*", true, []string{"_ZN2nsplENS_3VecES0_", "_ZN2nsdvENS_3VecES0_"}}, // '?' matches the '/' of operator/
		{"_ZN2ns5twice*", true, []string{"_ZN2ns5twiceIiEET_S1_", "_ZN2ns5twiceIlEET_S1_"}},
		{"net/http.*", true, []string{"net/http.(*conn).serve"}},
		{"*conn*", true, []string{"net/http.(*conn).serve"}},
		{"ns::nothing", false, nil},
	} {
		t.Run(tc.want, func(t *testing.T) {
			var got []string
			for _, s := range matchSymbols(syms, tc.want, tc.glob) {
				got = append(got, s.Name)
			}
			if !slices.Equal(got, tc.got) {
				t.Errorf("got %q, want %q", got, tc.got)
			}
		})
	}
	// What `uprobectl symbols PATH GLOB` uses: spaces in the pattern are dropped.
	for _, s := range syms {
		if s.Name == "_ZN2ns5Class6methodEii" != s.MatchesGlob("ns::Class::method(int, int)") {
			t.Errorf("MatchesGlob(%q) wrong for %s", "ns::Class::method(int, int)", s.Name)
		}
	}
}

func TestEventNamesDemangled(t *testing.T) {
	spec := &Spec{}
	targets := []Target{
		{Spec: spec, Symbol: "_ZN2ns5Class6methodEi"},
		{Spec: spec, Symbol: "_ZN2ns5twiceIiEET_S1_", Return: true},
		{Spec: spec, Symbol: "_ZN2nsplENS_3VecES0_"},
		{Spec: spec, Symbol: "_ZN2ns5Class6methodEi"},
	}
	AssignEventNames(targets)
	want := []string{"ns_Class_method_int", "ns_twice_int_int__return", "ns_operator_ns_Vec_ns_Vec", "ns_Class_method_int_2"}
	for i, tgt := range targets {
		if tgt.Event != want[i] {
			t.Errorf("%s: event %q, want %q", tgt.Symbol, tgt.Event, want[i])
		}
	}
}

// TestResolveCpp resolves demangled names and globs in a real C++ file
// (testdata/targets/cpptarget.cpp) and checks them against its symbols.
func TestResolveCpp(t *testing.T) {
	gxx := targets.NeedTool(t, "g++", "g++")
	bin := filepath.Join(t.TempDir(), "cpptarget")
	if out, err := exec.Command(gxx, "-O0", "-o", bin, filepath.Join("..", "testdata", "targets", "cpptarget.cpp")).CombinedOutput(); err != nil {
		t.Fatalf("g++: %v\n%s", err, out)
	}
	syms, err := Symbols(bin)
	if err != nil {
		t.Fatal(err)
	}
	offsets := map[string]uint64{} // demangled -> offset
	for _, s := range syms {
		if s.Demangled != "" {
			offsets[s.Demangled] = s.Offset
		}
	}
	for _, tc := range []struct {
		word string
		want []string // demangled names, in offset order
	}{
		{":ns::Class::method(int)", []string{"ns::Class::method(int)"}},
		{":ns::Class::method(int,int)", []string{"ns::Class::method(int, int)"}},
		{":ns::inner::bump(unsignedint)", []string{"ns::inner::bump(unsigned int)"}},
		{":*ns::twice<*", []string{"int ns::twice<int>(int)", "long ns::twice<long>(long)"}},
		{":ns::twice<long>(long)", []string{"long ns::twice<long>(long)"}},
		{":ns::operator+(ns::Vec,ns::Vec)", []string{"ns::operator+(ns::Vec, ns::Vec)"}},
		{":ns::Class::method", []string{"ns::Class::method(int)", "ns::Class::method(double)", "ns::Class::method(int, int)"}},
		{":_ZN2ns5Class6methodEd", []string{"ns::Class::method(double)"}},
	} {
		t.Run(tc.word, func(t *testing.T) {
			spec, err := ParseSpec(bin + tc.word)
			if err != nil {
				t.Fatal(err)
			}
			targets, err := Resolve(spec, ResolveOptions{})
			if err != nil {
				t.Fatal(err)
			}
			want := slices.Clone(tc.want)
			slices.SortFunc(want, func(a, b string) int { return int(offsets[a]) - int(offsets[b]) })
			var got []string
			for _, tgt := range targets {
				got = append(got, tgt.Demangled)
				if tgt.Offset != offsets[tgt.Demangled] || tgt.Demangled != Demangle(tgt.Symbol) {
					t.Errorf("%s (%s) at 0x%x, symbols say 0x%x", tgt.Demangled, tgt.Symbol, tgt.Offset, offsets[tgt.Demangled])
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("got %q, want %q", got, want)
			}
		})
	}
	spec, _ := ParseSpec(bin + ":ns::Class::nothing(int)")
	if _, err := Resolve(spec, ResolveOptions{}); !errors.Is(err, ErrSymbolNotFound) {
		t.Errorf("unknown demangled name: got %v, want ErrSymbolNotFound", err)
	}
}

// TestResolveLibrariesBare: a bare name in the default scope means, beside
// what the loader finds, every file of that name that a process maps; with
// a pid or a program only the one that process uses.
func TestResolveLibrariesBare(t *testing.T) {
	fx := testFixtures(t)
	// A second copy, named as old glibc names its files: the maps show
	// libtarget-1.0.so, its soname is libtarget.so.1.
	other := t.TempDir()
	data, err := os.ReadFile(fx.lib)
	if err != nil {
		t.Fatal(err)
	}
	copyPath := filepath.Join(other, "libtarget-1.0.so")
	if err := os.WriteFile(copyPath, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("libtarget-1.0.so", filepath.Join(other, "libtarget.so.1")); err != nil {
		t.Fatal(err)
	}
	pid := startUser(t)
	pidOther := startUser(t, "LD_LIBRARY_PATH="+other)
	clearMappedCache()

	// The loader knows neither (no cache entry, no standard directory):
	// both come from the processes' maps, sorted by path.
	want := []string{fx.lib, copyPath}
	slices.Sort(want)
	got, err := ResolveLibraries("libtarget.so.1", ResolveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("default scope: got %q, want %q", got, want)
	}
	spec, err := ParseSpec("libtarget.so.1:lt_api")
	if err != nil {
		t.Fatal(err)
	}
	targets, err := Resolve(spec, ResolveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(targets) != 2 || targets[0].Path == targets[1].Path || targets[0].Spec != targets[1].Spec || targets[0].File == targets[1].File {
		t.Errorf("want one target in each file, sharing one Spec: %+v", targets)
	}
	// A symbol missing from one of them names the files.
	spec, _ = ParseSpec("libtarget.so.1:no_such_function")
	if _, err := Resolve(spec, ResolveOptions{}); !errors.Is(err, ErrSymbolNotFound) || !strings.Contains(err.Error(), "one of the 2 files named libtarget.so.1") {
		t.Errorf("got %v, want ErrSymbolNotFound naming both files", err)
	}

	for _, tc := range []struct {
		name string
		lib  string
		opts ResolveOptions
		want string
	}{
		{"pid: its maps", "libtarget.so.1", ResolveOptions{PID: pid}, fx.lib},
		{"other pid: its maps", "libtarget.so.1", ResolveOptions{PID: pidOther}, copyPath},
		{"program: its RUNPATH", "libtarget.so.1", ResolveOptions{Program: fx.user}, fx.lib},
		{"program: short name through its RUNPATH", "libtarget", ResolveOptions{Program: fx.user}, fx.lib},
		{"program: its own name", "user", ResolveOptions{Program: fx.user}, fx.user},
		{"program: libc from the cache", "libc.so.6", ResolveOptions{Program: fx.user}, libcPath(t)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ResolveLibraries(tc.lib, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, []string{tc.want}) {
				t.Errorf("got %q, want %s", got, tc.want)
			}
		})
	}
	t.Run("program: LD_LIBRARY_PATH before RUNPATH", func(t *testing.T) {
		t.Setenv("LD_LIBRARY_PATH", other)
		got, err := ResolveLibrary("libtarget.so.1", ResolveOptions{Program: fx.user})
		if err != nil || got != copyPath {
			t.Errorf("got %q %v, want %s", got, err, copyPath)
		}
	})

	t.Run("libc: the loader's file only", func(t *testing.T) {
		// Every process maps libc.so.6: one file, the loader's.
		got, err := ResolveLibraries("libc.so.6", ResolveOptions{})
		if err != nil || !slices.Equal(got, []string{libcPath(t)}) {
			t.Errorf("got %q %v, want %s", got, err, libcPath(t))
		}
	})
	t.Run("not found anywhere", func(t *testing.T) {
		if _, err := ResolveLibraries("libnosuchlib.so.1", ResolveOptions{}); !errors.Is(err, ErrLibraryNotFound) {
			t.Errorf("got %v, want ErrLibraryNotFound", err)
		}
	})
}

func clearMappedCache() {
	mappedCache.Lock()
	mappedCache.files = nil
	mappedCache.Unlock()
}
