package main

// What held under attack and must keep holding (issue 8, "Keep").

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/uprobectl/uprobectl/internal/targets"
)

// Twenty uprobectl runs on one function at once: each defines its own
// group, each counts every call exactly, and all of them clean up.
func TestTwentyConcurrentRunsExact(t *testing.T) {
	dir := kernelTest(t)
	bin := targets.Build(t, dir, "counter-pie")
	runs := make([]*attachRun, 20)
	var wg sync.WaitGroup
	for i := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runs[i] = startAttach(t, bin+":fn")
		}()
	}
	wg.Wait()
	groups := map[string]bool{}
	for _, a := range runs {
		groups[a.waitReady(t)["group"].(string)] = true
	}
	if len(groups) != len(runs) {
		t.Fatalf("%d runs share %d groups", len(runs), len(groups))
	}
	calls := targets.Start(t, bin, "20000", "2").Go(t)
	for i, a := range runs {
		a.stop(t)
		if _, hits := a.hitsBy(nil); hits != calls {
			t.Errorf("run %d: %d hits of %d calls", i, hits, calls)
		}
		a.checkSummary(t)
	}
	events := readUprobeEvents(t)
	for g := range groups {
		if strings.Contains(events, g+"/") {
			t.Errorf("group %s left behind", g)
		}
	}
}

// Without --metrics-addr nothing listens: a sidecar must not open a port
// nobody asked for.
func TestNothingListensWithoutMetrics(t *testing.T) {
	dir := kernelTest(t)
	bin := targets.Build(t, dir, "counter-pie")
	a := startAttach(t, bin+":fn")
	a.waitReady(t)
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", a.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		link, _ := os.Readlink(filepath.Join(fmt.Sprintf("/proc/%d/fd", a.cmd.Process.Pid), fd.Name()))
		if strings.HasPrefix(link, "socket:") {
			t.Errorf("fd %s is a socket (%s) without --metrics-addr", fd.Name(), link)
		}
	}
	a.stop(t)
}
