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

// statLine is a /proc/PID/stat line with the given comm and starttime
// (field 22); the other fields are those of a real process.
func statLine(comm, startTime string) string {
	return "4242 (" + comm + ") S 1 4242 4242 0 -1 4194560 2453 0 12 0 31 9 0 0 20 0 3 0 " + startTime +
		" 225280000 5120 18446744073709551615 4194304 4522469 140724432311088 0 0 0 0 4096 16387 0 0 0 17 2 0 0 0 0 0\n"
}

func TestParseStat(t *testing.T) {
	tests := []struct {
		name      string
		line      string
		wantComm  string
		wantStart uint64
		wantErr   bool
	}{
		{name: "plain", line: statLine("cat", "167615"), wantComm: "cat", wantStart: 167615},
		{name: "comm with spaces", line: statLine("tmux: server", "42"), wantComm: "tmux: server", wantStart: 42},
		{name: "comm with \") \" inside", line: statLine("my) prog", "8675309"), wantComm: "my) prog", wantStart: 8675309},
		{name: "comm ending in \")\"", line: statLine("x)", "7"), wantComm: "x)", wantStart: 7},
		{name: "comm in parentheses", line: statLine("(sd-pam)", "9"), wantComm: "(sd-pam)", wantStart: 9},
		{name: "empty comm", line: statLine("", "1"), wantComm: "", wantStart: 1},
		{name: "starttime beyond 32 bits", line: statLine("a", "18446744073709551615"), wantComm: "a", wantStart: 1<<64 - 1},
		{
			name:     "exactly up to starttime",
			line:     "1 (init) S 0 1 1 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 12345",
			wantComm: "init", wantStart: 12345,
		},
		{name: "one field short of starttime", line: "1 (init) S 0 1 1 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0", wantErr: true},
		{name: "nothing after comm", line: "1 (init)", wantErr: true},
		{name: "no parentheses", line: "1 init S 0 1 1", wantErr: true},
		{name: "no closing parenthesis", line: "1 (init S 0 1 1 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 12345", wantErr: true},
		{name: "parentheses reversed", line: "1 )init( S 0 1 1 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 12345", wantErr: true},
		{name: "starttime not a number", line: statLine("a", "x1"), wantErr: true},
		{name: "empty", line: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := parseStat([]byte(tt.line))
			if tt.wantErr {
				if err == nil {
					t.Fatalf("parseStat = %+v, want an error", st)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			wantPPID := 1
			if tt.name == "exactly up to starttime" {
				wantPPID = 0
			}
			if st.comm != tt.wantComm || st.startTime != tt.wantStart || st.ppid != wantPPID {
				t.Errorf("parseStat = %+v, want %q, ppid %d, start %d", st, tt.wantComm, wantPPID, tt.wantStart)
			}
		})
	}
}

func TestParseNSPID(t *testing.T) {
	tests := []struct {
		name   string
		status string
		want   int
	}{
		{name: "no namespace", status: "Name:\tcat\nTgid:\t4242\nPid:\t4242\nNSpid:\t4242\nThreads:\t1\n", want: 4242},
		{name: "one nested namespace", status: "Pid:\t4242\nNSpid:\t4242\t17\n", want: 17},
		{name: "two nested namespaces", status: "NSpid:\t4242\t17\t1\n", want: 1},
		{name: "NStgid is not NSpid", status: "NStgid:\t4242\t99\nNSpid:\t4243\t100\n", want: 100},
		{name: "last line without newline", status: "Pid:\t5\nNSpid:\t5\t3", want: 3},
		{name: "no NSpid line (kernel before 4.1)", status: "Pid:\t4242\nPPid:\t1\n", want: 0},
		{name: "empty NSpid line", status: "NSpid:\n", want: 0},
		{name: "not a number", status: "NSpid:\t4242\tx\n", want: 0},
		{name: "empty", status: "", want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseNSPID([]byte(tt.status)); got != tt.want {
				t.Errorf("parseNSPID = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestParseCgroup2(t *testing.T) {
	tests := []struct {
		name, file, want string
	}{
		{name: "unified only", file: "0::/user.slice/user-0.slice/session-1.scope\n", want: "/user.slice/user-0.slice/session-1.scope"},
		{
			name: "hybrid: v1 lines first",
			file: "9:name=systemd:/\n4:memory:/process_api/e796\n1:cpu:/\n0::/\n",
			want: "/",
		},
		{name: "path with spaces and colons", file: "0::/a b/c:d\n", want: "/a b/c:d"},
		{name: "no trailing newline", file: "0::/x.service", want: "/x.service"},
		{name: "v1 only", file: "12:pids:/x\n1:name=systemd:/x\n", want: ""},
		{name: "a v1 hierarchy 10 is not 0", file: "10::/x\n", want: ""},
		{name: "empty", file: "", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseCgroup2([]byte(tt.file)); got != tt.want {
				t.Errorf("parseCgroup2 = %q, want %q", got, tt.want)
			}
		})
	}
}

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
