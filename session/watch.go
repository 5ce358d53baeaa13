package session

import (
	"path/filepath"

	"github.com/fsnotify/fsnotify"
)

// fileWatcher notices a probed file replaced on disk — a new inode created
// or renamed over its path, as a package upgrade does — and has its probes
// armed on the new file. It watches the directories: a watch on the file
// itself would follow the old inode.
type fileWatcher struct {
	w    *fsnotify.Watcher
	done chan struct{}
}

func watchFiles(s *Session, probed []string) (*fileWatcher, error) {
	paths := map[string]bool{}
	for _, p := range probed {
		paths[p] = true
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	dirs := map[string]bool{}
	for p := range paths {
		dirs[filepath.Dir(p)] = true
	}
	for d := range dirs {
		if err := w.Add(d); err != nil {
			w.Close()
			return nil, err
		}
	}
	fw := &fileWatcher{w: w, done: make(chan struct{})}
	go func() {
		defer close(fw.done)
		for {
			select {
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				if paths[ev.Name] && ev.Has(fsnotify.Create) {
					s.rearm(ev.Name) // a rename over the path shows as Create
				}
			case _, ok := <-w.Errors:
				if !ok {
					return
				}
			}
		}
	}()
	return fw, nil
}

func (fw *fileWatcher) close() {
	fw.w.Close()
	<-fw.done
}
