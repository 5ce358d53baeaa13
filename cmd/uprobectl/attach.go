package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/uprobectl/uprobectl/output"
	"github.com/uprobectl/uprobectl/session"
)

// traceFlags are the flags attach and run share.
func traceFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "json", Aliases: []string{"j"}, Usage: "print JSON lines (the contract in the README)"},
		&cli.BoolFlag{Name: "count", Aliases: []string{"c"}, Usage: "print hit counts per probe and process instead of hits"},
		&cli.DurationFlag{Name: "interval", Aliases: []string{"i"}, Usage: "with --count: also print the counts of every interval (e.g. 1s)"},
		&cli.DurationFlag{Name: "duration", Aliases: []string{"d"}, Usage: "stop after this long (e.g. 5s, 2m)"},
		&cli.Uint64Flag{Name: "max-hits", Aliases: []string{"n"}, Usage: "stop after this many hits"},
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write hits (or counts) to this file instead of stdout"},
		&cli.BoolFlag{Name: "force", Usage: "accept an offset that is not proven to be an instruction boundary (a wrong one corrupts the target)"},
		&cli.IntFlag{Name: "buffer-pages", Value: 0, Usage: "ring buffer size per CPU, in pages (power of two; default 512 = 2 MiB)"},
		&cli.DurationFlag{Name: "stats-interval", Usage: "report the counters (hits, lost, processes tracked, own fds and goroutines) this often"},
	}
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
		Flags: append([]cli.Flag{
			&cli.IntSliceFlag{Name: "pid", Aliases: []string{"p"}, Usage: "trace this whole process (all its threads); repeatable. Default: every process that maps a probed file"},
			&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "with --pid: also trace the descendants, existing and new"},
			&cli.StringFlag{Name: "comm", Usage: "only processes with this command name (as in /proc/PID/comm)"},
		}, traceFlags()...),
		Action: runAttach,
	}
}

func runAttach(c *cli.Context) error {
	if c.NArg() == 0 {
		return usageError(errors.New("attach: name at least one probe, e.g. uprobectl attach libc.so.6:malloc"))
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
		Probes: c.Args().Slice(),
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

	// Every way out below must reach sess.Close, which removes our events:
	// signals become a cancelled context instead of killing us, and a broken
	// stdout (SIGPIPE when piped into head) becomes a write error.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	signal.Ignore(syscall.SIGPIPE)
	if d := c.Duration("duration"); d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
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
	out := newWriter(c, hitsTo, cancelOnWriteError)

	started := time.Now()
	sess, err := session.Start(cfg, out)
	if err != nil {
		return err
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
func newWriter(c *cli.Context, w io.Writer, onError func()) output.Writer {
	switch {
	case c.Bool("count") && c.Bool("json"):
		return output.NewCount(output.NewJSON(w, onError), c.Duration("interval"))
	case c.Bool("count"):
		return output.NewCount(output.NewText(w, os.Stderr, onError), c.Duration("interval"))
	case c.Bool("json"):
		return output.NewJSON(w, onError)
	}
	return output.NewText(w, os.Stderr, onError)
}
