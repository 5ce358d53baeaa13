package procfs

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestParseStatus(t *testing.T) {
	tests := []struct {
		name    string
		status  string
		want    Status
		wantErr bool
	}{
		{
			name:   "no namespace",
			status: "Name:\tcat\nState:\tR (running)\nTgid:\t4242\nPid:\t4242\nPPid:\t1\nNSpid:\t4242\nThreads:\t1\n",
			want:   Status{State: 'R', Tgid: 4242, PPid: 1, NSpid: []int{4242}},
		},
		{name: "a thread: Tgid is its process", status: "Tgid:\t4242\nPid:\t4250\nNSpid:\t4250\n", want: Status{Tgid: 4242, NSpid: []int{4250}}},
		{name: "one nested namespace", status: "Pid:\t4242\nNSpid:\t4242\t17\n", want: Status{NSpid: []int{4242, 17}}},
		{name: "two nested namespaces", status: "NSpid:\t4242\t17\t1\n", want: Status{NSpid: []int{4242, 17, 1}}},
		{name: "NStgid is not NSpid", status: "NStgid:\t4242\t99\nNSpid:\t4243\t100\n", want: Status{NSpid: []int{4243, 100}}},
		{name: "last line without newline", status: "Pid:\t5\nNSpid:\t5\t3", want: Status{NSpid: []int{5, 3}}},
		{name: "no NSpid line (kernel before 4.1)", status: "Tgid:\t4242\nPid:\t4242\nPPid:\t1\n", want: Status{Tgid: 4242, PPid: 1}},
		{name: "empty NSpid line", status: "NSpid:\n", want: Status{NSpid: []int{}}},
		{name: "name with a colon and blank groups", status: "Name:\ta:b\nGroups:\t \nTgid:\t7\n", want: Status{Tgid: 7}},
		{name: "empty", status: "", want: Status{}},
		{name: "NSpid not a number", status: "NSpid:\t4242\tx\n", wantErr: true},
		{name: "Tgid negative", status: "Tgid:\t-1\n", wantErr: true},
		{name: "Tgid empty", status: "Tgid:\n", wantErr: true},
		{name: "PPid of two values", status: "PPid:\t1 2\n", wantErr: true},
		{name: "State empty", status: "State:\t\n", wantErr: true},
		{name: "State a word", status: "State:\tsleeping\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStatus([]byte(tt.status))
			if tt.wantErr {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("ParseStatus = %+v, %v, want ErrMalformed", got, err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseStatus = %+v, %v, want %+v", got, err, tt.want)
			}
		})
	}
}

func TestParseStatusFixtures(t *testing.T) {
	tests := []struct {
		file      string
		want      Status
		innermost int
	}{
		{file: "testdata/status_6.18.txt", want: Status{State: 'S', Tgid: 11628, PPid: 11626, NSpid: []int{11628, 1}}, innermost: 1},
		{file: "testdata/proc/4242/status", want: Status{State: 'S', Tgid: 4242, PPid: 1, NSpid: []int{4242, 17}}, innermost: 17},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			b, err := os.ReadFile(tt.file)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseStatus(b)
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseStatus = %+v, %v, want %+v", got, err, tt.want)
			}
			if got.InnermostPID() != tt.innermost {
				t.Errorf("InnermostPID = %d, want %d", got.InnermostPID(), tt.innermost)
			}
		})
	}
}

func TestInnermostPIDWithoutNSpid(t *testing.T) {
	if got := (Status{Tgid: 5}).InnermostPID(); got != 0 {
		t.Errorf("InnermostPID = %d, want 0", got)
	}
}

// formatStatus writes the lines of s that ParseStatus reads.
func formatStatus(s Status) string {
	var b strings.Builder
	if s.State != 0 {
		b.WriteString("State:\t" + string([]byte{s.State}) + " (state)\n")
	}
	fmt.Fprintf(&b, "Tgid:\t%d\nPPid:\t%d\n", s.Tgid, s.PPid)
	if s.NSpid != nil {
		b.WriteString("NSpid:")
		for _, pid := range s.NSpid {
			fmt.Fprintf(&b, "\t%d", pid)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// FuzzParseStatus checks that any input parses or fails with ErrMalformed,
// and that what parses is read back the same from the kernel's format.
func FuzzParseStatus(f *testing.F) {
	f.Add([]byte("State:\tS (sleeping)\nTgid:\t4242\nPPid:\t1\nNStgid:\t4242\t17\nNSpid:\t4242\t17\n"))
	f.Add([]byte("NSpid:\n"))
	f.Add([]byte("Tgid:\t-1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseStatus(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParseStatus(%q): %v does not wrap ErrMalformed", b, err)
			}
			return
		}
		if s.Tgid < 0 || s.PPid < 0 || slices.ContainsFunc(s.NSpid, func(pid int) bool { return pid < 0 }) {
			t.Fatalf("ParseStatus(%q) = %+v", b, s)
		}
		again, err := ParseStatus([]byte(formatStatus(s)))
		if err != nil || !reflect.DeepEqual(again, s) {
			t.Fatalf("ParseStatus(%q) = %+v; read back as %+v, %v", b, s, again, err)
		}
	})
}
