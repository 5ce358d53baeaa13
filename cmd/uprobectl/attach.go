package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/uprobectl/uprobectl/finder"
	"github.com/uprobectl/uprobectl/metrics"
	"github.com/uprobectl/uprobectl/output"
	"github.com/uprobectl/uprobectl/perfevent"
	"github.com/uprobectl/uprobectl/probe"
	"github.com/uprobectl/uprobectl/session"
)

// traceFlags are the flags attach and run share.
func traceFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "json", Aliases: []string{"j"}, Usage: "print JSON lines (the contract in the README)"},
		&cli.BoolFlag{Name: "count", Aliases: []string{"c"}, Usage: "print hit counts per probe and process instead of hits"},
		&cli.DurationFlag{Name: "interval", Aliases: []string{"i"}, Usage: "with --count: also print the counts of every interval (e.g. 1s)"},
		&cli.DurationFlag{Name: "duration", Aliases: []string{"d"}, Usage: "stop this long after every probe is armed (e.g. 5s, 2m)"},
		&cli.Uint64Flag{Name: "max-hits", Aliases: []string{"n"}, Usage: "stop after this many hits"},
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write hits (or counts) to this file instead of stdout"},
		&cli.BoolFlag{Name: "force", Usage: "accept an offset that is not proven to be an instruction boundary (a wrong one corrupts the target)"},
		&cli.IntFlag{Name: "buffer-pages", Value: 0, Usage: fmt.Sprintf("ring buffer size per CPU, in pages (a power of two, 1 to %d; default %d = 4 MiB)", maxBufferPages, perfevent.DefaultPagesPerCPU)},
		&cli.DurationFlag{Name: "stats-interval", Usage: "report the counters (hits, lost, processes tracked, own fds and goroutines) this often"},
		&cli.StringFlag{Name: "probes-file", Usage: "read probes from this file, one per line (blank lines and lines starting with # are skipped); $UPROBECTL_PROBES may hold more, one per line"},
		&cli.StringFlag{Name: "metrics-addr", Usage: "serve Prometheus metrics at ADDR/metrics, and /healthz, /readyz (e.g. :9464)"},
		&cli.IntFlag{Name: "metrics-max-comms", Value: metrics.DefaultMaxComms, Usage: "with --metrics-addr: at most this many distinct command names get a comm label of their own; the hits of any further name are counted under comm=\"other\""},
		&cli.BoolFlag{Name: "stacks", Aliases: []string{"g"}, Usage: "every hit carries its user call stack, symbolized (frame-pointer walk; with --count: counts per stack, printed as folded stacks)"},
		&cli.IntFlag{Name: "stack-depth", Value: perfevent.MaxStackDepth, Usage: fmt.Sprintf("with --stacks: at most this many frames (1 to %d)", perfevent.MaxStackDepth)},
		&cli.StringSliceFlag{Name: "by", Usage: "with --count or --latency: group by the value of this fetch arg too (repeatable)"},
		&cli.BoolFlag{Name: "first-stack", Usage: "count per probe, process and --by values, keeping only the first call stack seen for each (implies --count --stacks): memory grows with the keys, not the calls"},
		&cli.StringFlag{Name: "pprof", Usage: "write the counts per stack to this file as a gzipped pprof profile (implies --count --stacks)"},
		&cli.BoolFlag{Name: "latency", Usage: "time the calls of each probed function: its return is probed too, entries and returns are paired per thread, and a log2 histogram per function (and --by values) is printed at exit"},
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no status lines or warnings on stderr, only errors"},
	}
}

// withEnv lets every flag be set from the environment too, as
// UPROBECTL_<NAME> (UPROBECTL_METRICS_ADDR for --metrics-addr): a sidecar
// is configured by its pod spec.
func withEnv(flags []cli.Flag) []cli.Flag {
	for _, f := range flags {
		env := []string{"UPROBECTL_" + strings.ToUpper(strings.ReplaceAll(f.Names()[0], "-", "_"))}
		switch f := f.(type) {
		case *cli.BoolFlag:
			f.EnvVars = env
		case *cli.StringFlag:
			f.EnvVars = env
		case *cli.IntFlag:
			f.EnvVars = env
		case *cli.Uint64Flag:
			f.EnvVars = env
		case *cli.DurationFlag:
			f.EnvVars = env
		case *cli.IntSliceFlag:
			f.EnvVars = env
		case *cli.StringSliceFlag:
			f.EnvVars = env
		}
	}
	return flags
}

