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

	"github.com/uprobectl/uprobectl/finder"
	"github.com/uprobectl/uprobectl/metrics"
	"github.com/uprobectl/uprobectl/output"
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
		&cli.IntFlag{Name: "buffer-pages", Value: 0, Usage: "ring buffer size per CPU, in pages (power of two; default 512 = 2 MiB)"},
		&cli.DurationFlag{Name: "stats-interval", Usage: "report the counters (hits, lost, processes tracked, own fds and goroutines) this often"},
		&cli.StringFlag{Name: "probes-file", Usage: "read probes from this file, one per line (blank lines and lines starting with # are skipped); $UPROBECTL_PROBES may hold more, one per line"},
		&cli.StringFlag{Name: "metrics-addr", Usage: "serve Prometheus metrics at ADDR/metrics, and /healthz, /readyz (e.g. :9464)"},
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
	}, nil)
}

// trace runs a session to its end and tears it down on every way out.
// release, if not nil, is called once every probe is armed (run lets its
// command exec then).
func trace(c *cli.Context, cfg session.Config, release func() error) (err error) {
	if c.Duration("interval") > 0 && !c.Bool("count") {
		return usageError(errors.New("--interval goes with --count"))
	}
	cfg.Force = c.Bool("force")
	cfg.BufferPages = c.Int("buffer-pages")
	cfg.StatsInterval = c.Duration("stats-interval")
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
		if served, err = metrics.New(out, addr); err != nil {
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
	out.Summary(sess.Stats(), time.Since(started))
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

// newWriter picks the output: hits as text or JSON lines, or counts.
func newWriter(c *cli.Context, w, status io.Writer, onError func()) output.Writer {
	switch {
	case c.Bool("count") && c.Bool("json"):
		return output.NewCount(output.NewJSON(w, onError), c.Duration("interval"))
	case c.Bool("count"):
		return output.NewCount(output.NewText(w, status, onError), c.Duration("interval"))
	case c.Bool("json"):
		return output.NewJSON(w, onError)
	}
	return output.NewText(w, status, onError)
}

// probeWords gathers the probes: args, --probes-file, $UPROBECTL_PROBES.
func probeWords(c *cli.Context, args []string) ([]string, error) {
	words := slices.Clone(args)
	if path := c.String("probes-file"); path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, usageError(fmt.Errorf("--probes-file: %w", err))
		}
		words = append(words, probeLines(string(b))...)
	}
	return append(words, probeLines(os.Getenv("UPROBECTL_PROBES"))...), nil
}

// probeLines splits a probes file: one probe per line; blank lines and
// lines starting with # are skipped. A probe's own text is kept whole.
func probeLines(text string) []string {
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
