package finder

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// fakeProc copies testdata/proc into a temporary directory and adds what a
// fixture cannot hold: the exe symlink.
func fakeProc(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	if err := os.CopyFS(root, os.DirFS("testdata/proc")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/opt/my app/bin/target", filepath.Join(root, "4242", "exe")); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestReadProcessFake(t *testing.T) {
	root := fakeProc(t)
	tests := []struct {
		name    string
		prepare func(t *testing.T, dir string) // dir is root/4242
		want    Process
	}{
		{
			name: "every file",
			want: Process{PID: 4242, PPID: 1, NSPID: 17, Comm: "my) prog", Exe: "/opt/my app/bin/target",
				StartTime: 8675309, Cgroup: "/system.slice/target.service"},
		},
		{
			name: "only stat: comm from stat, NSPID is PID",
			prepare: func(t *testing.T, dir string) {
				for _, f := range []string{"comm", "exe", "status", "cgroup"} {
					if err := os.Remove(filepath.Join(dir, f)); err != nil {
						t.Fatal(err)
					}
				}
			},
			want: Process{PID: 4242, PPID: 1, NSPID: 4242, Comm: "my) prog", StartTime: 8675309},
		},
		{
			name: "comm file wins over stat (renamed after the stat read)",
			prepare: func(t *testing.T, dir string) {
				writeFile(t, filepath.Join(dir, "comm"), "renamed\n")
			},
			want: Process{PID: 4242, PPID: 1, NSPID: 17, Comm: "renamed", Exe: "/opt/my app/bin/target",
				StartTime: 8675309, Cgroup: "/system.slice/target.service"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := fakeProc(t)
			if tt.prepare != nil {
				tt.prepare(t, filepath.Join(root, "4242"))
			}
			got, err := ReadProcess(root, 4242)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("ReadProcess =\n%+v\nwant\n%+v", *got, tt.want)
			}
		})
	}

	t.Run("a thread reads as its process", func(t *testing.T) {
		root := fakeProc(t)
		thread := filepath.Join(root, "4250")
		if err := os.CopyFS(thread, os.DirFS(filepath.Join(root, "4242"))); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(thread, "status"), "Tgid:\t4242\nPid:\t4250\nNSpid:\t4250\t18\n")
		got, err := ReadProcess(root, 4250)
		if err != nil || got.PID != 4242 || got.NSPID != 17 {
			t.Errorf("ReadProcess(thread) = %+v, %v, want its process 4242", got, err)
		}
	})
	t.Run("no such pid", func(t *testing.T) {
		_, err := ReadProcess(root, 4243)
		if !errors.Is(err, ErrNoProcess) {
			t.Errorf("err = %v, want ErrNoProcess", err)
		}
	})
	t.Run("malformed stat", func(t *testing.T) {
		root := fakeProc(t)
		writeFile(t, filepath.Join(root, "4242", "stat"), "4242 (x) S 1\n")
		_, err := ReadProcess(root, 4242)
		if err == nil || errors.Is(err, ErrNoProcess) || !strings.Contains(err.Error(), "4242/stat") {
			t.Errorf("err = %v, want a parse error naming the file", err)
		}
	})
}

func TestThreadsFake(t *testing.T) {
	root := fakeProc(t)
	// Not a thread: Threads must skip it.
	if err := os.Mkdir(filepath.Join(root, "4242", "task", "notes"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := Threads(root, 4242)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if want := []int{4242, 4250}; !slices.Equal(got, want) {
		t.Errorf("Threads = %v, want %v", got, want)
	}
	if _, err := Threads(root, 4243); !errors.Is(err, ErrNoProcess) {
		t.Errorf("Threads(no such pid): err = %v, want ErrNoProcess", err)
	}
}

func TestReadProcessSelf(t *testing.T) {
	pid := os.Getpid()
	p, err := ReadProcess("/proc", pid)
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The kernel keeps the first 15 bytes of the executable's name.
	wantComm := filepath.Base(exe)
	if len(wantComm) > 15 {
		wantComm = wantComm[:15]
	}
	if p.PID != pid || p.Comm != wantComm || p.Exe != exe {
		t.Errorf("PID, Comm, Exe = %d, %q, %q, want %d, %q, %q", p.PID, p.Comm, p.Exe, pid, wantComm, exe)
	}
	if p.StartTime == 0 {
		t.Error("StartTime = 0")
	}
	if p.NSPID <= 0 {
		t.Errorf("NSPID = %d", p.NSPID)
	}
	again, err := ReadProcess("/proc", pid)
	if err != nil {
		t.Fatal(err)
	}
	if again.StartTime != p.StartTime {
		t.Errorf("StartTime changed between two reads: %d, %d", p.StartTime, again.StartTime)
	}

	tids, err := Threads("/proc", pid)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(tids, pid) {
		t.Errorf("Threads = %v: no main thread %d", tids, pid)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
