package procfs

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseMapsFixture(t *testing.T) {
	b, err := os.ReadFile("testdata/proc/4242/maps")
	if err != nil {
		t.Fatal(err)
	}
	var (
		target = unix.Mkdev(0xfd, 0x01)
		nvme   = unix.Mkdev(0x103, 0x02) // major 259 prints as "103"
		tmp    = unix.Mkdev(0, 0x2a)
		shmem  = unix.Mkdev(0, 0x01)
	)
	const (
		targetPath = "/opt/my app/bin/target"
		libc       = "/usr/lib/x86_64-linux-gnu/libc.so.6"
	)
	want := []Mapping{
		{Start: 0x400000, End: 0x401000, Perms: "r--p", Offset: 0, Dev: target, Ino: 1048602, Path: targetPath},
		{Start: 0x401000, End: 0x452000, Perms: "r-xp", Offset: 0x1000, Dev: target, Ino: 1048602, Path: targetPath},
		{Start: 0x651000, End: 0x652000, Perms: "r--p", Offset: 0x51000, Dev: target, Ino: 1048602, Path: targetPath},
		{Start: 0x652000, End: 0x655000, Perms: "rw-p", Offset: 0x52000, Dev: target, Ino: 1048602, Path: targetPath},
		{Start: 0x1b6e000, End: 0x1b8f000, Perms: "rw-p", Path: "[heap]"},
		{Start: 0x7f1c0a000000, End: 0x7f1c0a021000, Perms: "rw-p"},
		{Start: 0x7f1c0e1c8000, End: 0x7f1c0e1f0000, Perms: "r--p", Offset: 0, Dev: nvme, Ino: 2883720, Path: libc},
		{Start: 0x7f1c0e1f0000, End: 0x7f1c0e385000, Perms: "r-xp", Offset: 0x28000, Dev: nvme, Ino: 2883720, Path: libc},
		{Start: 0x7f1c0e385000, End: 0x7f1c0e3dd000, Perms: "r--p", Offset: 0x1bd000, Dev: nvme, Ino: 2883720, Path: libc},
		{Start: 0x7f1c0e3de000, End: 0x7f1c0e3e0000, Perms: "r-xp", Offset: 0x2000, Dev: tmp, Ino: 4294967301, Path: "/tmp/old lib.so (deleted)"},
		{Start: 0x7f1c0e3e0000, End: 0x7f1c0e3e1000, Perms: "rw-s", Offset: 0, Dev: shmem, Ino: 2049, Path: "/memfd:ring (deleted)"},
		{Start: 0x7ffd4a5f2000, End: 0x7ffd4a613000, Perms: "rw-p", Path: "[stack]"},
		{Start: 0x7ffd4a7b7000, End: 0x7ffd4a7bb000, Perms: "r--p", Path: "[vvar]"},
		{Start: 0x7ffd4a7bb000, End: 0x7ffd4a7bd000, Perms: "r-xp", Path: "[vdso]"},
		{Start: 0xffffffffff600000, End: 0xffffffffff601000, Perms: "--xp", Path: "[vsyscall]"},
	}
	got, err := ParseMaps(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("ParseMaps: %d mappings, want %d:\n%+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("mapping %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestParseMapsLines(t *testing.T) {
	good := Mapping{Start: 0x1000, End: 0x2000, Perms: "r-xp", Offset: 0x3000, Dev: unix.Mkdev(8, 1), Ino: 77, Path: "/lib/x.so"}
	const goodLine = "1000-2000 r-xp 00003000 08:01 77 /lib/x.so\n"
	tests := []struct {
		name string
		line string
		want *Mapping // nil: the line is skipped
	}{
		{name: "no padding before the path", line: goodLine, want: &good},
		{name: "path ending in a space", line: "1000-2000 r-xp 00003000 08:01 77   /lib/x \n",
			want: &Mapping{Start: 0x1000, End: 0x2000, Perms: "r-xp", Offset: 0x3000, Dev: unix.Mkdev(8, 1), Ino: 77, Path: "/lib/x "}},
		{name: "path ending in a carriage return", line: "1000-2000 r-xp 00003000 08:01 77 /lib/x\r\n",
			want: &Mapping{Start: 0x1000, End: 0x2000, Perms: "r-xp", Offset: 0x3000, Dev: unix.Mkdev(8, 1), Ino: 77, Path: "/lib/x\r"}},
		{name: "anonymous without padding", line: "1000-2000 rw-p 00000000 00:00 0\n",
			want: &Mapping{Start: 0x1000, End: 0x2000, Perms: "rw-p"}},
		{name: "no device separator", line: "1000-2000 r-xp 00000000 0801 77 /lib/x.so\n"},
		{name: "device not hex", line: "1000-2000 r-xp 00000000 0g:01 77 /lib/x.so\n"},
		{name: "inode not decimal", line: "1000-2000 r-xp 00000000 08:01 4d /lib/x.so\n"},
		{name: "range without dash", line: "10002000 r-xp 00000000 08:01 77 /lib/x.so\n"},
		{name: "end before start", line: "2000-1000 r-xp 00000000 08:01 77 /lib/x.so\n"},
		{name: "start not hex", line: "x000-2000 r-xp 00000000 08:01 77 /lib/x.so\n"},
		{name: "offset not hex", line: "1000-2000 r-xp 0000z000 08:01 77 /lib/x.so\n"},
		{name: "perms of three letters", line: "1000-2000 r-x 00000000 08:01 77 /lib/x.so\n"},
		{name: "too few fields", line: "1000-2000 r-xp 00000000 08:01\n"},
		{name: "blank", line: "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseMaps([]byte(goodLine + tt.line + goodLine))
			if err != nil {
				t.Fatal(err)
			}
			want := []Mapping{good, good}
			if tt.want != nil {
				want = []Mapping{good, *tt.want, good}
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("ParseMaps =\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

func TestParseMapsLineTooLong(t *testing.T) {
	long := "1000-2000 r-xp 00000000 08:01 77 /" + strings.Repeat("x", maxMapsLine) + "\n"
	if got, err := ParseMaps([]byte(long)); !errors.Is(err, bufio.ErrTooLong) {
		t.Errorf("ParseMaps = %d mappings, %v, want bufio.ErrTooLong", len(got), err)
	}
}

// formatMaps writes maps in the kernel's format.
func formatMaps(maps []Mapping) []byte {
	var b strings.Builder
	for _, m := range maps {
		fmt.Fprintf(&b, "%08x-%08x %s %08x %02x:%02x %d %s\n",
			m.Start, m.End, m.Perms, m.Offset, unix.Major(m.Dev), unix.Minor(m.Dev), m.Ino, m.Path)
	}
	return []byte(b.String())
}

// FuzzParseMaps checks that only an overlong line is an error, that every
// mapping is well formed, and that the mappings read back the same from
// the kernel's format.
func FuzzParseMaps(f *testing.F) {
	f.Add([]byte("00400000-00401000 r--p 00000000 fd:01 1048602                            /opt/my app/bin/target\n"))
	f.Add([]byte("7f1c0e3de000-7f1c0e3e0000 r-xp 00002000 00:2a 4294967301 /tmp/old lib.so (deleted)\n7f1c0a000000-7f1c0a021000 rw-p 00000000 00:00 0 \n"))
	f.Add([]byte("1000-2000 r-xp 00000000 0801 77 /lib/x.so\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		maps, err := ParseMaps(b)
		if err != nil {
			if !errors.Is(err, bufio.ErrTooLong) {
				t.Fatalf("ParseMaps: %v", err)
			}
			return
		}
		if len(maps) > strings.Count(string(b), "\n")+1 {
			t.Fatalf("%d mappings from %d lines", len(maps), strings.Count(string(b), "\n")+1)
		}
		for _, m := range maps {
			if m.End < m.Start || len(m.Perms) != 4 || strings.ContainsAny(m.Perms, " \n") ||
				strings.Contains(m.Path, "\n") || strings.HasPrefix(m.Path, " ") {
				t.Fatalf("ParseMaps(%q): %+v", b, m)
			}
		}
		again, err := ParseMaps(formatMaps(maps))
		if err != nil || !reflect.DeepEqual(again, maps) {
			t.Fatalf("ParseMaps(%q) =\n%+v\nread back as\n%+v, %v", b, maps, again, err)
		}
	})
}