func attachCommand() *cli.Command {
	return &cli.Command{
		Name:      "attach",
		Usage:     "probe functions and print every hit until Ctrl-C",
		ArgsUsage: "PROBE...",
		Description: `A PROBE is one shell word: PATH:SYMBOL[+OFF][%return] or PATH:0xFILEOFFSET,
followed inside the same quoted word by fetch args NAME=EXPR[:TYPE]:

   uprobectl attach /usr/lib/x86_64-linux-gnu/libc.so.6:malloc
   uprobectl attach --pid 1234 'libc.so.6:malloc size=%di:u64'
   uprobectl attach --json 'libc:pthread_mutex_*lock m=arg1:x64'
   uprobectl attach './server:handle%return rv=$retval:s32'

PATH may be a library name (libc.so.6, libc) found as the dynamic loader
would, or through the maps of the first --pid. arg1..arg6 name the x86-64
argument registers (%di %si %dx %cx %r8 %r9). Flags go before the probes.

Scope: by default every process that maps a probed file, running now or
started later (exec, dlopen, fork), is traced. --pid narrows it to chosen
processes (and --follow their descendants), --comm to a command name.`,
		Flags: withEnv(append([]cli.Flag{
			&cli.IntSliceFlag{Name: "pid", Aliases: []string{"p"}, Usage: "trace this whole process (all its threads); repeatable. Default: every process that maps a probed file"},
			&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "with --pid: also trace the descendants, existing and new"},
			&cli.StringFlag{Name: "comm", Usage: "only processes with this command name (as in /proc/PID/comm)"},
			&cli.IntFlag{Name: "container-pid", Usage: "resolve the probes' paths inside this process's root (its container), and trace every process mapping those files"},
			&cli.StringFlag{Name: "container-comm", Usage: "like --container-pid, for the oldest process with this command name (waits for it up to --wait)"},
			&cli.DurationFlag{Name: "wait", Value: 60 * time.Second, Usage: "with --container-comm: how long to wait for the process to appear"},
		}, traceFlags()...)),
		Action: runAttach,
	}
}

func runAttach(c *cli.Context) error {
	if err := checkFlags(c); err != nil {
		return err
	}
	probes, err := probeWords(c, c.Args().Slice())
	if err != nil {
		return err
	}
	if len(probes) == 0 {
		return usageError(errors.New("attach: name at least one probe, e.g. uprobectl attach libc.so.6:malloc (or give --probes-file, $UPROBECTL_PROBES)"))
	}
	root, err := containerRoot(c)
	if err != nil {
		return err
	}
	if root != "" && len(c.IntSlice("pid")) > 0 {
		return usageError(errors.New("attach: --container-pid/--container-comm and --pid exclude each other"))
	}
	for _, pid := range c.IntSlice("pid") {
		if pid <= 0 {
			return usageError(fmt.Errorf("attach: --pid %d: a pid is a positive number", pid))
		}
	}
	if c.Bool("follow") && len(c.IntSlice("pid")) == 0 {
		return usageError(errors.New("attach: --follow goes with --pid"))
	}
	if c.String("comm") != "" && len(c.IntSlice("pid")) > 0 {
		return usageError(errors.New("attach: --comm and --pid exclude each other"))
	}
	return trace(c, session.Config{
		Probes: probes,
		Root:   root,
		PIDs:   c.IntSlice("pid"),
		Follow: c.Bool("follow"),
		Comm:   c.String("comm"),
	}, nil, nil)
}

