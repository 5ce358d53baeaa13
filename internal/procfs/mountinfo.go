package procfs

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
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

// Mount is one line of /proc/PID/mountinfo (proc(5)), the fields
// uprobectl uses.
type Mount struct {
	Root         string // root of the mount within its filesystem, unescaped
	MountPoint   string // relative to the process's root, unescaped
	FSType       string
	SuperOptions string // the file system's own options (the last field)
}

// ParseMountInfo parses /proc/PID/mountinfo:
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//
// Fields are separated by single spaces, optional fields run up to the "-"
// separator, and paths escape space, tab, newline and backslash as \040
// \011 \012 \134: any other blank (\r, U+3000...) is part of a path. A
// malformed line is an error wrapping ErrMalformed.
func ParseMountInfo(r io.Reader) ([]Mount, error) {
	var out []Mount
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.FieldsFunc(line, func(r rune) bool { return r == ' ' })
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if len(f) < 7 || sep < 0 || sep+1 >= len(f) {
			return nil, fmt.Errorf("mountinfo line %d %q: %w", n, line, ErrMalformed)
		}
		m := Mount{Root: unescapeOctal(f[3]), MountPoint: unescapeOctal(f[4]), FSType: f[sep+1]}
		if sep+3 < len(f) {
			m.SuperOptions = f[sep+3]
		}
		out = append(out, m)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	return out, nil
}

// parseProcMountOptions returns the super options of the proc mount at
// mountPoint in mountinfo. The last such line is the one on top, which a
// path lookup reaches.
func parseProcMountOptions(b []byte, mountPoint string) (opts string, found bool, err error) {
	mounts, err := ParseMountInfo(bytes.NewReader(b))
	if err != nil {
		return "", false, err
	}
	for _, m := range mounts {
		if m.FSType == "proc" && m.MountPoint == mountPoint {
			opts, found = m.SuperOptions, true
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
