// Command uprobectl puts uprobes on functions of binaries and shared
// libraries through tracefs and perf events, and streams every hit,
// attributed to the process that made it.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/uprobectl/uprobectl/session"
)

// Exit codes, documented in the README; scripts depend on them.
const (
	exitOK          = 0 // done: the run ended as asked (end of processes, --duration, --max-hits, SIGINT/SIGTERM)
	exitFailure     = 1 // something failed while running
	exitBadInput    = 2 // the command line: usage, probe spec, file, symbol, fetch arg, offset, pid
	exitEnvironment = 3 // the machine: no tracefs/uprobes, no permission
)

func main() {
	launchIfAsked()
	app := &cli.App{
		Name:                 "uprobectl",
		Usage:                "trace function calls in binaries and shared libraries with uprobes (tracefs + perf events, no BPF)",
		EnableBashCompletion: true,
		HideHelpCommand:      true,
		Commands: []*cli.Command{
			attachCommand(),
			runCommand(),
			symbolsCommand(),
			listCommand(),
			cleanCommand(),
		},
		ExitErrHandler: func(*cli.Context, error) {}, // main reports errors itself
		OnUsageError: func(c *cli.Context, err error, _ bool) error {
			return usageError(err)
		},
	}
	for _, cmd := range app.Commands {
		cmd.OnUsageError = app.OnUsageError
	}
	err := app.Run(os.Args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "uprobectl: %v\n", err)
	}
	os.Exit(exitCode(err))
}

type usageErr struct{ error }

func usageError(err error) error { return usageErr{err} }

func exitCode(err error) int {
	var usage usageErr
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &usage), errors.Is(err, session.ErrBadInput):
		return exitBadInput
	case errors.Is(err, session.ErrEnvironment):
		return exitEnvironment
	}
	return exitFailure
}
