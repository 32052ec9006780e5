// gostacks: a Go workload with known stacks, for tests/integration/test_stacks.py.
//
// It burns a given amount of its own CPU time in main.burnCPU, then dials a closed TCP
// port from main.dialClosed, and writes its own truth as JSON: the thread ids and
// CLOCK_MONOTONIC times around each part, the process's CPU time (getrusage) and its number
// of context switches (the on-CPU stretches that bound the sampling error).
//
// usage: gostacks BURN_MS PORT TRUTH.json [FSYNC_FILE]
// (with FSYNC_FILE: also writes and fsyncs it from main.syncFile)
package main

import (
	"encoding/json"
	"net"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"time"
	"unsafe"
)

func monoNs() int64 {
	var ts syscall.Timespec
	// CLOCK_MONOTONIC = 1: the clock bpf_ktime_get_ns() reads
	syscall.Syscall(syscall.SYS_CLOCK_GETTIME, 1, uintptr(unsafe.Pointer(&ts)), 0)
	return ts.Sec*1e9 + ts.Nsec
}

func threadCPUNs() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// The work is plain Go arithmetic in burnCPU's own body (not crypto/sha256, whose amd64
// assembly uses BP as a general register: a frame-pointer walk from inside it is broken,
// docs/stacks.md, Limits), with the CPU clock read between long stretches.
//
//go:noinline
func burnCPU(d time.Duration) uint64 {
	x := uint64(88172645463325252)
	start := threadCPUNs()
	for threadCPUNs()-start < int64(d) {
		for i := 0; i < 2000000; i++ {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
		}
	}
	return x
}

//go:noinline
func dialClosed(port string) error {
	c, err := net.Dial("tcp", "127.0.0.1:"+port)
	if err == nil {
		c.Close()
	}
	return err
}

//go:noinline
func syncFile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Write(make([]byte, 4096)); err != nil {
		return err
	}
	return f.Sync() // fsync(2)
}

// dialAtDepth dials from under `depth` frames of itself: every depth is a distinct user stack
// (test_stacks: stacks that collide in the stack map's buckets still come back whole).
//
//go:noinline
func dialAtDepth(depth int, port string) error {
	if depth > 1 {
		return dialAtDepth(depth-1, port)
	}
	return dialClosed(port)
}

func main() {
	ms, _ := strconv.Atoi(os.Args[1])
	truth := map[string]any{"pid": os.Getpid()}
	runtime.LockOSThread() // the thread ids below are the ones the kernel sees
	truth["burn_t0"] = monoNs()
	truth["burn_tid"] = syscall.Gettid()
	x := burnCPU(time.Duration(ms) * time.Millisecond)
	truth["burn_t1"] = monoNs()
	truth["sum"] = x & 0xff
	truth["dial_t0"] = monoNs()
	err := dialClosed(os.Args[2])
	// GOSTACKS_DIALS=N: N more dials (bench/stacks_overhead.py: the cost of Go event stacks)
	if n, _ := strconv.Atoi(os.Getenv("GOSTACKS_DIALS")); n > 0 {
		for i := 0; i < n; i++ {
			dialClosed(os.Args[2])
		}
	}
	// GOSTACKS_DEPTHS=N: one dial from each depth 1..N of dialAtDepth, in that order
	if n, _ := strconv.Atoi(os.Getenv("GOSTACKS_DEPTHS")); n > 0 {
		for k := 1; k <= n; k++ {
			dialAtDepth(k, os.Args[2])
		}
		truth["depths"] = n
	}
	truth["dial_t1"] = monoNs()
	truth["dial_tid"] = syscall.Gettid()
	truth["dial_err"] = ""
	if err != nil {
		truth["dial_err"] = err.Error()
	}
	if len(os.Args) > 4 {
		truth["sync_t0"] = monoNs()
		if err := syncFile(os.Args[4]); err != nil {
			truth["sync_err"] = err.Error()
		}
		truth["sync_t1"] = monoNs()
		truth["sync_tid"] = syscall.Gettid()
	}
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	truth["cpu_ns"] = ru.Utime.Nano() + ru.Stime.Nano()
	truth["ctx_switches"] = ru.Nvcsw + ru.Nivcsw
	b, _ := json.Marshal(truth)
	os.WriteFile(os.Args[3], b, 0o644)
	// live on a little: the recorder reads a new target's /proc/PID/maps at its next
	// ring-buffer poll (50 ms); a process gone before then keeps its PCs unsymbolised
	// (docs/stacks.md, Limits)
	time.Sleep(200 * time.Millisecond)
}
