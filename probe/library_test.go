package probe

import (
	"bufio"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/uprobectl/uprobectl/internal/procfs"
)

func TestResolveLibraryHost(t *testing.T) {
	libc := libcPath(t)
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatal(err)
	}
	if bash, err = filepath.EvalSymlinks(bash); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		lib  string
		want string
	}{
		{"soname", "libc.so.6", libc},
		{"short name skips the linker script libc.so", "libc", libc},
		{"program from $PATH", "bash", bash},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ResolveLibrary(tc.lib, ResolveOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestResolveLibraryErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		lib  string
		want error
		msg  string
	}{
		{"unknown library", "libdoesnotexist", ErrLibraryNotFound,
			`library "libdoesnotexist" not found in /etc/ld.so.cache, /lib/x86_64-linux-gnu, /usr/lib/x86_64-linux-gnu, /lib64, /usr/lib64, /lib, /usr/lib; give its path instead`},
		{"unknown program", "nosuchprogram", ErrLibraryNotFound, `program or library "nosuchprogram" not found in $PATH, /etc/ld.so.cache`},
		{"unknown soname", "libc.so.99", ErrLibraryNotFound, "not found"},
		{"a path", "a/b", ErrBadSpec, "give a path with '/' instead"},
		{"empty", "", ErrBadSpec, "not a library or program name"},
		{"newline", "libc\n", ErrBadSpec, `a newline (\n) at position 5`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ResolveLibrary(tc.lib, ResolveOptions{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("message %q does not contain %q", err.Error(), tc.msg)
			}
		})
	}
}

// startUser starts the fixture that links libtarget.so.1 and waits until it
// has loaded it. The process ends with the test.
func startUser(t *testing.T, env ...string) int {
	t.Helper()
	fx := testFixtures(t)
	cmd := exec.Command(fx.user)
	cmd.Env = append(os.Environ(), env...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ready") {
		t.Fatalf("user fixture: %q, %v", line, err)
	}
	go io.Copy(io.Discard, stdout)
	return cmd.Process.Pid
}

// TestResolveLibraryFromMaps finds a library that only the running process
// knows about (it is in no cache and no standard directory).
func TestResolveLibraryFromMaps(t *testing.T) {
	fx := testFixtures(t)
	// A second copy whose file name is not its soname, as old glibc's
	// libc-2.31.so: the maps show libtarget-1.0.so, the soname is libtarget.so.1.
	other := t.TempDir()
	data, err := os.ReadFile(fx.lib)
	if err != nil {
		t.Fatal(err)
	}
	real := filepath.Join(other, "libtarget-1.0.so")
	if err := os.WriteFile(real, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("libtarget-1.0.so", filepath.Join(other, "libtarget.so.1")); err != nil {
		t.Fatal(err)
	}
	pid := startUser(t)
	pidOther := startUser(t, "LD_LIBRARY_PATH="+other)
	libc := libcPath(t)
	for _, tc := range []struct {
		name string
		lib  string
		pid  int
		want string
	}{
		{"soname by file name", "libtarget.so.1", pid, fx.lib},
		{"short name", "libtarget", pid, fx.lib},
		{"libc through maps", "libc.so.6", pid, libc},
		{"soname by DT_SONAME", "libtarget.so.1", pidOther, real},
		{"short name, old style file", "libtarget", pidOther, real},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ResolveLibrary(tc.lib, ResolveOptions{PID: tc.pid})
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
	t.Run("not without the pid", func(t *testing.T) {
		_, err := ResolveLibrary("libtarget.so.1", ResolveOptions{})
		if !errors.Is(err, ErrLibraryNotFound) {
			t.Fatalf("got %v, want ErrLibraryNotFound", err)
		}
	})
	t.Run("gone process", func(t *testing.T) {
		_, err := ResolveLibrary("libtarget.so.1", ResolveOptions{PID: 1 << 30})
		if !errors.Is(err, ErrLibraryNotFound) || !strings.Contains(err.Error(), "/maps (unreadable)") {
			t.Fatalf("got %v, want ErrLibraryNotFound naming the unreadable maps", err)
		}
	})
}

// TestResolveInRoot builds a small root file system whose symlinks are
// absolute: followed on the host they would lead nowhere (or elsewhere).
func TestResolveInRoot(t *testing.T) {
	fx := testFixtures(t)
	root := t.TempDir()
	lib, err := os.ReadFile(fx.lib)
	if err != nil {
		t.Fatal(err)
	}
	write := func(p string, data []byte) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(root+p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(root+p, data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	link := func(target, p string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(root+p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, root+p); err != nil {
			t.Fatal(err)
		}
	}
	write("/usr/lib/x86_64-linux-gnu/libfoo.so.2.0.1", lib)
	link("/usr/lib/x86_64-linux-gnu/libfoo.so.2.0.1", "/usr/lib/x86_64-linux-gnu/libfoo.so.2")
	link("/usr/lib", "/lib")
	write("/opt/bar/libbar.so.1", lib)
	write("/etc/ld.so.cache", buildLDCache(false, [][2]string{{"libbar.so.1", "/opt/bar/libbar.so.1"}}))
	link("../../../../../../../../etc/hostname", "/usr/lib/x86_64-linux-gnu/libesc.so.1")
	link("/loop2", "/loop1")
	link("/loop1", "/loop2")

	t.Run("library", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			lib  string
			want string
		}{
			{"absolute symlinks inside the root", "libfoo", root + "/usr/lib/x86_64-linux-gnu/libfoo.so.2.0.1"},
			{"soname through a symlinked directory", "libfoo.so.2", root + "/usr/lib/x86_64-linux-gnu/libfoo.so.2.0.1"},
			{"the root's ld.so.cache", "libbar.so.1", root + "/opt/bar/libbar.so.1"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				for _, r := range []string{root, root + "/"} {
					got, err := ResolveLibrary(tc.lib, ResolveOptions{Root: r})
					if err != nil {
						t.Fatal(err)
					}
					if got != tc.want {
						t.Errorf("root %s: got %s, want %s", r, got, tc.want)
					}
				}
			})
		}
		for _, name := range []string{"libc.so.6", "libesc.so.1"} {
			_, err := ResolveLibrary(name, ResolveOptions{Root: root})
			if !errors.Is(err, ErrLibraryNotFound) || !strings.Contains(err.Error(), "(under "+root+")") {
				t.Errorf("%s: got %v, want ErrLibraryNotFound under the root", name, err)
			}
		}
	})

	t.Run("path", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			word string
			want string // Target.Path, or part of the error
			err  error
		}{
			{"through an absolute symlink", "/lib/x86_64-linux-gnu/libfoo.so.2:lt_api", root + "/usr/lib/x86_64-linux-gnu/libfoo.so.2.0.1", nil},
			{"plain", "/opt/bar/libbar.so.1:lt_api", root + "/opt/bar/libbar.so.1", nil},
			{"dot-dot stays inside", "/opt/../../../opt/bar/libbar.so.1:lt_api", root + "/opt/bar/libbar.so.1", nil},
			{"relative path", "opt/bar/libbar.so.1:lt_api", "is a relative path", ErrBadSpec},
			{"missing", "/opt/nope:lt_api", "no such file", os.ErrNotExist},
			{"loop", "/loop1:lt_api", "too many levels of symbolic links", nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				spec, err := ParseSpec(tc.word)
				if err != nil {
					t.Fatal(err)
				}
				targets, err := Resolve(spec, ResolveOptions{Root: root})
				if tc.err != nil || strings.Contains(tc.want, " ") {
					if err == nil || !strings.Contains(err.Error(), tc.want) || (tc.err != nil && !errors.Is(err, tc.err)) {
						t.Fatalf("got %v, want an error %v containing %q", err, tc.err, tc.want)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if len(targets) != 1 || targets[0].Path != tc.want {
					t.Fatalf("got %+v, want one target in %s", targets, tc.want)
				}
			})
		}
	})
}

