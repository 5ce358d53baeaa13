package output

import (
	"strconv"
	"unicode/utf8"
)

// Names in text output come from the traced processes (comm, exe, the paths
// of probed files, symbols), and a traced program chooses them: a comm of
// "x\x1b[2J\nFAKE" would clear the terminal and forge a line. So every name
// printed in text mode goes through appendName or escapeName:
//
//   - a clean name is printed as it is: valid UTF-8, every rune printable
//     (strconv.IsPrint, or an ASCII space) and no backslash;
//   - any other name is printed with Go's escapes, as strconv.Quote would
//     but without the quotes: \n \r \t \a \b \f \v, \xNN for other ASCII
//     controls, DEL and bytes that are not UTF-8, \uNNNN or \UNNNNNNNN for
//     unprintable runes (C1 controls, bidi overrides, U+2028...), \\ for a
//     backslash; printable runes are kept.
//
// A backslash is always escaped, so the output is unambiguous: a name is
// recovered with strconv.Unquote(`"` + escaped + `"`) once its double quotes
// are escaped. Text output thus carries no control character from a traced
// process, and a hit is always exactly one line. Checking comes first, so a
// clean name costs no allocation.

// clean reports whether s is printed as it is.
func clean(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			return cleanUnicode(s[i:])
		}
		if c < ' ' || c == 0x7f || c == '\\' {
			return false
		}
	}
	return true
}

func cleanUnicode(s string) bool {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r < utf8.RuneSelf {
			if r < ' ' || r == 0x7f || r == '\\' {
				return false
			}
		} else if r == utf8.RuneError && n == 1 || !strconv.IsPrint(r) {
			return false
		}
		i += n
	}
	return true
}

// appendName appends s to b, escaped when it is not clean.
func appendName(b []byte, s string) []byte {
	if clean(s) {
		return append(b, s...)
	}
	return appendEscaped(b, s)
}

// escapeName is s, escaped when it is not clean (for fmt-built lines).
func escapeName(s string) string {
	if clean(s) {
		return s
	}
	return string(appendEscaped(nil, s))
}

const nameHex = "0123456789abcdef"

func appendEscaped(b []byte, s string) []byte {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			b = append(b, '\\', 'x', nameHex[s[i]>>4], nameHex[s[i]&0xf])
		case r == '\\':
			b = append(b, '\\', '\\')
		case r >= ' ' && r < 0x7f, r >= utf8.RuneSelf && strconv.IsPrint(r):
			b = append(b, s[i:i+n]...)
		default:
			// An unprintable rune: strconv's escape (\n, \xNN, \uNNNN,
			// \UNNNNNNNN), without the quotes around it.
			start := len(b)
			b = strconv.AppendQuoteRune(b, r)
			b = append(b[:start], b[start+1:len(b)-1]...)
		}
		i += n
	}
	return b
}
