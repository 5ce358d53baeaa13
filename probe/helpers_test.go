package probe

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Test fixtures: small binaries built from testdata/*.c with gcc, once per
// test run, into a temporary directory. gcc is on every machine of this
// project (DESIGN.md §5), so a failing build fails the tests.

type fixtureSet struct {
	dir       string
	pie       string // PIE executable
	nopie     string // -no-pie executable (ET_EXEC at 0x400000)
	rdynamic  string // PIE linked with -rdynamic, with symbols
	rdynStrip string // the same, stripped: only .dynsym is left
	stripped  string // the PIE, stripped (no -rdynamic)
	lib       string // libtarget.so.1, with a soname and symbol versions
	user      string // executable linked against lib, waits on stdin
}

var (
	fixturesOnce sync.Once
	fixtures     fixtureSet
	fixturesErr  error
	fixturesLog  string
)

// testFixtures builds the fixtures on first use.
func testFixtures(t *testing.T) fixtureSet {
	t.Helper()
	fixturesOnce.Do(func() {
		fixturesErr = buildFixtures()
	})
	if fixturesErr != nil {
		t.Fatalf("building test binaries: %v\n%s", fixturesErr, fixturesLog)
	}
	return fixtures
}

func buildFixtures() error {
	dir, err := os.MkdirTemp("", "probe-test-")
	if err != nil {
		return err
	}
	src := func(name string) string {
		p, _ := filepath.Abs(filepath.Join("testdata", name))
		return p
	}
	out := func(name string) string { return filepath.Join(dir, name) }
	f := fixtureSet{
		dir: dir, pie: out("pie"), nopie: out("nopie"), rdynamic: out("rdynamic"),
		rdynStrip: out("rdynamic.stripped"), stripped: out("pie.stripped"),
		lib: out("libtarget.so.1"), user: out("user"),
	}
	steps := [][]string{
		// CET (endbr64 at every function entry), as distributions build.
		{"gcc", "-O1", "-fPIE", "-pie", "-fcf-protection=full", "-o", f.pie, src("target.c")},
		{"gcc", "-O1", "-fno-PIE", "-no-pie", "-o", f.nopie, src("target.c")},
		{"gcc", "-O1", "-fPIE", "-pie", "-rdynamic", "-o", f.rdynamic, src("target.c")},
		{"strip", "-o", f.rdynStrip, f.rdynamic},
		{"strip", "-o", f.stripped, f.pie},
		{"gcc", "-O1", "-shared", "-fPIC", "-Wl,-soname,libtarget.so.1",
			"-Wl,--version-script=" + src("libtarget.map"), "-o", f.lib, src("libtarget.c")},
		{"ln", "-s", "libtarget.so.1", out("libtarget.so")},
		{"gcc", "-O1", "-o", f.user, src("user.c"), "-L" + dir, "-ltarget", "-Wl,-rpath," + dir},
	}
	var log bytes.Buffer
	for _, s := range steps {
		cmd := exec.Command(s[0], s[1:]...)
		cmd.Stdout, cmd.Stderr = &log, &log
		if err := cmd.Run(); err != nil {
			fixturesLog = strings.Join(s, " ") + "\n" + log.String()
			return err
		}
	}
	fixtures = f
	return nil
}

func TestMain(m *testing.M) {
	code := m.Run()
	if fixtures.dir != "" {
		os.RemoveAll(fixtures.dir)
	}
	os.Exit(code)
}

// run runs a command and returns its standard output; it fails the test on
// error.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr)
	}
	return string(out)
}

// objdumpFunc is what binutils says about one function label.
type objdumpFunc struct {
	label   string   // the label, with a version suffix if any (lt_func@@LT_2.0)
	addr    uint64   // its address
	fileOff uint64   // its file offset, computed by objdump -F
	insns   []uint64 // addresses of the instructions listed under it
}

var (
	objdumpLabel = regexp.MustCompile(`^([0-9a-f]+) <(.+)> \(File Offset: 0x([0-9a-f]+)\):$`)
	objdumpInsn  = regexp.MustCompile(`^ +([0-9a-f]+):\t`)
)

// objdumpFunctions disassembles the file with objdump -d -F, an oracle
// independent of this package (both for file offsets and for instruction
// boundaries).
func objdumpFunctions(t *testing.T, path string) []objdumpFunc {
	t.Helper()
	out := run(t, "objdump", "-d", "-F", "-w", "--no-show-raw-insn", path)
	var funcs []objdumpFunc
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if m := objdumpLabel.FindStringSubmatch(line); m != nil {
			addr, _ := strconv.ParseUint(m[1], 16, 64)
			off, _ := strconv.ParseUint(m[3], 16, 64)
			funcs = append(funcs, objdumpFunc{label: m[2], addr: addr, fileOff: off})
			continue
		}
		if m := objdumpInsn.FindStringSubmatch(line); m != nil && len(funcs) > 0 {
			if strings.Contains(line, "(bad)") {
				continue
			}
			addr, _ := strconv.ParseUint(m[1], 16, 64)
			f := &funcs[len(funcs)-1]
			f.insns = append(f.insns, addr)
		}
	}
	return funcs
}

// objdumpByName indexes objdumpFunctions by bare label (version dropped).
func objdumpByName(t *testing.T, path string) map[string]objdumpFunc {
	m := map[string]objdumpFunc{}
	for _, f := range objdumpFunctions(t, path) {
		name, _, _ := strings.Cut(f.label, "@")
		if _, dup := m[name]; !dup {
			m[name] = f
		}
	}
	return m
}

// readelfFunc is a FUNC or IFUNC symbol as readelf -s shows it.
type readelfFunc struct {
	name  string // bare name
	value uint64
	size  uint64
	ifunc bool
}

// readelfFunctions lists the defined FUNC and IFUNC symbols of both symbol
// tables with readelf.
func readelfFunctions(t *testing.T, path string) []readelfFunc {
	t.Helper()
	out := run(t, "readelf", "-W", "-s", path)
	var funcs []readelfFunc
	for _, line := range strings.Split(out, "\n") {
		// Num: Value Size Type Bind Vis Ndx Name
		f := strings.Fields(line)
		if len(f) < 8 || (f[3] != "FUNC" && f[3] != "IFUNC") || f[6] == "UND" || f[6] == "ABS" {
			continue
		}
		value, _ := strconv.ParseUint(f[1], 16, 64)
		size, err := strconv.ParseUint(f[2], 0, 64)
		if err != nil || value == 0 {
			continue
		}
		name, _, _ := strings.Cut(f[7], "@")
		funcs = append(funcs, readelfFunc{name: name, value: value, size: size, ifunc: f[3] == "IFUNC"})
	}
	return funcs
}

// readelfLoad is a PT_LOAD program header as readelf -lW shows it.
type readelfLoad struct {
	off, vaddr, filesz uint64
	exec               bool
}

func readelfLoads(t *testing.T, path string) []readelfLoad {
	t.Helper()
	var loads []readelfLoad
	for _, line := range strings.Split(run(t, "readelf", "-lW", path), "\n") {
		f := strings.Fields(line)
		if len(f) < 7 || f[0] != "LOAD" {
			continue
		}
		off, _ := strconv.ParseUint(f[1], 0, 64)
		vaddr, _ := strconv.ParseUint(f[2], 0, 64)
		filesz, _ := strconv.ParseUint(f[4], 0, 64)
		loads = append(loads, readelfLoad{off, vaddr, filesz, strings.Contains(strings.Join(f[6:len(f)-1], ""), "E")})
	}
	if len(loads) == 0 {
		t.Fatalf("readelf -lW %s: no LOAD segments", path)
	}
	return loads
}

// segmentMath computes a file offset from readelf's numbers only.
func segmentMath(loads []readelfLoad, value uint64) (uint64, bool) {
	for _, wantExec := range []bool{true, false} {
		for _, l := range loads {
			if l.exec == wantExec && value >= l.vaddr && value < l.vaddr+l.filesz {
				return value - l.vaddr + l.off, true
			}
		}
	}
	return 0, false
}

// libcPath returns the real path of this machine's libc, from ldconfig -p
// (not from this package).
func libcPath(t *testing.T) string {
	t.Helper()
	for _, line := range strings.Split(run(t, "ldconfig", "-p"), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "libc.so.6 (libc6,x86-64") {
			_, p, _ := strings.Cut(line, "=> ")
			real, err := filepath.EvalSymlinks(p)
			if err != nil {
				t.Fatal(err)
			}
			return real
		}
	}
	t.Fatal("ldconfig -p lists no x86-64 libc.so.6")
	return ""
}
