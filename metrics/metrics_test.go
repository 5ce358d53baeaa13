package metrics

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/uprobectl/uprobectl/finder"
	"github.com/uprobectl/uprobectl/output"
	"github.com/uprobectl/uprobectl/probe"
	"github.com/uprobectl/uprobectl/session"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestEndpoints(t *testing.T) {
	s, err := New(output.NewCount(output.NewJSON(io.Discard, nil), output.CountOptions{}), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	base := "http://" + s.Addr()

	if code, _ := get(t, base+"/healthz"); code != 200 {
		t.Errorf("/healthz %d before ready, want 200", code)
	}
	if code, _ := get(t, base+"/readyz"); code != 503 {
		t.Errorf("/readyz %d before ready, want 503", code)
	}
	s.SetStats(func() session.Stats { return session.Stats{Lost: 3, Tracked: 2, Unknown: 0} })
	probes := []*session.Probe{{Target: probe.Target{Path: "/lib/libx.so", Event: "fn"}}}
	s.Ready(probes, 1)
	if code, _ := get(t, base+"/readyz"); code != 200 {
		t.Errorf("/readyz %d after ready, want 200", code)
	}
	proc := &finder.Process{PID: 7, Comm: "app"}
	for i := 0; i < 5; i++ {
		s.Hit(&session.Hit{Probe: probes[0], Process: proc, TimeNS: uint64(time.Now().UnixNano())})
	}
	_, body := get(t, base+"/metrics")
	for _, want := range []string{
		`uprobectl_hits_total{binary="/lib/libx.so",comm="app",probe="fn"} 5`,
		"uprobectl_lost_total 3",
		"uprobectl_processes_tracked 2",
		"uprobectl_probes_armed 1",
		"uprobectl_unknown_hits_total 0",
		"uprobectl_count_groups 1", // --count: (fn, pid 7)
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// TestCommsBounded: 800 processes with distinct names make at most
// DefaultMaxComms+1 series per (probe, binary) — the first 500 names, then
// "other" — and no hit is lost or counted twice.
func TestCommsBounded(t *testing.T) {
	s, err := New(output.NewJSON(io.Discard, nil), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	probes := []*session.Probe{
		{Target: probe.Target{Path: "/lib/libx.so", Event: "fn"}},
		{Target: probe.Target{Path: "/lib/liby.so", Event: "gn"}},
	}
	s.Ready(probes, 800)
	want := map[string]float64{} // total per probe
	perComm := map[string]float64{}
	for i := 0; i < 800; i++ {
		proc := &finder.Process{PID: 1000 + i, Comm: fmt.Sprintf("worker-%03d", i)}
		for _, p := range probes {
			n := 1 + i%3
			for j := 0; j < n; j++ {
				s.Hit(&session.Hit{Probe: p, Process: proc})
			}
			want[p.Name()] += float64(n)
			perComm[p.Name()+"/"+proc.Comm] = float64(n)
		}
	}
	_, body := get(t, "http://"+s.Addr()+"/metrics")
	series := map[string]int{}
	got := map[string]float64{}
	other := map[string]bool{}
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, "uprobectl_hits_total{") {
			continue
		}
		labels, value, _ := strings.Cut(line, "} ")
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			t.Fatalf("bad sample %q", line)
		}
		var probeName, comm string
		for _, kv := range strings.Split(strings.TrimPrefix(labels, "uprobectl_hits_total{"), ",") {
			k, val, _ := strings.Cut(kv, "=")
			val = strings.Trim(val, `"`)
			switch k {
			case "probe":
				probeName = val
			case "comm":
				comm = val
			}
		}
		series[probeName]++
		got[probeName] += v
		if comm == OtherComm {
			other[probeName] = true
		} else if w := perComm[probeName+"/"+comm]; v != w {
			t.Errorf("%s comm=%s: %v hits, want %v", probeName, comm, v, w)
		}
	}
	for _, p := range probes {
		name := p.Name()
		if series[name] > DefaultMaxComms+1 {
			t.Errorf("%s: %d series for 800 distinct comms, want at most %d", name, series[name], DefaultMaxComms+1)
		}
		if series[name] != DefaultMaxComms+1 || !other[name] {
			t.Errorf("%s: %d series (other present: %v), want the first %d names and \"other\"", name, series[name], other[name], DefaultMaxComms)
		}
		if got[name] != want[name] {
			t.Errorf("%s: the series add up to %v hits, want %v", name, got[name], want[name])
		}
	}
}

// TestMaxCommsOption: --metrics-max-comms 2 keeps two names; 0 puts every
// hit under "other"; a negative bound is refused.
func TestMaxCommsOption(t *testing.T) {
	for _, tc := range []struct {
		max  int
		want []string
	}{
		{2, []string{`comm="a",probe="fn"} 1`, `comm="b",probe="fn"} 2`, `comm="other",probe="fn"} 7`}},
		{0, []string{`comm="other",probe="fn"} 10`}},
	} {
		s, err := New(output.NewJSON(io.Discard, nil), "127.0.0.1:0", MaxComms(tc.max))
		if err != nil {
			t.Fatal(err)
		}
		p := &session.Probe{Target: probe.Target{Path: "/lib/libx.so", Event: "fn"}}
		for i, comm := range []string{"a", "b", "b", "c", "d", "d", "d", "a2", "e", "f"} {
			s.Hit(&session.Hit{Probe: p, Process: &finder.Process{PID: i + 1, Comm: comm}})
		}
		_, body := get(t, "http://"+s.Addr()+"/metrics")
		s.Close()
		n := strings.Count(body, "\nuprobectl_hits_total{")
		if n != len(tc.want) {
			t.Errorf("max %d: %d series, want %d:\n%s", tc.max, n, len(tc.want), body)
		}
		for _, w := range tc.want {
			if !strings.Contains(body, w) {
				t.Errorf("max %d: /metrics lacks %q", tc.max, w)
			}
		}
	}
	if _, err := New(output.NewJSON(io.Discard, nil), "127.0.0.1:0", MaxComms(-1)); err == nil {
		t.Error("MaxComms(-1) accepted")
	}
}