// maxBufferPages is the largest --buffer-pages. The kernel keeps a ring's
// page pointers in one allocation of at most 4 MiB (rb_alloc: order
// PAGE_SHIFT+MAX_PAGE_ORDER), header included, so 1<<19 pages fail mmap
// with ENOMEM however much memory there is (measured on 6.18: 1<<18 maps,
// 1<<19 does not). 1<<18 pages is 1 GiB per CPU.
const maxBufferPages = 1 << 18

// checkFlags refuses bad flag values (from the command line or the
// environment) before anything is done: no process is started, nothing is
// written to uprobe_events. Every error is one line naming the flag.
func checkFlags(c *cli.Context) error {
	for _, d := range []struct{ flag, zero string }{ // run has no --wait: 0 then
		{"duration", "0 or unset: no time limit"},
		{"interval", "0 or unset: counts at exit only"},
		{"stats-interval", "0 or unset: no periodic report"},
		{"wait", "0: look once, do not wait"},
	} {
		if v := c.Duration(d.flag); v < 0 {
			return usageError(fmt.Errorf("--%s %s: must be positive (%s)", d.flag, v, d.zero))
		}
	}
	if c.Duration("interval") > 0 && !counting(c) {
		return usageError(errors.New("--interval goes with --count"))
	}
	if n := c.Int("stack-depth"); n < 1 || n > perfevent.MaxStackDepth {
		return usageError(fmt.Errorf("--stack-depth %d: must be 1 to %d (the kernel's kernel.perf_event_max_stack default)", n, perfevent.MaxStackDepth))
	}
	if len(c.StringSlice("by")) > 0 && !counting(c) && !c.Bool("latency") {
		return usageError(errors.New("--by goes with --count (or --first-stack, --pprof) or --latency"))
	}
	if c.Bool("latency") && (counting(c) || c.Bool("stacks")) {
		return usageError(errors.New("--latency prints histograms: it does not go with --count, --stacks, --first-stack or --pprof"))
	}
	for _, name := range c.StringSlice("by") {
		if err := probe.CheckArgName(name); err != nil {
			return usageError(fmt.Errorf("--by %q: %v; name a fetch arg of the probes, e.g. --by m for 'libc:pthread_mutex_lock m=arg1:x64'", name, err))
		}
	}
	if c.IsSet("buffer-pages") {
		n := c.Int("buffer-pages")
		if n < 1 || n > maxBufferPages || n&(n-1) != 0 {
			return usageError(fmt.Errorf("--buffer-pages %d: must be a power of two from 1 to %d (the ring size per CPU in pages: %d pages = 1 GiB is the largest ring the kernel maps; default %d = 4 MiB)",
				n, maxBufferPages, maxBufferPages, perfevent.DefaultPagesPerCPU))
		}
	}
	if n := c.Int("metrics-max-comms"); n < 0 {
		return usageError(fmt.Errorf("--metrics-max-comms %d: must be 0 or more (0: every hit under comm=\"other\")", n))
	}
	return nil
}

