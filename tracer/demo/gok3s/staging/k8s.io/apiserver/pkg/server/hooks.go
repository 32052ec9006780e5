package server

import (
	"crypto/sha256"
	"runtime"

	"k3sprof.invalid/truth"
)

// RunPostStartHooks is planted work (a): a CPU stretch in kube-apiserver. The real hooks
// build the OpenAPI spec, prime caches and create bootstrap objects; the stand-in hashes
// until its OS thread has used HookCPU of CPU time (thread CPU, not wall time, so the amount
// of work is the same on a busy machine). The goroutine is locked to its thread so the tid
// and the thread's CPU time in the truth log are the thread the samples land on.
func (s *GenericAPIServer) RunPostStartHooks() {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	tid := truth.Tid()
	cpu0, start := truth.ThreadCPU(), truth.Now()
	sum := hashOpenAPISpec(cpu0 + int64(s.cfg.HookCPU))
	end, cpu1 := truth.Now(), truth.ThreadCPU()
	s.cfg.Truth.Write("cpu", truth.Event{
		"component": "kube-apiserver", "package": "k8s.io/apiserver/pkg/server",
		"func":     "k8s.io/apiserver/pkg/server.hashOpenAPISpec",
		"start_ns": start, "end_ns": end, "tid": tid, "thread_cpu_ns": cpu1 - cpu0,
		"digest_prefix": sum[0],
	})
}

// hashOpenAPISpec hashes a 64 KiB "spec" over and over until the thread's CPU clock passes
// untilCPU (checked every 16 rounds: one clock_gettime per ~1 ms of hashing).
func hashOpenAPISpec(untilCPU int64) [sha256.Size]byte {
	spec := make([]byte, 64<<10)
	var sum [sha256.Size]byte
	for round := 0; ; round++ {
		copy(spec, sum[:])
		sum = sha256.Sum256(spec)
		if round%16 == 0 && truth.ThreadCPU() >= untilCPU {
			return sum
		}
	}
}
