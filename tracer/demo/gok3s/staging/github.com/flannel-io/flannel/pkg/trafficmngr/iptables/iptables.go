// Package iptables stands in for github.com/flannel-io/flannel/pkg/trafficmngr/iptables,
// flannel's iptables traffic manager, which k3s runs in-process once the API server is ready
// ("Starting flannel in iptables mode"). STAND-IN: not flannel's code. The real one goes
// through go-iptables, whose first act is to exec `iptables --version` to learn the iptables
// flavour; the stand-in does exactly that exec and nothing to the host's rules.
//
// Planted work (c): an exec from the flannel component; the truth log gets one "exec" line
// (when the fork+exec started, when exec had succeeded, when the child was reaped, its pid).
package iptables

import (
	"fmt"
	"os/exec"
	"runtime"
	"strings"

	"k3sprof.invalid/truth"
)

// IPTablesManager is flannel's traffic manager (the stand-in keeps only the detection).
type IPTablesManager struct {
	Binary  string // "iptables" (PATH lookup, like go-iptables)
	Version string
	Truth   *truth.Log
}

// Init detects the iptables version by running `iptables --version`.
func (m *IPTablesManager) Init() error {
	// locked: the fork happens on this thread, so the tid logged is the forking thread
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	argv := []string{m.Binary, "--version"}
	cmd := exec.Command(argv[0], argv[1:]...)
	var out strings.Builder
	cmd.Stdout = &out
	start := truth.Now()
	err := cmd.Start() // fork + exec; returns once the child has exec'd (or failed to)
	started := truth.Now()
	if err != nil {
		return fmt.Errorf("flannel: %w", err)
	}
	err = cmd.Wait()
	end := truth.Now()
	m.Truth.Write("exec", truth.Event{
		"component": "flannel", "package": "github.com/flannel-io/flannel/pkg/trafficmngr/iptables",
		"argv": argv, "path": cmd.Path, "child_pid": cmd.Process.Pid, "tid": truth.Tid(),
		"start_ns": start, "started_ns": started, "end_ns": end, "exit_code": cmd.ProcessState.ExitCode(),
	})
	if err != nil {
		return fmt.Errorf("flannel: %s: %w", strings.Join(argv, " "), err)
	}
	m.Version = strings.TrimSpace(out.String())
	return nil
}
