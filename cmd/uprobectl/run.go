package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/uprobectl/uprobectl/session"
)

// launchEnv marks a uprobectl process started by `run` as the launcher: it
// waits on fd 3 until the probes are armed, then execs the command. Because
// the perf events are opened on it with enable_on_exec before that, the
// command's very first instruction is traced, and its children inherit.
const launchEnv = "UPROBECTL_LAUNCH_FD"

func init() {
	if os.Getenv(launchEnv) != "" {
		// execve from the main thread: the perf events were opened on the
		// main thread, and it is the one that survives exec.
		runtime.LockOSThread()
	}
}

// launchIfAsked becomes the command when this process is a launcher.
func launchIfAsked() {
	if os.Getenv(launchEnv) == "" {
		return
	}
	fail := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "uprobectl run: "+format+"\n", args...)
		os.Exit(127)
	}
	go_ := os.NewFile(3, "launch")
	var b [1]byte
	if n, _ := go_.Read(b[:]); n != 1 {
		os.Exit(126) // uprobectl gave up before arming: do not run the command
	}
	go_.Close()
	if len(os.Args) < 2 {
		fail("no command")
	}
	path, err := exec.LookPath(os.Args[1])
	if err != nil {
		fail("%v", err)
	}
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, launchEnv+"=") })
	fail("exec %s: %v", path, syscall.Exec(path, os.Args[1:], env))
}

func runCommand() *cli.Command {
	return &cli.Command{
		Name:      "run",
		Usage:     "run a command with the probes armed from its first instruction, and trace it and its children",
		ArgsUsage: "PROBE... -- COMMAND [ARGS...]",
		Description: `The command is started stopped before exec; its perf events are opened with
enable_on_exec, so no hit is missed from its first instruction on, and its
children and threads are traced too. The run ends when the command exits;
uprobectl then exits with the command's exit status (128 + N when signal N
killed it), and the summary carries it ("exit_code", "signal" in JSON).
Library names resolve through the command's own RUNPATH/RPATH first. Use
--output to keep hits apart from the command's own output.

   uprobectl run --json 'libc.so.6:malloc size=arg1:u64' -- ./server --port 8080`,
		Flags:  withEnv(traceFlags()),
		Action: runRun,
	}
}

func runRun(c *cli.Context) error {
	if err := checkFlags(c); err != nil {
		return err
	}
	dash := slices.Index(os.Args, "--")
	if dash < 0 || dash == len(os.Args)-1 {
		return usageError(errors.New("run: usage: uprobectl run [flags] PROBE... -- COMMAND [ARGS...]"))
	}
	command := os.Args[dash+1:]
	args := c.Args().Slice()
	if len(args) < len(command) || !slices.Equal(args[len(args)-len(command):], command) {
		return usageError(errors.New("run: put the flags before the probes and the command after --"))
	}
	probes := args[:len(args)-len(command)]
	if n := len(probes); n > 0 && probes[n-1] == "--" {
		probes = probes[:n-1] // urfave/cli keeps the separator
	}
	probes, err := probeWords(c, probes)
	if err != nil {
		return err
	}
	if len(probes) == 0 {
		return usageError(errors.New("run: name at least one probe before -- (or give --probes-file, $UPROBECTL_PROBES)"))
	}
	program, err := exec.LookPath(command[0])
	if err != nil {
		return session.Classify(session.ErrBadInput, fmt.Errorf("run: %w", err))
	}

	self, err := os.Executable()
	if err != nil {
		return err
	}
	waitEnd, goEnd, err := os.Pipe()
	if err != nil {
		return err
	}
	launcher := exec.Command(self, command...)
	launcher.Env = append(os.Environ(), launchEnv+"=3")
	launcher.ExtraFiles = []*os.File{waitEnd}
	launcher.Stdin, launcher.Stdout, launcher.Stderr = os.Stdin, os.Stdout, os.Stderr
	// Signals that reach uprobectl while the command runs: the first ends
	// the tracing (trace), and the command gets them too (see waitCommand).
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(signals)
	if err := launcher.Start(); err != nil {
		return fmt.Errorf("run: start %s: %w", command[0], err)
	}
	waitEnd.Close()
	released := false
	var status *session.ExitStatus
	wait := func() *session.ExitStatus {
		if status == nil {
			status = waitCommand(launcher.Process, command[0], signals, c.Bool("quiet"))
		}
		return status
	}
	err = trace(c, session.Config{Probes: probes, Launch: launcher.Process.Pid, Program: program}, func() error {
		released = true
		_, err := goEnd.Write([]byte{1})
		goEnd.Close()
		return err
	}, wait)
	if !released {
		goEnd.Close() // the launcher exits without running the command
		launcher.Process.Wait()
		return err
	}
	wait() // trace failed before its summary: the command still ends first
	if err != nil {
		return err
	}
	if status.Code != 0 {
		// uprobectl's own exit code is the command's: 7 for exit 7, 143
		// for SIGTERM. Everything is flushed and torn down by now.
		os.Exit(status.Code)
	}
	return nil
}

// waitCommand waits for the command to exit and returns how it ended. The
// tracing is over by then (the command exited, or --duration, --max-hits
// or a signal ended it). A signal uprobectl received is passed on to the
// command if the command is still running half a second later (from a
// terminal both got it already), and so is every signal received while
// waiting: Ctrl-C or a SIGTERM to uprobectl reaches the command, whose
// status uprobectl then exits with.
func waitCommand(p *os.Process, name string, signals <-chan os.Signal, quiet bool) *session.ExitStatus {
	done := make(chan *os.ProcessState, 1)
	go func() {
		state, _ := p.Wait()
		done <- state
	}()
	var pending os.Signal
	select {
	case sig := <-signals:
		pending = sig
	default:
	}
	if pending != nil {
		select {
		case state := <-done:
			return session.ExitStatusOf(state)
		case <-time.After(500 * time.Millisecond):
			p.Signal(pending)
		}
	}
	select {
	case state := <-done: // it exited: its parent hears of it just after its last record
		return session.ExitStatusOf(state)
	case <-time.After(250 * time.Millisecond):
	}
	if !quiet {
		fmt.Fprintf(os.Stderr, "uprobectl run: tracing ended; waiting for %s (pid %d) to exit\n", name, p.Pid)
	}
	for {
		select {
		case state := <-done:
			return session.ExitStatusOf(state)
		case sig := <-signals:
			p.Signal(sig)
		}
	}
}
