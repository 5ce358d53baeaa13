package procfs

import (
	"bytes"
	"errors"
	"os"
	"testing"
)

// statLine is a /proc/PID/stat line with the given comm and starttime
// (field 22); the other fields are those of a real process.
func statLine(comm, startTime string) string {
	return "4242 (" + comm + ") S 1 4242 4242 0 -1 4194560 2453 0 12 0 31 9 0 0 20 0 3 0 " + startTime +
		" 225280000 5120 18446744073709551615 4194304 4522469 140724432311088 0 0 0 0 4096 16387 0 0 0 17 2 0 0 0 0 0\n"
}

func TestParseStat(t *testing.T) {
	const upToStartTime = "1 (init) S 0 1 1 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0"
	tests := []struct {
		name    string
		line    string
		want    Stat
		wantErr bool
	}{
		{name: "plain", line: statLine("cat", "167615"), want: Stat{PID: 4242, Comm: "cat", State: 'S', PPID: 1, StartTime: 167615}},
		{name: "comm with spaces", line: statLine("tmux: server", "42"), want: Stat{PID: 4242, Comm: "tmux: server", State: 'S', PPID: 1, StartTime: 42}},
		{name: "comm with \") \" inside", line: statLine("my) prog", "8675309"), want: Stat{PID: 4242, Comm: "my) prog", State: 'S', PPID: 1, StartTime: 8675309}},
		{name: "comm looking like fields", line: statLine("a) Z 9 9 9", "5"), want: Stat{PID: 4242, Comm: "a) Z 9 9 9", State: 'S', PPID: 1, StartTime: 5}},
		{name: "comm with a newline", line: statLine("two\nlines", "3"), want: Stat{PID: 4242, Comm: "two\nlines", State: 'S', PPID: 1, StartTime: 3}},
		{name: "comm ending in \")\"", line: statLine("x)", "7"), want: Stat{PID: 4242, Comm: "x)", State: 'S', PPID: 1, StartTime: 7}},
		{name: "comm in parentheses", line: statLine("(sd-pam)", "9"), want: Stat{PID: 4242, Comm: "(sd-pam)", State: 'S', PPID: 1, StartTime: 9}},
		{name: "empty comm", line: statLine("", "1"), want: Stat{PID: 4242, State: 'S', PPID: 1, StartTime: 1}},
		{name: "starttime of 64 bits", line: statLine("a", "18446744073709551615"), want: Stat{PID: 4242, Comm: "a", State: 'S', PPID: 1, StartTime: 1<<64 - 1}},
		{name: "zombie", line: "4242 (a) b (c)) Z 1 1 0 34816 1 4194560 110 0 0 0 0 0 0 0 20 0 1 0 987654 5865472 232", want: Stat{PID: 4242, Comm: "a) b (c)", State: 'Z', PPID: 1, StartTime: 987654}},
		{name: "exactly up to starttime", line: upToStartTime + " 12345", want: Stat{PID: 1, Comm: "init", State: 'S', PPID: 0, StartTime: 12345}},
		{name: "one field short of starttime", line: upToStartTime, wantErr: true},
		{name: "nothing after comm", line: "1 (init)", wantErr: true},
		{name: "no parentheses", line: "1 init S 0 1 1", wantErr: true},
		{name: "no closing parenthesis", line: "1 (init S 0 1 1 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 12345", wantErr: true},
		{name: "parentheses reversed", line: "1 )init( S 0 1 1 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 12345", wantErr: true},
		{name: "no pid", line: "(init) S 0 1 1 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 12345", wantErr: true},
		{name: "negative pid", line: "-1 (init) S 0 1 1 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 12345", wantErr: true},
		{name: "state of two letters", line: "1 (init) SS 0 1 1 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 12345", wantErr: true},
		{name: "ppid not a number", line: "1 (init) S x 1 1 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 12345", wantErr: true},
		{name: "starttime not a number", line: statLine("a", "x1"), wantErr: true},
		{name: "empty", line: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStat([]byte(tt.line))
			if tt.wantErr {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("ParseStat = %+v, %v, want ErrMalformed", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("ParseStat = %+v, %v, want %+v", got, err, tt.want)
			}
		})
	}
}

func TestParseStatFixtures(t *testing.T) {
	tests := []struct {
		file string
		want Stat
	}{
		{file: "testdata/stat_6.18.txt", want: Stat{PID: 11628, Comm: "sleep", State: 'S', PPID: 11626, StartTime: 39708}},
		{file: "testdata/proc/4242/stat", want: Stat{PID: 4242, Comm: "my) prog", State: 'S', PPID: 1, StartTime: 8675309}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			b, err := os.ReadFile(tt.file)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := ParseStat(b); err != nil || got != tt.want {
				t.Errorf("ParseStat = %+v, %v, want %+v", got, err, tt.want)
			}
		})
	}
}

// FuzzParseStat checks that any input parses or fails with ErrMalformed,
// and that any bytes as the command name come back whole: fields are
// counted after the last ')'.
func FuzzParseStat(f *testing.F) {
	f.Add([]byte(statLine("cat", "167615")))
	f.Add([]byte(statLine("a) Z 9 9 9", "5")))
	f.Add([]byte("1 (init) S 0 1 1 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 12345"))
	f.Add([]byte("1 )(x"))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := ParseStat(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParseStat(%q): %v does not wrap ErrMalformed", b, err)
			}
		} else if !bytes.Contains(b, []byte("("+st.Comm+")")) || st.State == ' ' || st.PID < 0 || st.PPID < 0 {
			t.Fatalf("ParseStat(%q) = %+v", b, st)
		}

		want := Stat{PID: 4242, Comm: string(b), State: 'S', PPID: 1, StartTime: 77}
		if got, err := ParseStat([]byte(statLine(string(b), "77"))); err != nil || got != want {
			t.Fatalf("comm %q: ParseStat = %+v, %v, want %+v", b, got, err, want)
		}
	})
}
