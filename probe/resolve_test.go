package probe

import (
	"errors"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// resolveWord parses and resolves a probe word.
func resolveWord(t *testing.T, word string, opts ResolveOptions) ([]Target, error) {
	t.Helper()
	spec, err := ParseSpec(word)
	if err != nil {
		t.Fatalf("ParseSpec(%q): %v", word, err)
	}
	return Resolve(spec, opts)
}

// offsetOf returns the file offset objdump -F gives for a label.
func offsetOf(t *testing.T, file, label string) uint64 {
	t.Helper()
	for _, f := range objdumpFunctions(t, file) {
		if f.label == label {
			return f.fileOff
		}
	}
	t.Fatalf("objdump shows no %s in %s", label, file)
	return 0
}

// readelfOffset computes a function's file offset from readelf alone.
func readelfOffset(t *testing.T, file, name string) uint64 {
	t.Helper()
	for _, f := range readelfFunctions(t, file) {
		if f.name == name {
			off, ok := segmentMath(readelfLoads(t, file), f.value)
			if !ok {
				t.Fatalf("%s: no segment", name)
			}
			return off
		}
	}
	t.Fatalf("readelf shows no %s in %s", name, file)
	return 0
}

func TestResolveSymbols(t *testing.T) {
	fx := testFixtures(t)
	libc := libcPath(t)
	for _, tc := range []struct {
		name    string
		word    string
		force   bool
		want    []string // symbols, in any order
		offsets []uint64 // for a single target, its offset (objdump -F or readelf)
	}{
		{"pie function", fx.pie + ":tgt_mix", false, []string{"tgt_mix"}, []uint64{offsetOf(t, fx.pie, "tgt_mix")}},
		{"no-pie function", fx.nopie + ":tgt_mix", false, []string{"tgt_mix"}, []uint64{offsetOf(t, fx.nopie, "tgt_mix")}},
		{"static function", fx.pie + ":tgt_static", false, []string{"tgt_static"}, []uint64{offsetOf(t, fx.pie, "tgt_static")}},
		{"stripped rdynamic", fx.rdynStrip + ":tgt_mix", false, []string{"tgt_mix"}, []uint64{offsetOf(t, fx.rdynamic, "tgt_mix")}},
		{"alias keeps the name asked for", fx.pie + ":tgt_alias", false, []string{"tgt_alias"}, []uint64{offsetOf(t, fx.pie, "tgt_add")}},
		{"glob: aliases give one probe", fx.pie + ":tgt_*", false,
			[]string{"tgt_mix", "tgt_ifunc_impl", "tgt_add", "tgt_static", "tgt_ifunc_resolver"}, nil},
		{"forced ifunc", fx.pie + ":tgt_ifunc", true, []string{"tgt_ifunc"}, nil},
		{"default version", fx.lib + ":lt_func", false, []string{"lt_func"}, []uint64{offsetOf(t, fx.lib, "lt_func@@LT_2.0")}},
		{"hidden version", fx.lib + ":lt_func@LT_1.0", false, []string{"lt_func"}, []uint64{offsetOf(t, fx.lib, "lt_func@LT_1.0")}},
		{"default version named", fx.lib + ":lt_func@@LT_2.0", false, []string{"lt_func"}, []uint64{offsetOf(t, fx.lib, "lt_func@@LT_2.0")}},
		{"library glob", fx.lib + ":lt_*", false, []string{"lt_api", "lt_func_v1", "lt_func"}, nil},
		{"libc malloc and its alias", "libc.so.6:malloc", false, []string{"malloc"}, []uint64{readelfOffset(t, libc, "malloc")}},
		{"libc glob *_malloc is __libc_malloc alone", "libc:*_malloc", false, []string{"__libc_malloc"}, nil},
		{"libc glob names malloc", "libc:*malloc", false, nil, nil},
		{"pthread glob", "libc.so.6:pthread_mutex_*lock", false, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			targets, err := resolveWord(t, tc.word, ResolveOptions{Force: tc.force})
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, tg := range targets {
				names = append(names, tg.Symbol)
			}
			// The order of functions is the compiler's; compare as sets.
			if tc.want != nil && !slices.Equal(slices.Sorted(slices.Values(names)), slices.Sorted(slices.Values(tc.want))) {
				t.Errorf("symbols %q, want %q", names, tc.want)
			}
			for i, off := range tc.offsets {
				if targets[i].Offset != off {
					t.Errorf("%s at 0x%x, objdump -F says 0x%x", names[i], targets[i].Offset, off)
				}
			}
			for i := 1; i < len(targets); i++ {
				if targets[i].Offset <= targets[i-1].Offset {
					t.Errorf("targets not in strictly increasing offset order: %q", names)
				}
			}
			if tc.name == "libc glob names malloc" && !slices.Contains(names, "malloc") {
				t.Errorf("glob *malloc: %q, want malloc named as such", names)
			}
		})
	}
}

