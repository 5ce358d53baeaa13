package procfs

import "bytes"

// ParseCgroup returns the cgroup v2 path of /proc/PID/cgroup: the path of
// the unified hierarchy's line "0::PATH", which names a container's cgroup
// on hybrid hosts too. It returns "" when there is no such line (a host with
// cgroup v1 only). The v1 lines ("ID:CONTROLLERS:PATH") are skipped.
func ParseCgroup(b []byte) string {
	for line := range bytes.Lines(b) {
		if path, ok := bytes.CutPrefix(line, []byte("0::")); ok {
			return string(bytes.TrimSuffix(path, []byte("\n")))
		}
	}
	return ""
}

// Cgroup reads the cgroup v2 path of pid from /proc/PID/cgroup; see
// ParseCgroup.
func (fs FS) Cgroup(pid int) (string, error) {
	b, err := fs.readFile(pid, "cgroup")
	if err != nil {
		return "", err
	}
	return ParseCgroup(b), nil
}