// trace runs a session to its end and tears it down on every way out.
// release, if not nil, is called once every probe is armed (run lets its
// command exec then); exited, if not nil, after the session is closed and
// before the summary, which carries what it returns (run waits for its
// command there). The flags have passed checkFlags.
func trace(c *cli.Context, cfg session.Config, release func() error, exited func() *session.ExitStatus) (err error) {
	cfg.Force = c.Bool("force")
	cfg.BufferPages = c.Int("buffer-pages")
	cfg.StatsInterval = c.Duration("stats-interval")
	if stacks(c) {
		cfg.StackDepth = c.Int("stack-depth")
	}
	if c.Bool("latency") {
		if cfg.Probes, err = latencyWords(cfg.Probes); err != nil {
			return err
		}
	}
	status := io.Writer(os.Stderr)
	if c.Bool("quiet") {
		status = io.Discard
		cfg.Log = io.Discard
	}

	// Every way out below must reach sess.Close, which removes our events:
	// signals become a cancelled context instead of killing us, and a broken
	// stdout (SIGPIPE when piped into head) becomes a write error.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	signal.Ignore(syscall.SIGPIPE)
	ctx, cancelOnWriteError := context.WithCancel(ctx)
	defer cancelOnWriteError()
	hitsTo := os.Stdout
	if path := c.String("output"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return usageError(fmt.Errorf("--output: %w", err))
		}
		defer f.Close()
		hitsTo = f
	}
	out := newWriter(c, hitsTo, status, cancelOnWriteError)
	var served *metrics.Sink
	if addr := c.String("metrics-addr"); addr != "" {
		if served, err = metrics.New(out, addr, metrics.MaxComms(c.Int("metrics-max-comms"))); err != nil {
			return usageError(fmt.Errorf("--metrics-addr %s: %w", addr, err))
		}
		defer served.Close()
		out = served
	}

	started := time.Now()
	sess, err := session.Start(cfg, out)
	if err != nil {
		return err
	}
	if served != nil {
		served.SetStats(sess.Stats)
	}
	// --duration is the tracing window: it starts at ready, once every
	// probe is armed (arming thousands of probes takes a while).
	if d := c.Duration("duration"); d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	defer func() {
		if r := recover(); r != nil {
			sess.Close()
			panic(r)
		}
	}()
	if release != nil {
		if err := release(); err != nil {
			sess.Close()
			return err
		}
	}
	runErr := sess.Run(ctx, c.Uint64("max-hits"))
	closeErr := sess.Close()
	st := sess.Stats()
	if exited != nil {
		st.Exit = exited()
	}
	out.Summary(st, time.Since(started))
	if runErr != nil {
		return runErr
	}
	if closeErr != nil {
		return closeErr
	}
	if err := out.Err(); err != nil && !errors.Is(err, syscall.EPIPE) {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// latencyWords gives, for each probe word naming a function's entry, the
// word and its %return, both fetching the stack pointer that pairs them.
func latencyWords(words []string) ([]string, error) {
	out := make([]string, 0, 2*len(words))
	for _, w := range words {
		spec, err := probe.ParseSpec(w)
		if err != nil {
			return nil, badInput(err)
		}
		if spec.Return || spec.USDT || spec.HasFileOffset || spec.SymbolOffset != 0 {
			return nil, badInput(fmt.Errorf("--latency: %q does not name a function's entry: write PATH:FUNCTION (its return is probed too)", w))
		}
		// The location ends at the first space or tab (ParseSpec checked it).
		w = strings.TrimSpace(w)
		loc, args := w, ""
		if i := strings.IndexAny(w, " \t"); i >= 0 {
			loc, args = w[:i], w[i:]
		}
		sp := " " + output.LatencySPArg + "=$stack"
		out = append(out, loc+sp+args, loc+"%return"+sp)
	}
	return out, nil
}

// counting: the hits are counted, not printed.
func counting(c *cli.Context) bool {
	return c.Bool("count") || c.Bool("first-stack") || c.String("pprof") != ""
}

// stacks: the hits carry their call stacks.
func stacks(c *cli.Context) bool {
	return c.Bool("stacks") || c.Bool("first-stack") || c.String("pprof") != ""
}

// newWriter picks the output: hits as text or JSON lines, or counts.
func newWriter(c *cli.Context, w, status io.Writer, onError func()) output.Writer {
	opts := output.CountOptions{Interval: c.Duration("interval"), Stacks: stacks(c), By: c.StringSlice("by"),
		FirstStack: c.Bool("first-stack"), Pprof: c.String("pprof")}
	switch {
	case c.Bool("latency") && c.Bool("json"):
		return output.NewLatency(output.NewJSON(w, onError), c.StringSlice("by"))
	case c.Bool("latency"):
		return output.NewLatency(output.NewText(w, status, onError), c.StringSlice("by"))
	case counting(c) && c.Bool("json"):
		return output.NewCount(output.NewJSON(w, onError), opts)
	case counting(c):
		return output.NewCount(output.NewText(w, status, onError), opts)
	case c.Bool("json"):
		return output.NewJSON(w, onError)
	}
	return output.NewText(w, status, onError)
}

// probeWords gathers the probes: args, --probes-file, $UPROBECTL_PROBES.
func probeWords(c *cli.Context, args []string) ([]string, error) {
	words := slices.Clone(args)
	if path := c.String("probes-file"); path != "" {
		text, err := readProbesFile(path)
		if err != nil {
			return nil, usageError(fmt.Errorf("--probes-file %s: %w", path, err))
		}
		words = append(words, probeLines(text)...)
	}
	return append(words, probeLines(os.Getenv("UPROBECTL_PROBES"))...), nil
}

// maxProbesFileSize bounds what --probes-file reads: far more than any list
// of probes, far less than a mistaken disk image.
const maxProbesFileSize = 16 << 20

// readProbesFile reads a probes file, which must be a regular file (a
// symlink to one, as in a mounted ConfigMap, is fine). Anything else is
// refused before it is read: opening a FIFO nobody writes to would block
// forever, a device could be endless. It is checked twice: with stat
// before opening, and with fstat on what was opened (non-blocking, so a
// FIFO swapped in between cannot block the open either).
func readProbesFile(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", notRegular(fi.Mode())
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		return "", &os.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	if fi, err = f.Stat(); err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", notRegular(fi.Mode())
	}
	b, err := io.ReadAll(io.LimitReader(f, maxProbesFileSize+1))
	if err != nil {
		return "", err
	}
	if len(b) > maxProbesFileSize {
		return "", fmt.Errorf("larger than %d MiB: a probes file holds one probe per line", maxProbesFileSize>>20)
	}
	return string(b), nil
}

