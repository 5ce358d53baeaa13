package tracefs

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseMountInfo(t *testing.T) {
	tests := []struct {
		name       string
		file       string
		text       string
		wantTrace  []mountEntry // the tracefs entries
		candidates []string
		wantErr    bool
	}{
		{
			name:       "tracefs at /sys/kernel/tracing",
			file:       "testdata/mountinfo_sysfs.txt",
			wantTrace:  []mountEntry{{Root: "/", MountPoint: "/sys/kernel/tracing", FSType: "tracefs"}},
			candidates: []string{"/sys/kernel/tracing", "/sys/kernel/debug/tracing"},
		},
		{
			name: "debugfs automount listed first, documented mount point still preferred",
			file: "testdata/mountinfo_debugfs.txt",
			wantTrace: []mountEntry{
				{Root: "/", MountPoint: "/sys/kernel/debug/tracing", FSType: "tracefs"},
				{Root: "/", MountPoint: "/sys/kernel/tracing", FSType: "tracefs"},
			},
			candidates: []string{"/sys/kernel/tracing", "/sys/kernel/debug/tracing"},
		},
		{
			name: "container: escaped mount point, instance bind mount skipped",
			file: "testdata/mountinfo_container.txt",
			wantTrace: []mountEntry{
				{Root: "/instances/foo", MountPoint: "/mnt/instance", FSType: "tracefs"},
				{Root: "/", MountPoint: `/mnt/my trace\fs`, FSType: "tracefs"},
			},
			candidates: []string{`/mnt/my trace\fs`, "/sys/kernel/tracing", "/sys/kernel/debug/tracing"},
		},
		{
			name:       "no tracefs mounted",
			file:       "testdata/mountinfo_none.txt",
			candidates: []string{"/sys/kernel/tracing", "/sys/kernel/debug/tracing"},
		},
		{name: "no separator", text: "22 27 0:21 / /proc rw,relatime proc proc rw\n", wantErr: true},
		{name: "too short", text: "22 27 0:21 /\n", wantErr: true},
		{name: "nothing after separator", text: "22 27 0:21 / /proc rw -\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := tt.text
			if tt.file != "" {
				b, err := os.ReadFile(tt.file)
				if err != nil {
					t.Fatal(err)
				}
				text = string(b)
			}
			got, err := parseMountInfo(strings.NewReader(text))
			if tt.wantErr {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("err = %v, want ErrInvalid", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var trace []mountEntry
			for _, m := range got {
				if m.FSType == "tracefs" {
					m.SuperOptions = "" // not what this test is about
					trace = append(trace, m)
				}
			}
			if !reflect.DeepEqual(trace, tt.wantTrace) {
				t.Errorf("tracefs mounts %+v, want %+v", trace, tt.wantTrace)
			}
			if c := tracefsCandidates(got); !reflect.DeepEqual(c, tt.candidates) {
				t.Errorf("candidates %q, want %q", c, tt.candidates)
			}
		})
	}
}

func TestUnescapeMountPath(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"plain", "/sys/kernel/tracing", "/sys/kernel/tracing"},
		{"space", `/a\040b`, "/a b"},
		{"tab newline backslash", `/a\011b\012c\134d`, "/a\tb\nc\\d"},
		{"not octal", `/a\09z`, `/a\09z`},
		{"trailing backslash", `/a\`, `/a\`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mounts, err := parseMountInfo(strings.NewReader("700 612 0:12 / " + tt.in + " rw - tracefs nodev rw\n"))
			if err != nil || len(mounts) != 1 || mounts[0].MountPoint != tt.want {
				t.Errorf("%q -> %+v %v, want %q", tt.in, mounts, err, tt.want)
			}
		})
	}
}

func TestOpenKernel(t *testing.T) {
	fs := kernelFS(t)
	var st unix.Statfs_t
	if err := unix.Statfs(fs.Root, &st); err != nil {
		t.Fatal(err)
	}
	if st.Type != unix.TRACEFS_MAGIC {
		t.Errorf("%s is not a tracefs (magic %#x)", fs.Root, st.Type)
	}
	if _, err := os.Stat(fs.path("uprobe_events")); err != nil {
		t.Error(err)
	}
	if _, err := fs.errorLogTail(); err != nil {
		t.Errorf("error_log: %v", err)
	}
}

// TestOpenUnprivileged runs this test binary as nobody: Open must say that
// root or CAP_SYS_ADMIN/CAP_PERFMON is needed, and wrap ErrPermission.
func TestOpenUnprivileged(t *testing.T) {
	if os.Getenv("TRACEFS_TEST_UNPRIVILEGED") == "1" {
		_, err := Open()
		fmt.Printf("OPEN-RESULT: %v\n", err)
		if !errors.Is(err, ErrPermission) || !strings.Contains(err.Error(), "CAP_SYS_ADMIN") {
			t.Fatalf("Open as uid %d = %v, want ErrPermission naming CAP_SYS_ADMIN", os.Getuid(), err)
		}
		return
	}
	kernelFS(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch to nobody")
	}
	// The binary must be reachable by nobody: go test keeps it in a 0700
	// directory.
	dir, err := os.MkdirTemp("", "tracefs-unpriv")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "tracefs.test")
	self, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestOpenUnprivileged$", "-test.v")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TRACEFS_TEST_UNPRIVILEGED=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "OPEN-RESULT: ") {
		t.Fatalf("as nobody: %v\n%s", err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "OPEN-RESULT: ") {
			t.Log(l)
		}
	}
}
