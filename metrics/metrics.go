// Package metrics serves what a long-running uprobectl does as Prometheus
// metrics, with /healthz and /readyz for an orchestrator. It uses the
// Prometheus client library rather than hand-written exposition: the text
// format, escaping and registry semantics are its job, and scrapers expect
// exactly its output.
package metrics

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/uprobectl/uprobectl/finder"
	"github.com/uprobectl/uprobectl/output"
	"github.com/uprobectl/uprobectl/session"
)

// DefaultMaxComms is how many distinct command names get a series of their
// own in uprobectl_hits_total unless [MaxComms] says otherwise.
const DefaultMaxComms = 500

// OtherComm is the comm label of the hits of every command name beyond the
// first N (see [MaxComms]).
const OtherComm = "other"

// Option configures a Sink.
type Option func(*Sink)

// MaxComms bounds the series of uprobectl_hits_total: the first n distinct
// command names seen get comm="NAME", the hits of every further name are
// counted under comm="other". So each (probe, binary) has at most n+1
// series however many processes with distinct names come and go, and the
// totals stay exact. n = 0 counts every hit under "other".
func MaxComms(n int) Option {
	return func(s *Sink) { s.maxComms = n }
}

// Sink counts hits per probe and command name and passes everything on to
// the output writer. It is a session.Sink: Hit runs on the reader goroutine.
type Sink struct {
	output.Writer
	hits     *prometheus.CounterVec
	byKey    map[hitKey]prometheus.Counter // cache: no label hashing per hit; keyed by the comm label, so bounded too
	comms    map[string]bool               // the command names that have a label value of their own
	maxComms int
	ready    atomic.Bool
	stats    atomic.Pointer[func() session.Stats]
	probes   atomic.Int64
	server   *http.Server
	listen   net.Listener
	started  chan struct{}
}

type hitKey struct{ probe, binary, comm string }

// New wraps w and serves metrics on addr (":9464"; port 0 picks one).
func New(w output.Writer, addr string, opts ...Option) (*Sink, error) {
	s := &Sink{
		Writer: w,
		hits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "uprobectl_hits_total",
			Help: "Hits delivered, by probe, probed file and command name of the process.",
		}, []string{"probe", "binary", "comm"}),
		byKey:    map[hitKey]prometheus.Counter{},
		comms:    map[string]bool{},
		maxComms: DefaultMaxComms,
	}
	for _, o := range opts {
		o(s)
	}
	if s.maxComms < 0 {
		return nil, errors.New("the number of distinct comm label values must be 0 or more")
	}
	reg := prometheus.NewRegistry()
	stat := func(pick func(session.Stats) float64) func() float64 {
		return func() float64 {
			if f := s.stats.Load(); f != nil {
				return pick((*f)())
			}
			return 0
		}
	}
	reg.MustRegister(s.hits,
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "uprobectl_lost_total", Help: "Hits the kernel dropped because a hit ring buffer was full."},
			stat(func(st session.Stats) float64 { return float64(st.Lost) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "uprobectl_lost_sideband_total", Help: "Fork, exit, comm and mmap records the kernel dropped because a side-band ring was full."},
			stat(func(st session.Stats) float64 { return float64(st.LostSideband) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "uprobectl_late_total", Help: "Processes and mappings recorded from /proc after their side-band records were lost."},
			stat(func(st session.Stats) float64 { return float64(st.Late) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "uprobectl_unknown_hits_total", Help: "Hits from processes not in the process table (0 by design)."},
			stat(func(st session.Stats) float64 { return float64(st.Unknown) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "uprobectl_filtered_hits_total", Help: "Hits from processes outside the scope."},
			stat(func(st session.Stats) float64 { return float64(st.Filtered) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "uprobectl_missed_windows_total", Help: "Processes that mapped a replaced file before its new inode was armed."},
			stat(func(st session.Stats) float64 { return float64(st.MissedWindows) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "uprobectl_processes_seen_total", Help: "Processes recorded since start."},
			stat(func(st session.Stats) float64 { return float64(st.Processes) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "uprobectl_processes_tracked", Help: "Processes in the process table now."},
			stat(func(st session.Stats) float64 { return float64(st.Tracked) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "uprobectl_probes_armed", Help: "Probes armed."},
			func() float64 { return float64(s.probes.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "uprobectl_count_groups", Help: "With --count: groups counted (probe, process, and stack or --by values); 0 otherwise."},
			func() float64 {
				if g, ok := w.(interface{ Groups() int }); ok {
					return float64(g.Groups())
				}
				return 0
			}),
		prometheus.NewGoCollector(),
		prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}),
	)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !s.ready.Load() {
			http.Error(w, "probes not armed yet", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s.listen = ln
	s.server = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go s.server.Serve(ln)
	return s, nil
}

// Addr is where the metrics are served.
func (s *Sink) Addr() string { return s.listen.Addr().String() }

// SetStats gives the metrics their source once the session exists.
func (s *Sink) SetStats(f func() session.Stats) { s.stats.Store(&f) }

// Close stops serving.
func (s *Sink) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := s.server.Shutdown(ctx)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

func (s *Sink) Ready(probes []*session.Probe, processes int) {
	s.probes.Store(int64(len(probes)))
	s.ready.Store(true)
	s.Writer.Ready(probes, processes)
}

func (s *Sink) Rearmed(path string, probes int) {
	s.probes.Add(int64(probes))
	s.Writer.Rearmed(path, probes)
}

func (s *Sink) Hit(h *session.Hit) {
	k := hitKey{h.Probe.Name(), h.Probe.Binary(), s.commLabel(h.Process.Comm)}
	c := s.byKey[k]
	if c == nil {
		c = s.hits.WithLabelValues(k.probe, k.binary, k.comm)
		s.byKey[k] = c
	}
	c.Inc()
	s.Writer.Hit(h)
}

// commLabel is the comm label value of a hit by a process named comm: the
// name itself if it is one of the first maxComms names seen, else "other".
func (s *Sink) commLabel(comm string) string {
	if s.comms[comm] {
		return comm
	}
	if len(s.comms) < s.maxComms {
		s.comms[comm] = true
		return comm
	}
	return OtherComm
}

func (s *Sink) Process(event string, p *finder.Process) { s.Writer.Process(event, p) }
