package main

// USDT markers of real programs, on the real kernel: python3.11's
// semaphore-guarded gc__start and function__entry (checked against perf
// stat on the same markers, in the same run), libstdc++'s throw and catch
// (against the target's own count), and PostgreSQL's query__start (against
// the queries sent, with their text).

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/uprobectl/uprobectl/internal/targets"
)

// usdtMarker is one line of `symbols --usdt --json`.
type usdtMarker struct {
	Provider, Name string
	Offset         uint64
	Semaphore      uint64
}

func markerOf(t *testing.T, bin, name string) usdtMarker {
	t.Helper()
	out, err := exec.Command(binary, "symbols", "--usdt", "--json", bin, name).Output()
	if err != nil {
		t.Fatalf("symbols --usdt %s %s: %v", bin, name, err)
	}
	var m usdtMarker
	if err := json.Unmarshal([]byte(strings.SplitN(string(out), "\n", 2)[0]), &m); err != nil || m.Offset == 0 {
		t.Fatalf("symbols --usdt %s %s: %q: %v", bin, name, out, err)
	}
	return m
}

// perfEventOn defines a uprobe of the test's own group on the marker (with
// its semaphore, as perf probe would), for perf stat to count; removed at
// cleanup.
func perfEventOn(t *testing.T, bin string, m usdtMarker, name string) string {
	t.Helper()
	event := fmt.Sprintf("%s_%d", name, os.Getpid())
	loc := fmt.Sprintf("%s:0x%x", bin, m.Offset)
	if m.Semaphore != 0 {
		loc += fmt.Sprintf("(0x%x)", m.Semaphore)
	}
	appendUprobeEvents(t, fmt.Sprintf("p:%s/%s %s", testGroup, event, loc))
	t.Cleanup(func() { appendUprobeEvents(t, "-:"+testGroup+"/"+event) })
	return testGroup + ":" + event
}

// readHits reads the hit lines of a JSON output file.
func readHits(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var hits []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("bad JSON line %q", sc.Text())
		}
		if m["type"] == "hit" {
			hits = append(hits, m)
		}
		if m["type"] == "summary" && (num(m["lost"]) != 0 || num(m["unknown"]) != 0) {
			t.Errorf("summary %v: want lost 0 and unknown 0", m)
		}
	}
	return hits
}

// TestUSDTPython: `run` on python3.11's gc__start (guarded by a semaphore)
// counts what perf stat counts on the same marker in the same run, at
// least the collections the script asked for; function__entry with
// fn=arg2:string names the script's function once per call (Python 3.11
// fires it only while a profile function is set, which the script does).
func TestUSDTPython(t *testing.T) {
	const python = "/usr/bin/python3.11"
	dir := kernelTest(t)
	if _, err := os.Stat(python); err != nil {
		targets.Missing(t, python+" (python3.11-minimal)")
	}
	perf := targets.NeedTool(t, "perf", "linux-perf")
	gcEvent := perfEventOn(t, python, markerOf(t, python, "python:gc__start"), "gc")
	entryEvent := perfEventOn(t, python, markerOf(t, python, "python:function__entry"), "entry")
	script := filepath.Join(dir, "gc.py")
	os.WriteFile(script, []byte(`import gc, sys
starts = 0
def count_starts(phase, info):
    global starts
    if phase == "start":
        starts += 1
gc.callbacks.append(count_starts)
for i in range(321):
    gc.collect(0)
def uprobectl_target(x):
    return x + 1
sys.setprofile(lambda *a: None)
for i in range(250):
    uprobectl_target(i)
sys.setprofile(None)
print("callbacks", starts, flush=True)
`), 0o644)
	out := filepath.Join(dir, "hits.json")
	// perf stat -a: counting through inheritance into run's child read 0
	// in some runs (perf 6.1); machine-wide, only this python fires them.
	cmd := exec.Command(perf, "stat", "-a", "-x", ",", "-e", gcEvent, "-e", entryEvent, "--",
		binary, "run", "--json", "--output", out,
		python+":usdt:python:gc__start", python+":usdt:python:function__entry fn=arg2:string line=arg3",
		"--", python, script)
	cmd.Env = append(os.Environ(), "PYTHONHASHSEED=0")
	var errBuf strings.Builder
	cmd.Stderr = &errBuf
	stdout, err := cmd.Output()
	stderr := errBuf.String()
	if err != nil {
		t.Fatalf("perf stat -- uprobectl run: %v\n%s", err, stderr)
	}
	callbacks := -1
	fmt.Sscanf(string(stdout), "callbacks %d", &callbacks)
	perfCount := map[string]int{}
	for _, line := range strings.Split(stderr, "\n") {
		f := strings.Split(line, ",")
		if len(f) > 2 && (f[2] == gcEvent || f[2] == entryEvent) {
			perfCount[f[2]], _ = strconv.Atoi(f[0])
		}
	}
	gcHits, entries, targetEntries := 0, 0, 0
	for _, h := range readHits(t, out) {
		args, _ := h["args"].(map[string]any)
		switch h["symbol"] {
		case "python:gc__start":
			gcHits++
		case "python:function__entry":
			entries++
			if args["fn"] == "uprobectl_target" && num(args["line"]) == 10 {
				targetEntries++
			}
		}
	}
	t.Logf("gc__start: uprobectl %d, perf stat %d, gc.callbacks %d; function__entry: uprobectl %d (uprobectl_target %d), perf stat %d",
		gcHits, perfCount[gcEvent], callbacks, entries, targetEntries, perfCount[entryEvent])
	if gcHits != perfCount[gcEvent] || gcHits < callbacks || callbacks < 321 {
		t.Errorf("gc__start: %d hits, perf stat %d, the script's gc callbacks %d (want hits = perf, >= callbacks >= 321)", gcHits, perfCount[gcEvent], callbacks)
	}
	if entries != perfCount[entryEvent] || targetEntries != 250 {
		t.Errorf("function__entry: %d hits (%d of uprobectl_target at line 10), perf stat %d (want = perf, and 250)", entries, targetEntries, perfCount[entryEvent])
	}
}

