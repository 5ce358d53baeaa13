package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"syscall"

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
the summary carries its exit code. Use --output to keep hits apart from the
command's own output.

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
	if _, err := exec.LookPath(command[0]); err != nil {
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
	if err := launcher.Start(); err != nil {
		return fmt.Errorf("run: start %s: %w", command[0], err)
	}
	waitEnd.Close()
	released := false
	defer func() {
		if !released {
			goEnd.Close() // the launcher exits without running the command
		}
		state, _ := launcher.Process.Wait()
		if state != nil && released {
			fmt.Fprintf(os.Stderr, "uprobectl run: %s exited: %s\n", command[0], state)
		}
	}()
	return trace(c, session.Config{Probes: probes, Launch: launcher.Process.Pid}, func() error {
		released = true
		_, err := goEnd.Write([]byte{1})
		goEnd.Close()
		return err
	})
}
