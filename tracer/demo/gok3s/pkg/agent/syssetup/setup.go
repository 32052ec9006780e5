// Package syssetup stands in for k3s's pkg/agent/syssetup (real import path
// github.com/k3s-io/k3s/pkg/agent/syssetup): the agent's kernel module step. Real k3s execs
// `modprobe -- <module>` for each module missing from /sys/module. STAND-IN: it always
// execs `modprobe --dry-run -- <module>` (dry run: the fixture never loads modules on the
// host; always: so the exec is there to check on every host) and ignores failures, as k3s does
// ("Failed to load kernel module ... with modprobe").
package syssetup

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"

	"k3sprof.invalid/truth"
)

// Configure runs the module step for each module, one exec each, in order.
func Configure(modprobe string, modules []string, log *truth.Log) {
	for _, m := range modules {
		loadKernelModule(modprobe, m, log)
	}
}

func loadKernelModule(modprobe, module string, log *truth.Log) {
	runtime.LockOSThread() // the forking thread is the tid logged
	defer runtime.UnlockOSThread()
	argv := []string{modprobe, "--dry-run", "--", module}
	cmd := exec.Command(argv[0], argv[1:]...)
	start := truth.Now()
	err := cmd.Start()
	started := truth.Now()
	if err != nil {
		fmt.Fprintf(os.Stderr, "k3s: Failed to load kernel module %s with modprobe: %v\n", module, err)
		return
	}
	err = cmd.Wait()
	log.Write("exec", truth.Event{
		"component": "k3s", "package": "github.com/k3s-io/k3s/pkg/agent/syssetup",
		"argv": argv, "path": cmd.Path, "child_pid": cmd.Process.Pid, "tid": truth.Tid(),
		"start_ns": start, "started_ns": started, "end_ns": truth.Now(),
		"exit_code": cmd.ProcessState.ExitCode(),
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "k3s: Failed to load kernel module %s with modprobe\n", module)
	}
}