// notRegular says what a file that is not a regular file is instead.
func notRegular(m os.FileMode) error {
	what := "a special file"
	switch {
	case m.IsDir():
		what = "a directory"
	case m&os.ModeNamedPipe != 0:
		what = "a FIFO"
	case m&os.ModeSocket != 0:
		what = "a socket"
	case m&os.ModeCharDevice != 0:
		what = "a character device"
	case m&os.ModeDevice != 0:
		what = "a block device"
	}
	return fmt.Errorf("not a regular file (%s): give a file with one probe per line", what)
}

// probeLines splits a probes file: one probe per line; blank lines and
// lines starting with # are skipped. A probe's own text is kept whole. A
// UTF-8 byte order mark at the start (Windows editors write one) is not
// part of the first line; CRLF line ends are trimmed with the spaces.
func probeLines(text string) []string {
	text = strings.TrimPrefix(text, "\ufeff")
	var words []string
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			words = append(words, line)
		}
	}
	return words
}

// containerRoot returns /proc/PID/root for --container-pid or
// --container-comm, or "".
func containerRoot(c *cli.Context) (string, error) {
	pid := c.Int("container-pid")
	if name := c.String("container-comm"); name != "" {
		if pid != 0 {
			return "", usageError(errors.New("--container-pid and --container-comm exclude each other"))
		}
		var err error
		if pid, err = waitForComm(name, c.Duration("wait")); err != nil {
			return "", session.Classify(session.ErrBadInput, err)
		}
	}
	if pid == 0 {
		return "", nil
	}
	root := fmt.Sprintf("/proc/%d/root", pid)
	if _, err := os.Stat(root + "/"); err != nil {
		class := session.ErrBadInput
		if errors.Is(err, os.ErrPermission) {
			class = session.ErrEnvironment
		}
		return "", session.Classify(class, fmt.Errorf("--container-pid %d: cannot read its root (%v): is the pid right, and does uprobectl share its PID namespace (shareProcessNamespace, or hostPID) with CAP_SYS_PTRACE?", pid, err))
	}
	return root, nil
}

// waitForComm finds the oldest process named name, waiting up to wait.
func waitForComm(name string, wait time.Duration) (int, error) {
	deadline := time.Now().Add(wait)
	for {
		if pid := finder.OldestWithComm("/proc", name); pid > 0 {
			return pid, nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("--container-comm %s: no such process after %s (check the name in /proc/PID/comm, at most 15 characters)", name, wait)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
