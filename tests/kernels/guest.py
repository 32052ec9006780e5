"""Runs INSIDE a kernel-matrix VM (booted by tests/kernels/vm.py) as root: collects evidence.

Usage: python tests/kernels/guest.py OUT_DIR [GO_CACHE]

It judges nothing: every step's output lands in OUT_DIR (the VM's one writable host
directory) and the host-side tests (tests/kernels/test_kernels.py) assert on it, so a
failure is reported with the host's pytest and the VM's console log side by side.

Steps (each one's argv, exit status and duration in OUT/steps.json):
  1. facts: uname -r, the headers /lib/modules/<rel>/build resolves to, lsmod;
  2. `k3sprof doctor --json`;
  3. the target modules (overlay, br_netfilter, nf_conntrack) unloaded where they can be,
     then for each `modprobe --show-depends` and `lsmod` (what is loaded before the loads);
  4. ONE recording, with an EMPTY bytecode cache (BCC compiles: slow under TCG), of a shell
     that runs
     a. a socket/exec workload under `strace -f` (the independent witness),
     b. `modprobe overlay`, `modprobe br_netfilter`, `modprobe nf_conntrack`, one by one,
     c. a planted spin / sleep / fsync (tests/kernels/sched_planted.py) for the scheduler
        concern, which every recording has on by default;
  5. a second recording with the same options (the warm start: loaded from the cache the first
     filled), started and stopped by tests/kernels/start_probe.py, which times it from outside;
  6. the modules unloaded again, then `k3sprof demo` (whose modprobes now load them).
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
K3SPROF = [str(ROOT / ".venv" / "bin" / "k3sprof")]
MODULES = ("overlay", "br_netfilter", "nf_conntrack")
SOCKETS = ROOT / "tests" / "integration" / "workloads" / "sockets.py"
PLANTED = ROOT / "tests" / "kernels" / "sched_planted.py"
START_PROBE = ROOT / "tests" / "kernels" / "start_probe.py"
WITNESS_PORT = 47310  # nothing else runs in the VM: a fixed port is free


def main(out: Path, go_cache: str | None = None) -> int:
    out.mkdir(parents=True, exist_ok=True)
    steps: list[dict[str, object]] = []

    def step(name: str, argv: list[str], timeout: float = 600, **kw: object) -> int | None:
        t0 = time.monotonic()
        print(f"[guest] {name}: {shlex.join(argv)}", flush=True)
        with open(out / f"{name}.out", "w") as so, open(out / f"{name}.err", "w") as se:
            try:
                rc: int | None = subprocess.run(argv, stdout=so, stderr=se, timeout=timeout,
                                                cwd=ROOT, **kw).returncode  # type: ignore[call-overload]
            except subprocess.TimeoutExpired:
                rc = None
        took = round(time.monotonic() - t0, 2)
        steps.append({"name": name, "argv": argv, "rc": rc, "seconds": took})
        print(f"[guest] {name}: exit {rc} in {took}s", flush=True)
        if rc != 0:  # the console log is what a failing CI run shows: put the error there
            err = (out / f"{name}.err").read_text(errors="replace").strip().splitlines()
            for line in err[-15:]:
                print(f"[guest]   {line}", flush=True)
        (out / "steps.json").write_text(json.dumps(steps, indent=1))
        return rc

    rel = platform.release()
    facts = {
        "release": rel,
        "headers": os.path.realpath(f"/lib/modules/{rel}/build"),
        "build_is_symlink": os.path.islink(f"/lib/modules/{rel}/build"),
        "nproc": os.cpu_count(),
    }
    (out / "facts.json").write_text(json.dumps(facts, indent=1))
    step("lsmod-boot", ["lsmod"])
    step("doctor", [*K3SPROF, "doctor", "--json"])

    for m in reversed(MODULES):  # dependents first
        step(f"unload-{m}", ["modprobe", "-r", m])
    for m in MODULES:
        step(f"depends-{m}", ["modprobe", "--show-depends", m])
    step("lsmod-before", ["lsmod"])

    scratch = Path("/tmp/k3sprof-kernels")  # unix sockets cannot live on the 9p share
    (scratch / "u").mkdir(parents=True, exist_ok=True)
    work = (f"/bin/true; /usr/bin/env true; /no/such/bin 2>/dev/null; "
            f"/usr/bin/python3 {SOCKETS} {scratch}/truth.jsonl {WITNESS_PORT} {scratch}/u")
    script = (
        f"strace -f -qq -e trace=execve,connect -e signal=none -o {out}/strace.log "
        f"/bin/sh -c {shlex.quote(work)}\n"
        + "".join(f"modprobe {m}\n" for m in MODULES)
        + f"/usr/bin/python3 {PLANTED} {out}/sched-truth.json {scratch}/fsync.data\n"
    )
    (out / "recorded.sh").write_text(script)
    # the recordings' own bytecode cache, empty at first: the witness recording compiles
    # (cold start) and fills it, the second one loads from it (warm start)
    cache = scratch / "bpf-cache"
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(mode=0o700)
    env = {**os.environ, "K3SPROF_BPF_CACHE": str(cache)}
    step("record", [*K3SPROF, "record", "-o", str(out / "witness.trace"), "--",
                    "/bin/sh", str(out / "recorded.sh")], env=env)
    step("lsmod-after", ["lsmod"])
    step("record-warm", [sys.executable, str(START_PROBE), str(out / "warm-start.json"),
                         str(out / "warm-start.recorder.err"), "--", *K3SPROF, "record", "-o",
                         str(out / "warm.trace")], env=env)

    for m in reversed(MODULES):
        step(f"unload2-{m}", ["modprobe", "-r", m])
    step("lsmod-before-demo", ["lsmod"])
    # gok3s comes prebuilt from the host (conftest.stage_gok3s): building it under TCG takes
    # longer than the step's timeout
    demo_env = {**os.environ, **({"K3SPROF_GO_CACHE": go_cache} if go_cache else {})}
    # (1200 s: under TCG with everything on, the demo took 494-585 s in a loaded run)
    step("demo", [*K3SPROF, "demo", "-o", str(out / "demo")], timeout=1200, env=demo_env)
    step("lsmod-after-demo", ["lsmod"])
    print("[guest] done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else None))
