package probe

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func statID(t *testing.T, path string) FileID {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return FileID{Dev: st.Dev, Ino: st.Ino}
}

// TestResolveOpensOnce: the targets of one file share one descriptor, name
// it /proc/self/fd/N, and carry the identity of the open file.
func TestResolveOpensOnce(t *testing.T) {
	fx := testFixtures(t)
	opened := NewOpened()
	defer opened.Close()
	var all []Target
	for _, w := range []string{fx.pie + ":tgt_*", fx.pie + ":tgt_add%return", fx.lib + ":lt_*"} {
		targets, err := resolveWord(t, w, ResolveOptions{Opened: opened})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, targets...)
	}
	if opened.Len() != 2 {
		t.Errorf("%d files open, want 2", opened.Len())
	}
	byPath := map[string]string{}
	for _, tg := range all {
		if !strings.HasPrefix(tg.KernelPath, "/proc/self/fd/") || tg.File != statID(t, tg.Path) || tg.Overlay {
			t.Fatalf("target %s: KernelPath %q, File %v (path %v), Overlay %v", tg.Symbol, tg.KernelPath, tg.File, statID(t, tg.Path), tg.Overlay)
		}
		if statID(t, tg.KernelPath) != tg.File {
			t.Errorf("%s does not name %s", tg.KernelPath, tg.Path)
		}
		if kp, ok := byPath[tg.Path]; ok && kp != tg.KernelPath {
			t.Errorf("%s opened twice: %s and %s", tg.Path, kp, tg.KernelPath)
		}
		byPath[tg.Path] = tg.KernelPath
	}
	if err := opened.Close(); err != nil {
		t.Fatal(err)
	}
	if opened.Len() != 0 || opened.Close() != nil {
		t.Error("Close left files open, or failed the second time")
	}
	if _, err := resolveWord(t, fx.pie+":tgt_add", ResolveOptions{Opened: opened}); err == nil {
		t.Error("Resolve with a closed Opened succeeded")
	}

	// Without an Opened nothing stays open and there is no KernelPath.
	targets, err := resolveWord(t, fx.pie+":tgt_add", ResolveOptions{})
	if err != nil || len(targets) != 1 || targets[0].KernelPath != "" || targets[0].File != statID(t, fx.pie) {
		t.Errorf("without an Opened: %+v, %v", targets, err)
	}
}

// TestOpenStaysInRoot: with a root, the file opened is looked up inside the
// root whatever the path has become since it was resolved: an absolute
// symlink (the container's) and ".." never lead out of it, where walking
// root+path would reach the host's file.
func TestOpenStaysInRoot(t *testing.T) {
	fx := testFixtures(t)
	root := t.TempDir()
	host := t.TempDir() // the host's directory, absolute
	if err := os.MkdirAll(filepath.Join(host, "lib"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(fx.lib, filepath.Join(host, "lib", "libh.so")); err != nil {
		t.Fatal(err)
	}
	for name, link := range map[string]string{
		"absolute symlink": host,
		"dot-dot":          strings.Repeat("../", 20) + strings.TrimPrefix(host, "/"),
	} {
		t.Run(name, func(t *testing.T) {
			opt := filepath.Join(root, "opt")
			os.Remove(opt)
			if err := os.Symlink(link, opt); err != nil {
				t.Fatal(err)
			}
			real := root + "/opt/lib/libh.so" // as resolved before the container swapped /opt
			if _, err := os.Stat(real); err != nil {
				t.Fatalf("the path walked from the host's root should reach the host's file: %v", err)
			}
			o := NewOpened()
			defer o.Close()
			if f, err := o.open(real, root); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("opened %v, %v; want the file not found inside the root", f, err)
			}
		})
	}
	t.Run("inside", func(t *testing.T) {
		if err := os.MkdirAll(filepath.Join(root, "usr", "lib"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Link(fx.pie, filepath.Join(root, "usr", "lib", "pie")); err != nil {
			t.Fatalf("hard link: %v", err)
		}
		os.Remove(filepath.Join(root, "opt"))
		if err := os.Symlink("/usr", filepath.Join(root, "opt")); err != nil {
			t.Fatal(err)
		}
		o := NewOpened()
		defer o.Close()
		targets, err := resolveWord(t, "/opt/lib/pie:tgt_add", ResolveOptions{Root: root, Opened: o})
		if err != nil {
			t.Fatal(err)
		}
		if tg := targets[0]; tg.Path != root+"/usr/lib/pie" || tg.File != statID(t, fx.pie) || statID(t, tg.KernelPath) != tg.File {
			t.Errorf("got %+v", tg)
		}
	})
}

// TestResolveRefusesNonRegularFiles: a FIFO (or a device) is never opened
// for reading: it could block, or act on open.
func TestResolveRefusesNonRegularFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, opts := range []ResolveOptions{{}, {Root: dir}} {
		path := fifo
		if opts.Root != "" {
			path = "/fifo"
		}
		done := make(chan error, 1)
		go func() {
			_, err := resolveWord(t, path+":fn", opts)
			done <- err
		}()
		select {
		case err := <-done:
			if !errors.Is(err, ErrNotELF) || !strings.Contains(err.Error(), "not a regular file") {
				t.Errorf("root %q: got %v, want ErrNotELF (not a regular file)", opts.Root, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("root %q: Resolve blocks on a FIFO", opts.Root)
		}
	}
}
