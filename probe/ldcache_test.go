package probe

import (
	"bytes"
	"encoding/binary"
	"os"
	"regexp"
	"strings"
	"testing"
)

// ldconfigEntry matches a line of "ldconfig -p":
// "	libc.so.6 (libc6,x86-64) => /lib/x86_64-linux-gnu/libc.so.6"
var ldconfigEntry = regexp.MustCompile(`^\t(\S+) \(([^)]*)\) => (.+)$`)

// TestParseLDCacheMatchesLdconfig parses this machine's /etc/ld.so.cache and
// compares it with what ldconfig -p prints from the same file.
func TestParseLDCacheMatchesLdconfig(t *testing.T) {
	data, err := os.ReadFile("/etc/ld.so.cache")
	if err != nil {
		t.Fatal(err)
	}
	entries, err := parseLDCache(data)
	if err != nil {
		t.Fatal(err)
	}
	type lib struct{ name, path string }
	var want []lib
	x8664 := map[lib]bool{}
	for _, line := range strings.Split(run(t, "ldconfig", "-p"), "\n") {
		m := ldconfigEntry.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		l := lib{m[1], m[3]}
		want = append(want, l)
		if strings.HasPrefix(m[2], "libc6,x86-64") {
			x8664[l] = true
		}
	}
	if len(want) == 0 {
		t.Fatal("ldconfig -p printed no entries")
	}
	if len(entries) != len(want) {
		t.Fatalf("parsed %d entries, ldconfig -p lists %d", len(entries), len(want))
	}
	for i, e := range entries {
		l := lib{e.Name, e.Path}
		if l != want[i] {
			t.Errorf("entry %d: got %v, ldconfig -p says %v", i, l, want[i])
		}
		if e.isX8664() != x8664[l] {
			t.Errorf("entry %v: isX8664 = %v, ldconfig -p says %v", l, e.isX8664(), x8664[l])
		}
	}
}

// buildLDCache writes a new-format cache, optionally behind an old-format
// header, for the parser's error paths.
func buildLDCache(old bool, libs [][2]string) []byte {
	le := binary.LittleEndian
	var strs bytes.Buffer
	header := ldCacheNewHeader + len(libs)*ldCacheNewEntry
	offs := make([][2]uint32, len(libs))
	for i, l := range libs {
		for j := range 2 {
			offs[i][j] = uint32(header + strs.Len())
			strs.WriteString(l[j])
			strs.WriteByte(0)
		}
	}
	n := make([]byte, header)
	copy(n, ldCacheNewMagic)
	le.PutUint32(n[20:], uint32(len(libs)))
	le.PutUint32(n[24:], uint32(strs.Len()))
	n[28] = ldCacheLittleEnd
	for i := range libs {
		e := n[ldCacheNewHeader+i*ldCacheNewEntry:]
		le.PutUint32(e[0:], 0x0303)
		le.PutUint32(e[4:], offs[i][0])
		le.PutUint32(e[8:], offs[i][1])
	}
	n = append(n, strs.Bytes()...)
	if !old {
		return n
	}
	o := make([]byte, ldCacheOldHeader+len(libs)*ldCacheOldEntry)
	copy(o, ldCacheOldMagic)
	le.PutUint32(o[12:], uint32(len(libs)))
	for len(o)%8 != 0 {
		o = append(o, 0)
	}
	return append(o, n...)
}

func TestParseLDCache(t *testing.T) {
	libs := [][2]string{{"libz.so.1", "/lib/x86_64-linux-gnu/libz.so.1"}, {"libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6"}}
	good := buildLDCache(false, libs)
	for _, tc := range []struct {
		name    string
		data    []byte
		want    int    // entries
		wantErr string // part of the error
	}{
		{"new format", good, 2, ""},
		{"old format prefix", buildLDCache(true, libs), 2, ""},
		{"old format with an odd count", buildLDCache(true, libs[:1]), 1, ""},
		{"empty", nil, 0, "unknown format"},
		{"other magic", []byte("hello world, this is not a cache at all, really....."), 0, "unknown format"},
		{"truncated header", good[:30], 0, "truncated header"},
		{"truncated entries", good[:ldCacheNewHeader+10], 0, "do not fit"},
		{"string out of range", func() []byte {
			b := bytes.Clone(good)
			binary.LittleEndian.PutUint32(b[ldCacheNewHeader+4:], 1<<30)
			return b
		}(), 0, "out of range"},
		{"unterminated string", good[:len(good)-1], 0, "unterminated"},
		{"big endian", func() []byte { b := bytes.Clone(good); b[28] = ldCacheBigEnd; return b }(), 0, "big-endian"},
		{"old format alone", []byte("ld.so-1.7.0\x00\x00\x00\x00\x00"), 0, "without the new format"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			entries, err := parseLDCache(tc.data)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != tc.want {
				t.Fatalf("got %d entries, want %d", len(entries), tc.want)
			}
			for i, e := range entries {
				if e.Name != libs[i][0] || e.Path != libs[i][1] || !e.isX8664() {
					t.Errorf("entry %d: %+v", i, e)
				}
			}
		})
	}
}
