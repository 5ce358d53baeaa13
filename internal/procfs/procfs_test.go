package procfs

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// fakeProc copies testdata/proc into a temporary directory and adds what a
// fixture cannot hold: the symlinks, and a directory that is not a pid.
func fakeProc(t *testing.T) FS {
	t.Helper()
	root := t.TempDir()
	if err := os.CopyFS(root, os.DirFS("testdata/proc")); err != nil {
		t.Fatal(err)
	}
	links := map[string]string{
		"self":        "4242",
		"4242/exe":    "/opt/my app/bin/target (deleted)",
		"4242/ns/pid": "pid:[4026532834]",
		"4242/ns/mnt": "mnt:[4026532833]",
	}
	for name, target := range links {
		path := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, path); err != nil {
			t.Fatal(err)
		}
	}
	for _, dir := range []string{"sys", "4242/task/notes"} {
		if err := os.Mkdir(filepath.Join(root, dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return New(root)
}

func TestFSFixture(t *testing.T) {
	fs := fakeProc(t)
	const pid = 4242

	st, err := fs.Stat(pid)
	if want := (Stat{PID: pid, Comm: "my) prog", State: 'S', PPID: 1, StartTime: 8675309}); err != nil || st != want {
		t.Errorf("Stat = %+v, %v, want %+v", st, err, want)
	}
	status, err := fs.Status(pid)
	if err != nil || status.Tgid != pid || status.InnermostPID() != 17 {
		t.Errorf("Status = %+v, %v", status, err)
	}
	if comm, err := fs.Comm(pid); err != nil || comm != "my) prog" {
		t.Errorf("Comm = %q, %v", comm, err)
	}
	if exe, err := fs.Exe(pid); err != nil || exe != "/opt/my app/bin/target (deleted)" {
		t.Errorf("Exe = %q, %v", exe, err)
	}
	if cg, err := fs.Cgroup(pid); err != nil || cg != "/system.slice/target.service" {
		t.Errorf("Cgroup = %q, %v", cg, err)
	}
	if maps, err := fs.Maps(pid); err != nil || len(maps) != 15 {
		t.Errorf("Maps = %d mappings, %v, want 15", len(maps), err)
	}
	if tids, err := fs.Threads(pid); err != nil || !slices.Equal(tids, []int{4242, 4250}) {
		t.Errorf("Threads = %v, %v", tids, err)
	}
	if pids, err := fs.PIDs(); err != nil || !slices.Equal(pids, []int{4242}) {
		t.Errorf("PIDs = %v, %v", pids, err)
	}
	if self, err := fs.Self(); err != nil || self != pid {
		t.Errorf("Self = %d, %v", self, err)
	}
	if ino, err := fs.NamespaceInode(pid, "pid"); err != nil || ino != 4026532834 {
		t.Errorf("NamespaceInode(pid) = %d, %v", ino, err)
	}
	if ino, err := fs.NamespaceInode(pid, "mnt"); err != nil || ino != 4026532833 {
		t.Errorf("NamespaceInode(mnt) = %d, %v", ino, err)
	}
}

// TestFSNoProcess reads a pid that does not exist: every reader says so
// with ErrNoProcess.
func TestFSNoProcess(t *testing.T) {
	fs := fakeProc(t)
	const pid = 4243
	readers := map[string]func() error{
		"Stat":           func() error { _, err := fs.Stat(pid); return err },
		"Status":         func() error { _, err := fs.Status(pid); return err },
		"Comm":           func() error { _, err := fs.Comm(pid); return err },
		"Exe":            func() error { _, err := fs.Exe(pid); return err },
		"Cgroup":         func() error { _, err := fs.Cgroup(pid); return err },
		"Maps":           func() error { _, err := fs.Maps(pid); return err },
		"Threads":        func() error { _, err := fs.Threads(pid); return err },
		"NamespaceInode": func() error { _, err := fs.NamespaceInode(pid, "pid"); return err },
		"Self":           func() error { _, err := New(t.TempDir()).Self(); return err },
	}
	for name, read := range readers {
		t.Run(name, func(t *testing.T) {
			if err := read(); !errors.Is(err, ErrNoProcess) {
				t.Errorf("err = %v, want ErrNoProcess", err)
			}
		})
	}
}

func TestFSErrors(t *testing.T) {
	t.Run("malformed stat names the file", func(t *testing.T) {
		fs := fakeProc(t)
		path := filepath.Join(fs.Root, "4242", "stat")
		if err := os.WriteFile(path, []byte("4242 (x) S 1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := fs.Stat(4242)
		if !errors.Is(err, ErrMalformed) || errors.Is(err, ErrNoProcess) || !errorNames(err, path) {
			t.Errorf("err = %v, want ErrMalformed naming %s", err, path)
		}
	})
	t.Run("no exe, process still there (kernel thread, zombie)", func(t *testing.T) {
		fs := fakeProc(t)
		if err := os.Remove(filepath.Join(fs.Root, "4242", "exe")); err != nil {
			t.Fatal(err)
		}
		_, err := fs.Exe(4242)
		if !errors.Is(err, os.ErrNotExist) || errors.Is(err, ErrNoProcess) {
			t.Errorf("err = %v, want ErrNotExist but not ErrNoProcess", err)
		}
	})
	t.Run("namespace link of another kind", func(t *testing.T) {
		fs := fakeProc(t)
		path := filepath.Join(fs.Root, "4242", "ns", "net")
		if err := os.Symlink("pid:[1]", path); err != nil {
			t.Fatal(err)
		}
		_, err := fs.NamespaceInode(4242, "net")
		if !errors.Is(err, ErrMalformed) || !errorNames(err, path) {
			t.Errorf("err = %v, want ErrMalformed naming %s", err, path)
		}
	})
	t.Run("root missing", func(t *testing.T) {
		root := filepath.Join(t.TempDir(), "missing")
		if _, err := New(root).PIDs(); err == nil || !errorNames(err, root) {
			t.Errorf("err = %v, want an error naming %s", err, root)
		}
	})
}

func errorNames(err error, path string) bool {
	return err != nil && strings.Contains(err.Error(), path)
}

// TestFSLive reads this process from the real /proc, as any user may.
func TestFSLive(t *testing.T) {
	fs := New("")
	pid := os.Getpid()
	if self, err := fs.Self(); err != nil || self != pid {
		t.Fatalf("Self = %d, %v, want %d", self, err, pid)
	}
	st, err := fs.Stat(pid)
	if err != nil || st.PID != pid || st.PPID != os.Getppid() || st.StartTime == 0 || st.State == 0 {
		t.Errorf("Stat = %+v, %v", st, err)
	}
	status, err := fs.Status(pid)
	if err != nil || status.Tgid != pid || status.PPid != os.Getppid() || len(status.NSpid) == 0 || status.NSpid[0] != pid {
		t.Errorf("Status = %+v, %v", status, err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := fs.Exe(pid); err != nil || got != exe {
		t.Errorf("Exe = %q, %v, want %q", got, err, exe)
	}
	if comm, err := fs.Comm(pid); err != nil || comm != st.Comm {
		t.Errorf("Comm = %q, %v, want %q as in stat", comm, err, st.Comm)
	}
	if tids, err := fs.Threads(pid); err != nil || !slices.Contains(tids, pid) {
		t.Errorf("Threads = %v, %v: no main thread %d", tids, err, pid)
	}
	if pids, err := fs.PIDs(); err != nil || !slices.Contains(pids, pid) {
		t.Errorf("PIDs: %v, this process missing", err)
	}
	var nsStat unix.Stat_t
	if err := unix.Stat("/proc/self/ns/pid", &nsStat); err != nil {
		t.Fatal(err)
	}
	if ino, err := fs.NamespaceInode(pid, "pid"); err != nil || ino != nsStat.Ino {
		t.Errorf("NamespaceInode = %d, %v, want %d (stat)", ino, err, nsStat.Ino)
	}

	var exeStat unix.Stat_t
	if err := unix.Stat(exe, &exeStat); err != nil {
		t.Fatal(err)
	}
	maps, err := fs.Maps(pid)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(maps, func(m Mapping) bool {
		return m.Dev == exeStat.Dev && m.Ino == exeStat.Ino && m.Path == exe && m.Perms[2] == 'x'
	}) {
		t.Errorf("no executable mapping of %s (%d:%d inode %d) in %+v",
			exe, unix.Major(exeStat.Dev), unix.Minor(exeStat.Dev), exeStat.Ino, maps)
	}
}

func TestEnviron(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "7"), 0o755)
	os.WriteFile(filepath.Join(dir, "7", "environ"), []byte("A=1\x00LD_LIBRARY_PATH=/opt/lib:/x\x00EMPTY=\x00"), 0o644)
	fs := New(dir)
	for _, c := range []struct {
		name, want string
		set        bool
	}{{"LD_LIBRARY_PATH", "/opt/lib:/x", true}, {"EMPTY", "", true}, {"A", "1", true}, {"NOPE", "", false}, {"LD_LIBRARY", "", false}} {
		if v, set, err := fs.Environ(7, c.name); err != nil || v != c.want || set != c.set {
			t.Errorf("Environ(%s) = %q %v %v, want %q %v", c.name, v, set, err, c.want, c.set)
		}
	}
	if _, _, err := fs.Environ(8, "A"); !errors.Is(err, ErrNoProcess) {
		t.Errorf("missing process: %v, want ErrNoProcess", err)
	}
}