// libcFunctionOracle computes, from readelf alone, the distinct offsets a
// glob should give on libc: defined FUNC symbols of .dynsym (IFUNCs are
// refused), hidden versions dropped when the name has a default one.
func libcFunctionOracle(t *testing.T, libc, glob string) map[uint64]bool {
	t.Helper()
	loads := readelfLoads(t, libc)
	type sym struct {
		name   string
		value  uint64
		hidden bool
		ifunc  bool
	}
	var syms []sym
	hasDefault := map[string]bool{}
	for _, line := range strings.Split(run(t, "readelf", "-W", "--dyn-syms", libc), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 || (f[3] != "FUNC" && f[3] != "IFUNC") || f[6] == "UND" {
			continue
		}
		value, _ := strconv.ParseUint(f[1], 16, 64)
		name, ver, _ := strings.Cut(f[7], "@")
		hidden := ver != "" && !strings.HasPrefix(ver, "@")
		if ok, _ := path.Match(glob, name); !ok || value == 0 {
			continue
		}
		syms = append(syms, sym{name, value, hidden, f[3] == "IFUNC"})
		if !hidden {
			hasDefault[name] = true
		}
	}
	offsets := map[uint64]bool{}
	for _, s := range syms {
		if s.ifunc || (s.hidden && hasDefault[s.name]) {
			continue
		}
		off, ok := segmentMath(loads, s.value)
		if !ok {
			t.Fatalf("%s: no segment", s.name)
		}
		offsets[off] = true
	}
	return offsets
}

func TestResolveLibcGlobs(t *testing.T) {
	libc := libcPath(t)
	for _, tc := range []struct {
		name     string
		glob     string
		atLeast  int
		mustHave []string
	}{
		{"mutex lock functions", "pthread_mutex_*lock", 3, []string{"pthread_mutex_lock", "pthread_mutex_unlock", "pthread_mutex_trylock"}},
		{"everything", "*", 500, []string{"malloc", "free", "pthread_create"}},
		{"str functions", "str*", 20, []string{"strerror", "strtol"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			targets, err := resolveWord(t, "libc.so.6:"+tc.glob, ResolveOptions{})
			if err != nil {
				t.Fatal(err)
			}
			want := libcFunctionOracle(t, libc, tc.glob)
			// Functions the kernel refuses (pthread_spin_lock's lock prefix)
			// are skipped by a glob and listed in Spec.Skipped.
			skipped := 0
			if len(targets) > 0 {
				skipped = len(targets[0].Spec.Skipped)
			}
			if len(targets) < tc.atLeast || len(targets)+skipped != len(want) {
				t.Fatalf("%d targets + %d skipped, readelf gives %d distinct offsets, want at least %d", len(targets), skipped, len(want), tc.atLeast)
			}
			seen := map[uint64]bool{}
			names := map[string]bool{}
			for _, tg := range targets {
				if seen[tg.Offset] {
					t.Fatalf("two probes at offset 0x%x", tg.Offset)
				}
				seen[tg.Offset] = true
				names[tg.Symbol] = true
				if !want[tg.Offset] {
					t.Errorf("%s at 0x%x: readelf has no such function offset", tg.Symbol, tg.Offset)
				}
				if tg.Path != libc {
					t.Fatalf("target path %s, want %s", tg.Path, libc)
				}
			}
			for _, n := range tc.mustHave {
				if !names[n] {
					t.Errorf("%s missing from the %d targets", n, len(targets))
				}
			}
		})
	}
}

