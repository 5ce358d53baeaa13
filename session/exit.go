package session

import (
	"os"
	"syscall"
)

// ExitStatus is how a command ended.
type ExitStatus struct {
	// Code is its exit status, or 128 + the signal number when a signal
	// killed it (as a shell reports it: 143 for SIGTERM).
	Code int
	// Signal is the number of the signal that killed it; 0 when it exited.
	Signal int
}

// ExitStatusOf converts what os.Process.Wait returned.
func ExitStatusOf(state *os.ProcessState) *ExitStatus {
	if state == nil {
		return nil
	}
	if ws, ok := state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return &ExitStatus{Code: 128 + int(ws.Signal()), Signal: int(ws.Signal())}
	}
	return &ExitStatus{Code: state.ExitCode()}
}
