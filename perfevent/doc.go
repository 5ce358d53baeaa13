// Package perfevent opens perf events on uprobe trace events and reads what
// they record. It is the only package that imports github.com/elastic/go-perf.
//
// Glossary (as in cilium/ebpf's link package):
//   - trace event: a uprobe defined in tracefs (package tracefs); it has an
//     id and a format file but records nothing by itself.
//   - perf event: a file descriptor from perf_event_open on a trace event,
//     for one thread (or that thread and its future children with inherit)
//     on one CPU. Opening it is what arms the uprobe in the thread's process
//     (the kernel's perf filter decides per mm).
//   - ring: one mmapped buffer per CPU. Every perf event on CPU c is routed
//     into ring c with PERF_EVENT_IOC_SET_OUTPUT, because inherited events
//     cannot be mmapped with cpu=-1 and events of different tasks cannot
//     share a cpu=-1 ring.
//
// Each ring is owned by an "anchor": a dummy software event on this process
// itself, pinned to that CPU. The anchor never records anything and never
// exits while we run, so the ring outlives any traced thread (a ring owned
// by a traced thread would report POLLHUP when that thread exits).
package perfevent