func TestLibNameRank(t *testing.T) {
	for _, tc := range []struct {
		name, base    string
		rank, version int
		ok            bool
	}{
		{"libc.so.6", "libc.so.6", 0, 0, true},
		{"libc.so.6", "libc.so", 0, 0, false},
		{"libc.so.6", "libc-2.31.so", 0, 0, false},
		{"libc", "libc", 0, 0, true},
		{"libc", "libc.so.6", 1, 6, true},
		{"libc", "libc.so.6.0.1", 2, 6, true},
		{"libc", "libc.so", 3, 0, true},
		{"libc", "libc-2.31.so", 4, 0, true},
		{"libc", "libcap.so.2", 0, 0, false},
		{"libc", "libc_malloc_debug.so.0", 0, 0, false},
		{"libc", "libc.so.x", 2, 0, true},
	} {
		t.Run(tc.name+"/"+tc.base, func(t *testing.T) {
			rank, version, ok := libNameRank(tc.name, tc.base)
			if rank != tc.rank || version != tc.version || ok != tc.ok {
				t.Errorf("got %d %d %v, want %d %d %v", rank, version, ok, tc.rank, tc.version, tc.ok)
			}
		})
	}
}

func TestMapsFilePaths(t *testing.T) {
	maps := `55d0c0a00000-55d0c0a02000 r--p 00000000 08:01 1234  /usr/bin/cat
55d0c0a02000-55d0c0a06000 r-xp 00002000 08:01 1234  /usr/bin/cat
55d0c1a00000-55d0c1a21000 rw-p 00000000 00:00 0          [heap]
7f00aa000000-7f00aa028000 r--p 00000000 08:01 99         /usr/lib/x86_64-linux-gnu/libc.so.6
7f00ab000000-7f00ab001000 r-xp 00000000 08:01 77         /tmp/my dir/lib two.so
7f00ac000000-7f00ac001000 r-xp 00000000 08:01 78         /tmp/old.so (deleted)
7f00ad000000-7f00ad001000 rw-p 00000000 00:00 0
7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0          [vdso]
`
	parsed, err := procfs.ParseMaps([]byte(maps))
	if err != nil {
		t.Fatal(err)
	}
	got := mapsFilePaths(parsed)
	want := []string{"/usr/bin/cat", "/usr/lib/x86_64-linux-gnu/libc.so.6", "/tmp/my dir/lib two.so"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
}
