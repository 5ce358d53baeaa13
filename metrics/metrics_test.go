package metrics

import (
	"io"
	"net/http"
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
	s, err := New(output.NewJSON(io.Discard, nil), "127.0.0.1:0")
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
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
