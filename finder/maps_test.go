package finder

import (
	"debug/elf"
	"debug/gosym"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"golang.org/x/sys/unix"
)

// Files of testdata/maps_6.18.txt, by the device and inode maps shows.
var (
	mapsTarget = FileID{Dev: unix.Mkdev(0xfd, 0x01), Ino: 1048602}     // "/opt/my app/bin/target"
	mapsLibc   = FileID{Dev: unix.Mkdev(0x103, 0x02), Ino: 2883720}    // major 259 (NVMe) prints as "103"
	mapsOldLib = FileID{Dev: unix.Mkdev(0, 0x2a), Ino: 4294967301}     // "/tmp/old lib.so (deleted)"
	mapsMemfd  = FileID{Dev: unix.Mkdev(0, 0x01), Ino: 2049}           // "/memfd:ring (deleted)"
	mapsAnon   = FileID{Dev: unix.Mkdev(0, 0), Ino: 0}                 // [heap], [stack], [vdso], anonymous
	mapsDec    = FileID{Dev: unix.Mkdev(103, 2), Ino: 2883720}         // "103:02" misread as decimal
	mapsOther  = FileID{Dev: unix.Mkdev(0xfd, 0x01), Ino: 1048602 + 1} // same device, another file
)

// TestMappingsFixture reads testdata/maps_6.18.txt as the maps of a fake
// process: only the wanted files come back, matched by device and inode.
func TestMappingsFixture(t *testing.T) {
	maps, err := os.ReadFile("testdata/maps_6.18.txt")
	if err != nil {
		t.Fatal(err)
	}
	root := fakeProc(t)
	writeFile(t, filepath.Join(root, "4242", "maps"), string(maps))
	tests := []struct {
		name   string
		wanted map[FileID]bool
		want   []Mapping
	}{
		{
			name:   "executable whose path has a space: every segment",
			wanted: map[FileID]bool{mapsTarget: true},
			want: []Mapping{
				{File: mapsTarget, Start: 0x400000, End: 0x401000, Offset: 0},
				{File: mapsTarget, Start: 0x401000, End: 0x452000, Offset: 0x1000},
				{File: mapsTarget, Start: 0x651000, End: 0x652000, Offset: 0x51000},
				{File: mapsTarget, Start: 0x652000, End: 0x655000, Offset: 0x52000},
			},
		},
		{
			name:   "major:minor in hex",
			wanted: map[FileID]bool{mapsLibc: true},
			want: []Mapping{
				{File: mapsLibc, Start: 0x7f1c0e1c8000, End: 0x7f1c0e1f0000, Offset: 0},
				{File: mapsLibc, Start: 0x7f1c0e1f0000, End: 0x7f1c0e385000, Offset: 0x28000},
				{File: mapsLibc, Start: 0x7f1c0e385000, End: 0x7f1c0e3dd000, Offset: 0x1bd000},
			},
		},
		{
			name:   "deleted file matched by device and inode, inode beyond 32 bits",
			wanted: map[FileID]bool{mapsOldLib: true},
			want:   []Mapping{{File: mapsOldLib, Start: 0x7f1c0e3de000, End: 0x7f1c0e3e0000, Offset: 0x2000}},
		},
		{
			name:   "several files in file order",
			wanted: map[FileID]bool{mapsOldLib: true, mapsMemfd: true},
			want: []Mapping{
				{File: mapsOldLib, Start: 0x7f1c0e3de000, End: 0x7f1c0e3e0000, Offset: 0x2000},
				{File: mapsMemfd, Start: 0x7f1c0e3e0000, End: 0x7f1c0e3e1000, Offset: 0},
			},
		},
		{name: "anonymous maps, [heap], [vdso] never match (inode 0)", wanted: map[FileID]bool{mapsAnon: true}},
		{name: "decimal reading of the device does not match", wanted: map[FileID]bool{mapsDec: true}},
		{name: "same device, other inode", wanted: map[FileID]bool{mapsOther: true}},
		{name: "nothing wanted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NewProcSource(root).Mappings(4242, fileSetOf(tt.wanted))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Mappings =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestMappingFileOffset(t *testing.T) {
	m := Mapping{Start: 0x401000, End: 0x452000, Offset: 0x1000}
	tests := []struct {
		name   string
		addr   uint64
		want   uint64
		wantOK bool
	}{
		{name: "start", addr: 0x401000, want: 0x1000, wantOK: true},
		{name: "inside", addr: 0x401136, want: 0x1136, wantOK: true},
		{name: "last byte", addr: 0x451fff, want: 0x51fff, wantOK: true},
		{name: "end is outside", addr: 0x452000},
		{name: "before start", addr: 0x400fff},
		{name: "zero", addr: 0},
		{name: "top of the address space", addr: ^uint64(0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := m.FileOffset(tt.addr)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("FileOffset(%#x) = %#x, %v, want %#x, %v", tt.addr, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestProcessFileOffset(t *testing.T) {
	lib := FileID{Dev: 1, Ino: 2}
	other := FileID{Dev: 1, Ino: 3}
	p := &Process{Maps: []Mapping{
		{File: other, Start: 0x1000, End: 0x2000, Offset: 0},
		{File: lib, Start: 0x1000, End: 0x2000, Offset: 0x5000}, // same range: only File tells them apart
		{File: lib, Start: 0x8000, End: 0x9000, Offset: 0x7000},
	}}
	tests := []struct {
		name   string
		file   FileID
		addr   uint64
		want   uint64
		wantOK bool
	}{
		{name: "first mapping of the file", file: lib, addr: 0x1010, want: 0x5010, wantOK: true},
		{name: "second mapping of the file", file: lib, addr: 0x8004, want: 0x7004, wantOK: true},
		{name: "other file at the same address", file: other, addr: 0x1010, want: 0x10, wantOK: true},
		{name: "between mappings", file: lib, addr: 0x4000},
		{name: "unknown file", file: FileID{Dev: 9, Ino: 9}, addr: 0x1010},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := p.FileOffset(tt.file, tt.addr)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("FileOffset(%v, %#x) = %#x, %v, want %#x, %v", tt.file, tt.addr, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

// TestMappingsSelf finds the test binary in this process's maps by the
// FileID Identify gives, and checks that the address of a function maps
// back to the file offset its ELF symbol gives.
func TestMappingsSelf(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	id := statID(t, "/proc/self/exe")
	if byPath := statID(t, exe); byPath != id {
		t.Fatalf("%s is %v; /proc/self/exe %v", exe, byPath, id)
	}
	maps, err := NewProcSource("/proc").Mappings(os.Getpid(), NewFileSet([]FileID{id}, nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(maps) == 0 {
		b, _ := os.ReadFile("/proc/self/maps")
		t.Fatalf("%s (%v) not found in /proc/self/maps:\n%s", exe, id, b)
	}

	const sym = "github.com/uprobectl/uprobectl/finder.TestMappingsSelf"
	want := symbolFileOffset(t, exe, sym)
	p := &Process{Maps: maps}
	got, ok := p.FileOffset(id, uint64(reflect.ValueOf(TestMappingsSelf).Pointer()))
	if !ok || got != want {
		t.Errorf("file offset of %s = %#x, %v, want %#x (ELF symbol)", sym, got, ok, want)
	}
}

// symbolFileOffset is value - vaddr + offset of the executable PT_LOAD
// holding the function. The value comes from .gopclntab: go test strips
// .symtab from the binaries it runs.
func symbolFileOffset(t *testing.T, path, name string) uint64 {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pcln, text := f.Section(".gopclntab"), f.Section(".text")
	if pcln == nil || text == nil {
		t.Fatalf("%s: no .gopclntab or .text", path)
	}
	data, err := pcln.Data()
	if err != nil {
		t.Fatal(err)
	}
	table, err := gosym.NewTable(nil, gosym.NewLineTable(data, text.Addr))
	if err != nil {
		t.Fatal(err)
	}
	fn := table.LookupFunc(name)
	if fn == nil {
		t.Fatalf("%s: no function %s", path, name)
	}
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_LOAD && prog.Flags&elf.PF_X != 0 && fn.Entry >= prog.Vaddr && fn.Entry < prog.Vaddr+prog.Memsz {
			return fn.Entry - prog.Vaddr + prog.Off
		}
	}
	t.Fatalf("%s: %s at %#x is in no executable PT_LOAD", path, name, fn.Entry)
	return 0
}

func TestMappingsNoProcess(t *testing.T) {
	_, err := NewProcSource(t.TempDir()).Mappings(4242, NewFileSet([]FileID{{Dev: 1, Ino: 1}}, nil))
	if !errors.Is(err, ErrNoProcess) {
		t.Errorf("err = %v, want ErrNoProcess", err)
	}
}

// fileSetOf is the probed files of a test, none on overlayfs.
func fileSetOf(wanted map[FileID]bool) *FileSet {
	var files []FileID
	for f := range wanted {
		files = append(files, f)
	}
	return NewFileSet(files, nil)
}

// statID is the (device, inode) of path.
func statID(t *testing.T, path string) FileID {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return FileID{Dev: st.Dev, Ino: st.Ino}
}
