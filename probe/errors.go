package probe

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error returned by this package wraps one of these
// (test with errors.Is); the message itself is one line that names the thing
// and says what to do, and is meant to be printed as-is.
var (
	// ErrBadSpec: the probe word is malformed (syntax, forbidden characters).
	ErrBadSpec = errors.New("bad probe")
	// ErrBadArg: a fetch argument is malformed or not accepted by the
	// kernel's uprobe parser.
	ErrBadArg = errors.New("bad fetch argument")
	// ErrBadPath: a resolved path cannot be written to uprobe_events
	// (for example a symlink pointing to a name with a newline).
	ErrBadPath = errors.New("path cannot be passed to the kernel")
	// ErrNotELF: the file is not an ELF file.
	ErrNotELF = errors.New("not an ELF file")
	// ErrWrongArch: the file is an ELF file for another machine than x86-64.
	ErrWrongArch = errors.New("not an x86-64 ELF file")
	// ErrNoSymbols: the file has neither .symtab nor .dynsym.
	ErrNoSymbols = errors.New("no symbol table")
	// ErrSymbolNotFound: no function matches the symbol or glob.
	ErrSymbolNotFound = errors.New("symbol not found")
	// ErrIFunc: the symbol is a GNU indirect function; its address is the
	// resolver, which runs once at load time, not the function the user means.
	ErrIFunc = errors.New("symbol is a GNU indirect function")
	// ErrUnsafeOffset: the offset could not be proven to be an instruction
	// boundary inside a function (or is otherwise unsafe to probe).
	ErrUnsafeOffset = errors.New("unsafe probe offset")
	// ErrRefused: the kernel will not put a uprobe on that instruction.
	ErrRefused = errors.New("instruction refused by uprobes")
	// ErrLibraryNotFound: a library or program name could not be resolved to
	// a file.
	ErrLibraryNotFound = errors.New("library not found")
)

// probeError is an error with a complete, human-oriented message that still
// answers errors.Is for its kind (one of the sentinels above) and for the
// underlying cause (e.g. fs.ErrNotExist), without repeating their texts.
type probeError struct {
	msg   string
	kind  error
	cause error
}

func (e *probeError) Error() string { return e.msg }

func (e *probeError) Unwrap() []error {
	if e.cause != nil {
		return []error{e.kind, e.cause}
	}
	return []error{e.kind}
}

// newError returns an error of the given kind with a formatted message.
func newError(kind error, format string, args ...any) error {
	return &probeError{msg: fmt.Sprintf(format, args...), kind: kind}
}

// wrapError is newError with an underlying cause that errors.Is also sees.
func wrapError(kind, cause error, format string, args ...any) error {
	return &probeError{msg: fmt.Sprintf(format, args...), kind: kind, cause: cause}
}
