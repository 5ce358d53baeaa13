package procfs

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// HidePID returns the hidepid option of the proc file system mounted at
// Root, as the kernel prints it in Root/self/mountinfo: "" when it has none
// (every process is listed to every reader), else "noaccess", "invisible"
// or "ptraceable" (1, 2 or 4 before Linux 5.8). Under "invisible" and
// "ptraceable" the processes the reader may not ptrace are missing from
// Root: a scan of Root does not see every process.
//
// The error wraps ErrMalformed when mountinfo has no proc mount at Root.
func (fs FS) HidePID() (string, error) {
	path := filepath.Join(fs.root(), "self", "mountinfo")
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	root, err := filepath.Abs(fs.root())
	if err != nil {
		return "", err
	}
	opts, ok, err := parseProcMountOptions(b, root)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	if !ok {
		return "", fmt.Errorf("%s: no proc mount at %s: %w", path, root, ErrMalformed)
	}
	for _, o := range strings.Split(opts, ",") {
		if v, ok := strings.CutPrefix(o, "hidepid="); ok {
			return v, nil
		}
	}
	return "", nil
}

// parseProcMountOptions returns the super options (the last field) of the
// proc mount at mountPoint in mountinfo (proc(5)):
//
//	21 26 0:20 / /proc rw,relatime - proc proc rw,hidepid=invisible
//
// The last such line is the one on top, which a path lookup reaches.
func parseProcMountOptions(b []byte, mountPoint string) (opts string, found bool, err error) {
	for n, line := 1, []byte(nil); len(b) > 0; n++ {
		line, b, _ = bytes.Cut(b, []byte("\n"))
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		// Fields are separated by single spaces; paths escape space, tab,
		// newline and backslash as \040 \011 \012 \134.
		f := strings.Split(string(line), " ")
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if len(f) < 7 || sep < 0 || sep+3 >= len(f) {
			return "", false, fmt.Errorf("mountinfo line %d %q: %w", n, line, ErrMalformed)
		}
		if f[sep+1] == "proc" && unescapeOctal(f[4]) == mountPoint {
			opts, found = f[sep+3], true
		}
	}
	return opts, found, nil
}

// unescapeOctal undoes the kernel's \NNN escapes of mountinfo paths.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var out strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				out.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		out.WriteByte(s[i])
	}
	return out.String()
}
