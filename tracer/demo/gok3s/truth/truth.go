// Package truth is the fixture's own instrument, not part of the k3s stand-in: the trace clock
// and the truth log that tests compare a recording with.
//
// Every time is CLOCK_MONOTONIC in nanoseconds, read with clock_gettime(2) through the syscall
// package: the clock bpf_ktime_get_ns() stamps the trace with, so truth and trace need no
// conversion. The log is JSON lines, one object per planted event, each written with a single
// write(2) (O_APPEND) so lines from concurrent components never interleave. The format is
// documented in docs/gok3s.md and read by tracer/demo/gok3s_truth.py.
package truth

import (
	"encoding/json"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// Clock ids of clock_gettime(2) (linux/time.h).
const (
	clockMonotonic       = 1
	clockThreadCPUTimeID = 3
)

func clockNs(id uintptr) int64 {
	var ts syscall.Timespec
	// a raw syscall on purpose: the vDSO path the runtime uses is not reachable from here,
	// and the cost (well under a microsecond) does not matter at this fixture's event rate
	_, _, errno := syscall.RawSyscall(syscall.SYS_CLOCK_GETTIME, id, uintptr(unsafe.Pointer(&ts)), 0)
	if errno != 0 {
		panic("clock_gettime: " + errno.Error())
	}
	return ts.Nano()
}

// Now is CLOCK_MONOTONIC in ns: the trace's clock.
func Now() int64 { return clockNs(clockMonotonic) }

// ThreadCPU is the calling OS thread's CPU time in ns (CLOCK_THREAD_CPUTIME_ID); only
// meaningful on a goroutine locked to its thread (runtime.LockOSThread).
func ThreadCPU() int64 { return clockNs(clockThreadCPUTimeID) }

// Tid is the calling OS thread's id (what the trace's tid columns hold).
func Tid() int { return syscall.Gettid() }

// Log is the truth log: JSON lines appended to a file. A nil *Log discards everything.
type Log struct {
	mu sync.Mutex
	f  *os.File
}

// Open creates (truncates) the truth log at path; "" gives a nil Log (no truth kept).
func Open(path string) (*Log, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	return &Log{f: f}, nil
}

// Event is one truth record: "event" names its kind, the rest are its fields.
type Event map[string]interface{}

// Write appends one event as one line (one write(2)); errors end the program, because a
// fixture whose truth is incomplete would make every test that reads it lie.
func (l *Log) Write(kind string, e Event) {
	if l == nil {
		return
	}
	e["event"] = kind
	line, err := json.Marshal(e)
	if err != nil {
		panic(err)
	}
	line = append(line, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.f.Write(line); err != nil {
		panic("truth log: " + err.Error())
	}
}

// Close closes the file (nil-safe).
func (l *Log) Close() error {
	if l == nil {
		return nil
	}
	return l.f.Close()
}
