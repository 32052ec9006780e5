"""What this machine can record, check by check, each failure with its fix. No BPF loaded
unless every prerequisite is there (then one real compile proves it)."""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tracer.collector import bpfcache, probes

CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF = 21, 38, 39


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True


def _caps() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return 0


def bcc_header_tree(kdir: Path) -> tuple[str, str]:
    """(what BCC 0.2x will compile with, how to make it use the headers), by BCC's own rule:
    `source` when build/ and source/ are both dirs, else `build`; that tree must hold
    include/linux/kconfig.h, or BCC silently falls back to /sys/kernel/kheaders.tar.xz
    (CONFIG_IKHEADERS) and fails where there is none. Debian's split headers (linux-headers-R
    with the generated files, -common with the rest) work only through their `source` link;
    an image or copy that kept `build` alone compiles from something else."""
    build, source = kdir / "build", kdir / "source"
    tree = source if build.is_dir() and source.is_dir() else build
    if (tree / "include/linux/kconfig.h").is_file():
        both = f" + {os.path.realpath(build)}" if tree == source else ""
        return f"{os.path.realpath(tree)}{both}", ""
    common = Path(os.path.realpath(build)).name.rsplit("-", 1)[0] + "-common"
    return ("/sys/kernel/kheaders.tar.xz (kheaders module), NOT these headers: "
            f"{tree}/include/linux/kconfig.h missing",
            f"sudo ln -sfn /usr/src/{common} {source} (Debian's split headers)")


def run_checks(compile_probe: bool = True, cached: bool = False) -> list[Check]:
    """All checks; with compile_probe, BCC's compile and attach too (it fills the bytecode
    cache), or with `cached` a cache entry of this exact build when one loads and attaches
    here (filled on a twin machine: same kernel, headers, BCC and k3sprof), else the compile."""
    checks: list[Check] = []
    root = os.geteuid() == 0
    checks.append(Check("root", root, f"euid {os.geteuid()}", "run with sudo"))
    caps = _caps()
    have = [n for n, b in (("BPF", CAP_BPF), ("PERFMON", CAP_PERFMON),
                           ("SYS_ADMIN", CAP_SYS_ADMIN)) if caps >> b & 1]
    cap_ok = "SYS_ADMIN" in have or {"BPF", "PERFMON"} <= set(have)
    checks.append(Check("capabilities", cap_ok, "effective: " + (", ".join(have) or "none"),
                        "run as root; in a container use --privileged (or CAP_BPF+CAP_PERFMON)"))
    checks.append(Check("btf", Path("/sys/kernel/btf/vmlinux").exists(),
                        "/sys/kernel/btf/vmlinux", "without it the sched concern uses its "
                        "tracepoint programs (the fallback)", required=False))
    try:
        hooks = probes.choose_sched_hooks("auto")
        raw = hooks.path == "raw_tracepoint"
        checks.append(Check("sched hooks", raw, f"{hooks.path}: {hooks.why}",
                            "" if raw else "the tracepoint fallback records the same, at "
                            "more cost per context switch (docs/sched.md)", required=False))
    except Exception as e:  # doctor reports, never fails on a check
        checks.append(Check("sched hooks", False, str(e), "", required=False))
    tfs = probes.tracefs()
    checks.append(Check("tracefs", tfs is not None, str(tfs) if tfs else "not mounted",
                        "sudo mount -t tracefs nodev /sys/kernel/tracing"))
    try:
        import bcc  # noqa: F401

        checks.append(Check("bcc", True, "python module importable"))
    except ImportError:
        checks.append(Check("bcc", False, "python module not importable",
                            "apt install python3-bpfcc (Debian/Ubuntu), dnf install "
                            "python3-bcc (Fedora/RHEL), zypper in python3-bcc (SUSE); use "
                            "a venv with --system-site-packages"))
    rel = platform.release()
    build = Path("/lib/modules") / rel / "build"
    if build.exists():
        target = os.path.realpath(build)
        exact = rel in os.path.basename(target) or not build.is_symlink()
        detail = f"{build} -> {target}"
        if not exact:
            detail += (" (NOT this kernel's headers: fine for k3sprof, whose programs read "
                       "tracepoint arguments, and the one struct field its raw sched programs "
                       "read at an offset from the kernel's BTF, never from these headers)")
        checks.append(Check("headers", True, detail, required=True))
        tree, fix = bcc_header_tree(Path("/lib/modules") / rel)
        # not required: BCC may still compile from /sys/kernel/kheaders.tar.xz
        checks.append(Check("headers used by bcc", not fix, tree, fix, required=False))
    else:
        checks.append(Check("headers", False, f"{build} missing",
                            f"install linux-headers-{rel} (Debian/Ubuntu), kernel-devel "
                            "(Fedora/RHEL), kernel-default-devel (SUSE); or `sudo make setup`"))
    if tfs is not None:
        for concern, tps in probes.REQUIRED.items():
            for tp in tps:
                ok = probes.tracepoint_format(tfs, tp) is not None
                checks.append(Check(f"tracepoint {tp}", ok, "present" if ok else "missing",
                                    f"{concern} events will be unavailable",
                                    required=concern in ("process", "socket")))
        for flag, tps in probes.OPTIONAL.items():
            ok = all(probes.tracepoint_format(tfs, t) for t in tps)
            checks.append(Check(f"optional {flag}", ok, ", ".join(tps) + (" present" if ok else
                                " missing"), "", required=False))
        if os.geteuid() == 0:
            why = bpfcache.stacks_support()
            checks.append(Check("stacks", why is None,
                                "CPU-clock perf events + BPF stack-trace map available"
                                if why is None else why,
                                "user stacks will be unavailable (record --no-stacks "
                                "records the rest)", required=False))
        if not Path("/proc/modules").exists():
            checks.append(Check("modules", False, "kernel has no loadable modules "
                                "(CONFIG_MODULES off): module events unavailable", "",
                                required=False))
    if compile_probe and all(c.ok for c in checks if c.required):
        try:
            # BCC's compile unless `cached` (the check is that it works here); it also fills
            # the bytecode cache that later recordings load from. The build is the one a
            # `record` with default options loads (start.load_probes), fallback included
            from tracer.collector.start import RecordOptions, load_probes

            _, att = load_probes(RecordOptions(output=Path("/nonexistent")), use_cache=cached,
                                 fill_cache=True)
            n = att.num_attached()
            how = "loaded from the bytecode cache, not compiled" if att.source == "cache" \
                else "compiled with BCC"
            att.detach()
            att.close()
            checks.append(Check("compile+attach", True, f"{n} tracepoints in "
                                f"{att.compile_s:.2f}s ({how}" + (f"; {att.cache_note})"
                                                                  if att.cache_note else ")")))
        except Exception as e:
            checks.append(Check("compile+attach", False, str(e), "see the message above"))
    return checks


def report(checks: list[Check]) -> dict[str, Any]:
    return {
        "ok": all(c.ok for c in checks if c.required),
        "checks": [asdict(c) for c in checks],
        "kernel": platform.release(),
    }
