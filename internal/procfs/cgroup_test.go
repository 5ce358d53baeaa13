package procfs

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

func TestParseCgroup(t *testing.T) {
	tests := []struct {
		name, file, want string
	}{
		{name: "unified only", file: "0::/user.slice/user-0.slice/session-1.scope\n", want: "/user.slice/user-0.slice/session-1.scope"},
		{name: "hybrid: v1 lines first", file: "9:name=systemd:/\n4:memory:/process_api/e796\n1:cpu:/\n0::/\n", want: "/"},
		{name: "path with spaces and colons", file: "0::/a b/c:d\n", want: "/a b/c:d"},
		{name: "no trailing newline", file: "0::/x.service", want: "/x.service"},
		{name: "v1 only", file: "12:pids:/x\n1:name=systemd:/x\n", want: ""},
		{name: "a v1 hierarchy 10 is not 0", file: "10::/x\n", want: ""},
		{name: "0:: inside a v1 path is not the line", file: "1:cpu:/a0::/b\n", want: ""},
		{name: "empty", file: "", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ParseCgroup([]byte(tt.file)); got != tt.want {
				t.Errorf("ParseCgroup = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseCgroupFixture(t *testing.T) {
	b, err := os.ReadFile("testdata/proc/4242/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ParseCgroup(b), "/system.slice/target.service"; got != want {
		t.Errorf("ParseCgroup = %q, want %q", got, want)
	}
}

// FuzzParseCgroup checks that the path found is one line's, and that v1
// lines before it do not change it.
func FuzzParseCgroup(f *testing.F) {
	f.Add([]byte("12:pids:/x\n0::/system.slice/target.service\n"))
	f.Add([]byte("0::"))
	f.Add([]byte("10::/x\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		path := ParseCgroup(b)
		if strings.Contains(path, "\n") || (path != "" && !bytes.Contains(b, []byte("0::"+path))) {
			t.Fatalf("ParseCgroup(%q) = %q", b, path)
		}
		if again := ParseCgroup(append([]byte("4:memory:/v1\n"), b...)); again != path {
			t.Fatalf("ParseCgroup(%q) = %q, but %q after a v1 line", b, path, again)
		}
	})
}