func TestResolveErrors(t *testing.T) {
	fx := testFixtures(t)
	dir := t.TempDir()
	text := filepath.Join(dir, "x.txt")
	if err := os.WriteFile(text, []byte("not ELF\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A symlink with a plain name to a file whose name holds a newline: the
	// path the kernel would get must be refused.
	evilName := filepath.Join(dir, "pie\n-:uprobes")
	data, _ := os.ReadFile(fx.pie)
	if err := os.WriteFile(evilName, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(evilName, filepath.Join(dir, "innocent")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		word string
		want error
		msg  string
	}{
		{"unknown symbol", fx.pie + ":mallok", ErrSymbolNotFound,
			`symbol "mallok" not found in ` + fx.pie + ` (list them: uprobectl symbols ` + fx.pie + ` 'mall*')`},
		{"glob matching nothing", fx.pie + ":zz*", ErrSymbolNotFound, `no function matches "zz*" in ` + fx.pie},
		{"unknown version", fx.lib + ":lt_func@LT_9", ErrSymbolNotFound, "not found"},
		{"data symbol", fx.pie + ":tgt_sink", ErrSymbolNotFound, "not found"},
		{"stripped", fx.stripped + ":tgt_mix", ErrSymbolNotFound, "the file is stripped, so only its exported functions are known"},
		{"ifunc", fx.pie + ":tgt_ifunc", ErrIFunc, "tgt_ifunc in " + fx.pie + " is a GNU indirect function"},
		{"libc memcpy ifunc", "libc.so.6:memcpy", ErrIFunc, "pass --force to probe the resolver"},
		{"missing file", "/nope/x:fn", os.ErrNotExist, "/nope/x: no such file"},
		{"not ELF", text + ":fn", ErrNotELF, text + " is not an ELF file"},
		{"directory", dir + ":fn", ErrNotELF, dir + " is not a regular file"},
		{"unknown library", "libnope.so.1:fn", ErrLibraryNotFound, `library "libnope.so.1" not found`},
		{"resolved path with a newline", filepath.Join(dir, "innocent") + ":tgt_mix", ErrBadPath,
			`contains a newline (\n) at position`},
		{"symbol offset out of the code", fx.pie + ":tgt_mix+0x100000", ErrUnsafeOffset, "is not in an executable segment"},
		{"raw offset in a stripped file", fx.stripped + ":0x" + strconv.FormatUint(offsetOf(t, fx.pie, "tgt_mix")+1, 16),
			ErrUnsafeOffset, "pass --force if you are sure; the file is stripped"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := resolveWord(t, tc.word, ResolveOptions{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("message %q does not contain %q", err.Error(), tc.msg)
			}
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Errorf("message is not one line: %q", err.Error())
			}
		})
	}
}

// TestResolveChecksHandMadeSpecs: a Spec not made by ParseSpec is checked
// again before anything could reach the kernel.
func TestResolveChecksHandMadeSpecs(t *testing.T) {
	fx := testFixtures(t)
	for _, tc := range []struct {
		name string
		spec Spec
		want error
	}{
		{"newline in an argument", Spec{Path: fx.pie, Symbol: "tgt_mix", Args: []Arg{{Name: "a", Expr: "%di\n-:x/y"}}}, ErrBadArg},
		{"space in a type", Spec{Path: fx.pie, Symbol: "tgt_mix", Args: []Arg{{Name: "a", Expr: "%di", Type: "u8 x"}}}, ErrBadArg},
		{"bad name", Spec{Path: fx.pie, Symbol: "tgt_mix", Args: []Arg{{Name: "a b", Expr: "%di"}}}, ErrBadArg},
		{"newline in the path", Spec{Path: fx.pie + "\n", Symbol: "tgt_mix"}, ErrBadPath},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Resolve(tc.spec, ResolveOptions{}); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestResolveTargetFields(t *testing.T) {
	fx := testFixtures(t)
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(fx.pie, link); err != nil {
		t.Fatal(err)
	}
	real, err := filepath.EvalSymlinks(fx.pie)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("symlink and return probe", func(t *testing.T) {
		targets, err := resolveWord(t, link+":tgt_*%return rv=$retval:s64 $comm", ResolveOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, tg := range targets {
			if tg.Path != real || !tg.Return || tg.Spec == nil || tg.Spec.Raw == "" || len(tg.Args) != 2 ||
				tg.Args[0].Fetch() != "rv=$retval:s64" || tg.Args[1].Fetch() != "comm=$comm:string" {
				t.Errorf("target %+v", tg)
			}
		}
		targets[0].Args[0].Name = "changed"
		if targets[1].Args[0].Name == "changed" || targets[0].Spec.Args[0].Name == "changed" {
			t.Errorf("targets share their argument slices")
		}
	})
	t.Run("relative path", func(t *testing.T) {
		t.Chdir(fx.dir)
		targets, err := resolveWord(t, "./pie:tgt_mix", ResolveOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(targets) != 1 || targets[0].Path != real {
			t.Errorf("got %+v, want path %s", targets, real)
		}
	})
	t.Run("file name without ./", func(t *testing.T) {
		t.Chdir(fx.dir)
		_, err := resolveWord(t, "pie:tgt_mix", ResolveOptions{})
		if !errors.Is(err, ErrLibraryNotFound) || !strings.Contains(err.Error(), "did you mean ./pie?") {
			t.Errorf("got %v, want ErrLibraryNotFound with a hint", err)
		}
	})
	t.Run("raw offset", func(t *testing.T) {
		off := offsetOf(t, fx.pie, "tgt_add")
		targets, err := resolveWord(t, fx.pie+":0x"+strconv.FormatUint(off, 16)+" arg1", ResolveOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(targets) != 1 || targets[0].Symbol != "" || targets[0].Offset != off || targets[0].Return {
			t.Errorf("got %+v", targets)
		}
	})
}

func TestResolvePath(t *testing.T) {
	fx := testFixtures(t)
	libc := libcPath(t)
	for _, tc := range []struct {
		name string
		path string
		want string
		err  error
	}{
		{"library name", "libc.so.6", libc, nil},
		{"absolute path", fx.pie, fx.pie, nil},
		{"missing", "/nope", "", os.ErrNotExist},
		{"newline", "/tmp/a\nb", "", ErrBadPath},
		{"unknown library", "libnope.so.3", "", ErrLibraryNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ResolvePath(tc.path, ResolveOptions{})
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("got %q, %v; want %v", got, err, tc.err)
				}
				return
			}
			want, _ := filepath.EvalSymlinks(tc.want)
			if err != nil || got != want {
				t.Fatalf("got %q, %v; want %q", got, err, want)
			}
		})
	}
}

// TestKernelRefusedInstructions: a glob skips (and names) functions whose
// first instruction uprobes refuse; naming one directly is an error.
func TestKernelRefusedInstructions(t *testing.T) {
	targets, err := resolveWord(t, "libc.so.6:pthread_spin_*", ResolveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tg := range targets {
		if tg.Symbol == "pthread_spin_lock" {
			t.Fatalf("pthread_spin_lock (lock decl first) was kept")
		}
	}
	if sk := targets[0].Spec.Skipped; len(sk) != 1 || !strings.HasPrefix(sk[0], "pthread_spin_lock: ") {
		t.Errorf("Skipped = %q, want pthread_spin_lock", sk)
	}
	if _, err := resolveWord(t, "libc.so.6:pthread_spin_lock", ResolveOptions{}); !errors.Is(err, ErrRefused) {
		t.Errorf("direct probe on pthread_spin_lock: err = %v, want ErrRefused", err)
	}
}
