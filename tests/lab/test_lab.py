"""The Vagrant lab end to end on this machine (`make lab-test`, root).

The lab's own scripts run unchanged, as users run them: `vagrant/single/run.sh` and
`vagrant/compare/run.sh` -> `vagrant up --provision` (provision.sh: k3sprof + its venv, doctor,
k3s, `k3sprof boot install`), the traced reboot inside the guest, collect.sh, the run brought
home with scp, and compare's report. What differs from a user's run, and why:

* the box is built here from Debian packages (tests/lab/box.py: no box can be downloaded);
* libvirt runs the VMs with QEMU's TCG (LAB_LIBVIRT_DRIVER=qemu: KVM does not work here) and
  libvirtd, its NAT network and vagrant run inside a network namespace of their own
  (tests/lab/labns.sh): the guests reach nothing but each other and the host's side of it;
* k3s is a STAND-IN (tests/lab/k3s-standin: a real program, not k3s, see its docstring),
  installed by provision.sh's offline path (K3S_BINARY), which writes k3s's unit shape;
* compare's two VMs get single's VM's bytecode cache (BPF_CACHE_SEED: the same box and
  source) and run `doctor --cached`: each would otherwise compile for 1-4 min under TCG.

Checks: the traced boot's trace holds the stand-in's execs (k3s, its modprobes, containerd),
the module loads (br_netfilter pulls llc, stp, bridge; overlay), its listens on 6443 and 10250;
the report HTML exists and renders in Debian's headless chromium without JavaScript errors;
compare's report likewise.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab import box

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "vagrant"
LABNS = ROOT / "tests" / "lab" / "labns.sh"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
VERSION = "v0.0.0+standin"
#: each scenario under TCG on 2 cores takes minutes (see vagrant/README.md); past this it fails
SCENARIO_TIMEOUT_S = 1800
REPORTS = ROOT / "reports" / box.BOX_NAME.replace("/", "_")
#: single's VM's bytecode cache, synced into compare's VMs (keep_bpf_cache; .gitignore'd)
SEED = ROOT / ".lab-bpf-cache"

CHROMIUM = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000"]


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root (run: sudo make lab-test)"
    missing = [t for t in ("vagrant", "libvirtd", "virtlogd", "mmdebstrap", "qemu-img",
                           "chromium") if shutil.which(t) is None]
    if missing:
        return f"{', '.join(missing)} missing (run: sudo bash scripts/lab-setup.sh)"
    return None


@pytest.fixture(scope="module")
def lab_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    why = _skip_reason()
    if why:
        if IN_CI:
            pytest.fail(why)
        pytest.skip(why)
    env = dict(os.environ)
    env.update({
        "VAGRANT_HOME": str(box.CACHE / "vagrant-home"),
        "VAGRANT_DEFAULT_PROVIDER": "libvirt",
        "VAGRANT_CHECKPOINT_DISABLE": "1",  # no version check against HashiCorp's servers
        "LAB_LIBVIRT_DRIVER": "qemu",
        "K3S_BINARY": "/k3sprof-src/tests/lab/k3s-standin",
        "K3S_VERSION": VERSION,
        "K3S_VERSION_A": VERSION + "-a",
        "K3S_VERSION_B": VERSION + "-b",
        "CPUS": "2",
        "MEMORY": "2048",
    })
    Path(env["VAGRANT_HOME"]).mkdir(parents=True, exist_ok=True)
    shutil.rmtree(REPORTS, ignore_errors=True)
    subprocess.run(["bash", str(LABNS), "start"], check=True, env=env)
    try:
        env["BOX"] = box.ensure(env)
        yield env
    finally:
        for scenario in ("single", "compare"):
            if (LAB / scenario / ".vagrant").exists():
                subprocess.run(["bash", str(LABNS), "exec", "vagrant", "destroy", "-f"],
                               cwd=LAB / scenario, env=env, capture_output=True, timeout=600)
        subprocess.run(["bash", str(LABNS), "stop"], env=env, timeout=300)


def run_scenario(env: dict[str, str], scenario: str, log: Path) -> float:
    t0 = time.monotonic()
    with open(log, "w") as f:
        p = subprocess.run(["bash", str(LABNS), "exec", str(LAB / scenario / "run.sh")],
                           cwd=LAB / scenario, env=env, stdout=f, stderr=subprocess.STDOUT,
                           timeout=SCENARIO_TIMEOUT_S)
    took = time.monotonic() - t0
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-60:])
    assert p.returncode == 0, f"{scenario}/run.sh exited {p.returncode} after {took:.0f} s:\n{tail}"
    print(f"\n[lab] {scenario}: {took:.0f} s (log: {log})")
    return took


def newest_run(version: str) -> Path:
    runs = sorted(p for p in (REPORTS / version).iterdir() if p.is_dir() and p.name[0].isdigit())
    assert runs, f"no run brought home under {REPORTS / version}"
    return runs[-1]


def check_trace(run: Path) -> None:
    from tracer import schema

    t = schema.load(run / "trace")
    procs = t.table("process").to_pylist()
    execs = [r for r in procs if r["kind"] == "exec"]
    files = {r["filename"] for r in execs}
    assert "/usr/local/bin/k3s" in files, sorted(files)
    k3s_pids = {r["pid"] for r in execs if r["filename"] == "/usr/local/bin/k3s"}
    parent = {r["pid"]: r["ppid"] for r in procs if r["kind"] == "fork"}
    modprobes = [r for r in execs if (r["filename"] or "").endswith("/modprobe")]
    args = {tuple(r["argv"] or ()) for r in modprobes}
    for mod in ("br_netfilter", "overlay"):
        assert any(mod in a for a in args), f"no modprobe {mod} exec: {sorted(args)}"
    # the unit's ExecStartPre modprobes come from systemd, the stand-in's own from k3s
    by_k3s = {a for r in modprobes if parent.get(r["pid"]) in k3s_pids for a in r["argv"]}
    assert {"br_netfilter", "overlay"} <= by_k3s, f"k3s's own modprobes: {sorted(by_k3s)}"
    ctr = [r for r in execs if (r["filename"] or "").endswith("/containerd")]
    assert any(parent.get(r["pid"]) in k3s_pids for r in ctr), "no containerd child of k3s"
    mods = {r["name"] for r in t.table("module").to_pylist() if r["kind"] == "load"}
    assert {"llc", "stp", "bridge", "br_netfilter"} <= mods, sorted(mods)
    listens = {r["port"] for r in t.table("socket").to_pylist() if r["kind"] == "listen"}
    assert {6443, 10250} <= listens, sorted(listens)


def check_renders(page: Path, tmp: Path) -> None:
    assert page.is_file() and page.stat().st_size > 10_000, page
    p = subprocess.run([*CHROMIUM, f"--user-data-dir={tmp / 'chromium'}", "--dump-dom",
                        page.as_uri()], capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stderr[-2000:]
    errors = [ln for ln in p.stderr.splitlines() if "Uncaught" in ln]
    assert not errors, errors
    assert "plot-container" in p.stdout, "plotly drew no figure"


def keep_bpf_cache(env: dict[str, str], scenario: str) -> None:
    """The bytecode cache the scenario's VM filled (its doctor), kept in the clone for the next
    VMs of the same box (BPF_CACHE_SEED, vagrant/provision.sh): they load it with `doctor
    --cached` instead of compiling for minutes under TCG. Best effort: without it they compile."""
    shutil.rmtree(SEED, ignore_errors=True)
    try:
        p = subprocess.run(["bash", str(LABNS), "exec", "vagrant", "ssh", "-c",
                            "sudo tar -C /var/cache/k3sprof/bpf -czf - . | base64 -w0"],
                           cwd=LAB / scenario, env=env, capture_output=True, text=True,
                           timeout=300)
        if p.returncode != 0:
            raise RuntimeError(p.stderr[-500:])
        SEED.mkdir(mode=0o700)
        subprocess.run(["tar", "-C", str(SEED), "-xzf", "-"], check=True, capture_output=True,
                       input=base64.b64decode("".join(p.stdout.split())))
    except (OSError, RuntimeError, ValueError, subprocess.SubprocessError) as e:
        print(f"[lab] no bytecode cache kept from {scenario}: {e}")
        shutil.rmtree(SEED, ignore_errors=True)
        return
    n = len(list(SEED.glob("*.json")))
    print(f"[lab] kept {n} bytecode-cache files of {scenario}'s VM for the next VMs")
    if n:
        env["BPF_CACHE_SEED"] = "/k3sprof-src/" + SEED.name


def test_single(lab_env: dict[str, str], tmp_path: Path) -> None:
    run_scenario(lab_env, "single", REPORTS.parent / "lab-single.log")
    keep_bpf_cache(lab_env, "single")
    subprocess.run(["bash", str(LABNS), "exec", "vagrant", "destroy", "-f"],
                   cwd=LAB / "single", env=lab_env, check=True, capture_output=True, timeout=600)
    run = newest_run(VERSION)
    check_trace(run)
    assert (run / "lab" / "node-ready.json").is_file()
    check_renders(run / "report.html", tmp_path)


def test_compare(lab_env: dict[str, str], tmp_path: Path) -> None:
    log = REPORTS.parent / "lab-compare.log"
    run_scenario(lab_env, "compare", log)
    if lab_env.get("BPF_CACHE_SEED"):  # both VMs loaded single's build: the same box and source
        loaded = log.read_text(errors="replace").count("loaded from the bytecode cache")
        assert loaded == 2, f"{loaded} of compare's 2 VMs loaded the seeded bytecode cache"
    subprocess.run(["bash", str(LABNS), "exec", "vagrant", "destroy", "-f"],
                   cwd=LAB / "compare", env=lab_env, check=True, capture_output=True,
                   timeout=600)
    for v in (VERSION + "-a", VERSION + "-b"):
        check_trace(newest_run(v))
    out = REPORTS / f"compare-{VERSION}-a-vs-{VERSION}-b"
    assert (out / "compare.json").is_file()
    check_renders(out / "compare.html", tmp_path)
