package probe

import (
	"fmt"
	"strings"
)

// maxEventNameLen is the longest tracefs event name we make (the kernel's
// MAX_EVENT_NAME_LEN is 64 including the NUL).
const maxEventNameLen = 63

// AssignEventNames sets Target.Event for every target to a name that is
// unique within targets and valid for tracefs: [A-Za-z0-9_] only, starting
// with a letter or '_', at most 63 characters.
//
// The name is the symbol, sanitized (malloc), or for a C++ or Rust symbol
// its demangled name without return type, compacted
// (ns::Class::method(int) gives ns_Class_method_int); "_0x10" is appended for a
// symbol offset (malloc_0x10) and a raw file offset gives off_0x1139; a
// return probe ends in "__return". Duplicates get "_2", "_3", ... in the
// order of targets. Events already set are overwritten.
//
// It runs in linear time: the next free number of each name is kept, so
// 10,000 identical probe words do not try 1, 2, ... for each.
func AssignEventNames(targets []Target) {
	used := make(map[string]bool, len(targets))
	next := map[string]int{} // first name -> the number to try next
	for i := range targets {
		t := &targets[i]
		base := eventBase(t)
		suffix := ""
		if t.Return {
			suffix = "__return"
		}
		first := fitName(base, suffix)
		name := first
		if used[name] {
			n := max(next[first], 2)
			for name = fitName(base, fmt.Sprintf("_%d%s", n, suffix)); used[name]; {
				n++
				name = fitName(base, fmt.Sprintf("_%d%s", n, suffix))
			}
			next[first] = n + 1
		}
		used[name] = true
		t.Event = name
	}
}

// eventBase is the event name before its suffixes.
func eventBase(t *Target) string {
	if t.Symbol == "" {
		return fmt.Sprintf("off_0x%x", t.Offset)
	}
	base := ""
	if _, forms := demangleNames(t.Symbol); forms.noReturn != "" {
		base = compactEventName(forms.noReturn) // ns::Class::method(int) -> ns_Class_method_int
	} else {
		base = sanitizeEventName(t.Symbol)
	}
	if t.Spec != nil && t.Spec.SymbolOffset != 0 {
		base += fmt.Sprintf("_0x%x", t.Spec.SymbolOffset)
	}
	return base
}

// sanitizeEventName maps every byte outside [A-Za-z0-9_] to '_' and makes
// sure the name does not start with a digit.
func sanitizeEventName(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			b.WriteByte(c)
		} else {
			b.WriteByte('_')
		}
	}
	name := b.String()
	if name == "" || name[0] >= '0' && name[0] <= '9' {
		name = "_" + name
	}
	return name
}

// compactEventName is sanitizeEventName for a demangled name: each run of
// bytes outside [A-Za-z0-9_] becomes one '_', and none is left at the end.
func compactEventName(s string) string {
	var b strings.Builder
	replaced := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			b.WriteByte(c)
			replaced = false
		} else if !replaced {
			b.WriteByte('_')
			replaced = true
		}
	}
	return sanitizeEventName(strings.TrimSuffix(b.String(), "_"))
}

// fitName joins base and suffix, cutting base so that the result fits.
func fitName(base, suffix string) string {
	if len(base)+len(suffix) > maxEventNameLen {
		base = base[:maxEventNameLen-len(suffix)]
	}
	return base + suffix
}