// TestUSDTLibstdcxx: a C++ program throwing and catching N times gives N
// hits of libstdc++'s throw and of catch, the bare library name resolved
// through the program's own mappings.
func TestUSDTLibstdcxx(t *testing.T) {
	dir := kernelTest(t)
	gxx := targets.NeedTool(t, "g++", "g++")
	src := filepath.Join(dir, "throw.cpp")
	os.WriteFile(src, []byte(`#include <cstdio>
#include <cstdlib>
#include <stdexcept>
int main(int argc, char **argv) {
	int n = atoi(argv[1]), caught = 0;
	for (int i = 0; i < n; i++) {
		try { throw std::runtime_error("x"); } catch (const std::exception &) { caught++; }
	}
	printf("calls %d\n", caught);
	return 0;
}
`), 0o644)
	bin := filepath.Join(dir, "throw")
	if out, err := exec.Command(gxx, "-O0", "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("g++: %v\n%s", err, out)
	}
	out := filepath.Join(dir, "hits.json")
	cmd := exec.Command(binary, "run", "--json", "--output", out,
		"libstdc++.so.6:usdt:libstdcxx:throw", "libstdc++.so.6:usdt:catch", "--", bin, "345")
	stdout, err := cmd.Output()
	if err != nil || strings.TrimSpace(string(stdout)) != "calls 345" {
		t.Fatalf("run: %v, target printed %q", err, stdout)
	}
	count := map[any]int{}
	for _, h := range readHits(t, out) {
		count[h["symbol"]]++
	}
	if count["libstdcxx:throw"] != 345 || count["libstdcxx:catch"] != 345 {
		t.Errorf("hits %v, want 345 throw and 345 catch", count)
	}
}

// TestUSDTPostgres: query__start on a throwaway PostgreSQL cluster gives
// one hit per query sent, with the query's text.
func TestUSDTPostgres(t *testing.T) {
	const pgbin = "/usr/lib/postgresql/15/bin"
	kernelTest(t)
	if _, err := os.Stat(pgbin + "/postgres"); err != nil {
		targets.Missing(t, "PostgreSQL 15 (postgresql-15)")
	}
	psql := targets.NeedTool(t, "psql", "postgresql-client-15")
	setpriv := targets.NeedTool(t, "setpriv", "util-linux")
	pg, err := user.Lookup("postgres")
	if err != nil {
		targets.Missing(t, "the postgres user (postgresql-15)")
	}
	// postgres refuses root: the cluster is the postgres user's, in a
	// directory of its own (t.TempDir's parent is closed to it).
	dir, err := os.MkdirTemp("", "uprobectl-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	uid, _ := strconv.Atoi(pg.Uid)
	gid, _ := strconv.Atoi(pg.Gid)
	os.Chown(dir, uid, gid)
	asPostgres := func(args ...string) *exec.Cmd {
		return exec.Command(setpriv, append([]string{"--reuid=" + pg.Uid, "--regid=" + pg.Gid, "--init-groups", "--"}, args...)...)
	}
	data := filepath.Join(dir, "data")
	if out, err := asPostgres(pgbin+"/initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	opts := fmt.Sprintf("-k %s -c listen_addresses='' -c fsync=off", dir)
	if out, err := asPostgres(pgbin+"/pg_ctl", "-D", data, "-o", opts, "-l", filepath.Join(dir, "log"), "-w", "start").CombinedOutput(); err != nil {
		t.Fatalf("pg_ctl start: %v\n%s", err, out)
	}
	t.Cleanup(func() { asPostgres(pgbin+"/pg_ctl", "-D", data, "-m", "immediate", "-w", "stop").Run() })

	a := startAttach(t, pgbin+"/postgres:usdt:postgresql:query__start q=arg1:string")
	a.waitReady(t)
	const queries = 60
	var sql strings.Builder
	for i := range queries {
		fmt.Fprintf(&sql, "SELECT 'uprobectl_query_%d';\n", i)
	}
	cmd := exec.Command(psql, "-X", "-q", "-h", dir, "-U", "postgres", "-d", "postgres", "-f", "-")
	cmd.Stdin = strings.NewReader(sql.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("psql: %v\n%s", err, out)
	}
	a.stop(t)
	a.checkSummary(t)
	seen := map[string]int{}
	for _, h := range a.ofType("hit") {
		q, _ := h["args"].(map[string]any)["q"].(string)
		if strings.Contains(q, "uprobectl_query_") {
			seen[q]++
		}
	}
	for i := range queries {
		if q := fmt.Sprintf("SELECT 'uprobectl_query_%d';", i); seen[q] != 1 {
			t.Errorf("query %q: %d hits, want 1 (all: %v)", q, seen[q], seen)
		}
	}
	if len(seen) != queries {
		t.Errorf("%d distinct queries seen, %d sent", len(seen), queries)
	}
}
