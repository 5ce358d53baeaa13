package session

import (
	"context"
	"errors"

	"golang.org/x/sys/unix"
)

// exitWatcher learns of process exits through pidfds, which become readable
// when the process exits and, unlike a pid, cannot be confused with a
// process that reuses the number.
type exitWatcher struct {
	pids []int
	fds  []unix.PollFd
	// wake is an eventfd in the poll set: ctx's end wakes the poll at
	// once (a timeout made every --pid run end up to 100 ms late).
	wake int
}

func newExitWatcher(pids []int) (*exitWatcher, error) {
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, err
	}
	w := &exitWatcher{wake: wake}
	for _, pid := range pids {
		fd, err := unix.PidfdOpen(pid, 0)
		if errors.Is(err, unix.ESRCH) {
			// Already gone: report it as exited at once.
			w.pids = append(w.pids, pid)
			w.fds = append(w.fds, unix.PollFd{Fd: -1})
			continue
		}
		if err != nil {
			w.close()
			return nil, err
		}
		w.pids = append(w.pids, pid)
		w.fds = append(w.fds, unix.PollFd{Fd: int32(fd), Events: unix.POLLIN})
	}
	return w, nil
}

// run calls allGone when every watched process has exited. It returns then,
// or when ctx is done. It only ends the run: the task-finder retires
// processes from the record stream.
func (w *exitWatcher) run(ctx context.Context, allGone func()) {
	live := len(w.pids)
	for i := range w.fds {
		if w.fds[i].Fd < 0 {
			live--
		}
	}
	if live == 0 && len(w.pids) > 0 {
		allGone()
	}
	stop := context.AfterFunc(ctx, func() { unix.Write(w.wake, []byte{1, 0, 0, 0, 0, 0, 0, 0}) })
	defer stop()
	fds := append(w.fds, unix.PollFd{Fd: int32(w.wake), Events: unix.POLLIN})
	for ctx.Err() == nil && live > 0 {
		n, err := unix.Poll(fds, -1)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return
		}
		if n <= 0 {
			continue
		}
		for i := range w.fds {
			if fds[i].Fd >= 0 && fds[i].Revents != 0 {
				unix.Close(int(fds[i].Fd))
				fds[i].Fd, w.fds[i].Fd = -1, -1 // poll ignores negative fds
				live--
			}
		}
		if live == 0 {
			allGone()
		}
	}
}

func (w *exitWatcher) close() {
	if w.wake >= 0 {
		unix.Close(w.wake)
		w.wake = -1
	}
	for i := range w.fds {
		if w.fds[i].Fd >= 0 {
			unix.Close(int(w.fds[i].Fd))
			w.fds[i].Fd = -1
		}
	}
}
