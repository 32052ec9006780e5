"""`k3sprof record/info/doctor` as a user meets them: one clear line and a non-zero exit for
every mistake, nothing already recorded lost. Run as real subprocesses (console script and
`python -m tracer`)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration.recording import K3SPROF, ROOT

K3SPROF_SCRIPT = str(ROOT / ".venv" / "bin" / "k3sprof")


def run(*args: str, prefix: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*(prefix or []), *K3SPROF, *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


def one_line_error(p: subprocess.CompletedProcess[str]) -> str:
    assert p.returncode != 0
    assert "Traceback" not in p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, p.stderr
    return lines[0]


def test_unknown_condition(tmp_path: Path) -> None:
    p = run("record", "-o", str(tmp_path / "t"), "--until", "ready:k3s", "--", "true")
    assert "unknown condition 'ready:k3s'" in one_line_error(p)
    assert p.returncode == 2
    assert not (tmp_path / "t").exists()


def test_missing_trace_and_corrupt_trace(tmp_path: Path) -> None:
    assert "no such trace" in one_line_error(run("info", str(tmp_path / "nope")))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "meta.json").write_text("{")
    p = run("info", str(tmp_path / "bad"))
    assert "corrupt metadata" in one_line_error(p) and p.returncode == 3


@pytest.mark.bpf
def test_existing_output_needs_force_and_is_not_touched(tmp_path: Path) -> None:
    out = tmp_path / "t"
    assert run("record", "-o", str(out), "--", "true").returncode == 0
    before = (out / "meta.json").read_text()
    p = run("record", "-o", str(out), "--", "true")
    assert "already exists (use --force" in one_line_error(p)
    assert (out / "meta.json").read_text() == before
    assert run("record", "-o", str(out), "--force", "--", "true").returncode == 0
    assert (out / "meta.json").read_text() != before


def test_non_root_gets_told_to_use_sudo_in_process(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from tracer.cli import main

    monkeypatch.setattr("os.geteuid", lambda: 1000)
    assert main(["record", "-o", str(tmp_path / "t"), "--", "true"]) == 4
    err = capsys.readouterr().err
    assert err.strip() == "k3sprof: error: recording needs root (BPF + tracefs): run with sudo"
    assert not (tmp_path / "t").exists()


@pytest.mark.root
def test_non_root_gets_told_to_use_sudo(tmp_path: Path) -> None:
    tmp_path.chmod(0o777)
    # uid 65534 keeps CAP_DAC_READ_SEARCH only, to read the checkout wherever CI cloned it
    # (maybe a 0700 directory): it can read, not write, and has no BPF/tracing capability
    p = run("record", "-o", str(tmp_path / "t"), "--", "true",
            prefix=["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                    "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"])
    assert "needs root" in one_line_error(p) and "sudo" in p.stderr
    assert p.returncode == 4


@pytest.mark.root
@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs util-linux unshare")
def test_missing_tracefs_says_how_to_mount_it(tmp_path: Path) -> None:
    # GIVEN a private mount namespace where tracefs is not mounted
    script = ("umount /sys/kernel/tracing 2>/dev/null; umount /sys/kernel/debug 2>/dev/null; "
              f"exec {' '.join(K3SPROF)} record -o {tmp_path / 't'} -- true")
    p = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                       capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert "tracefs is not mounted" in one_line_error(p)
    assert "mount -t tracefs" in p.stderr and p.returncode == 5


@pytest.mark.bpf
def test_command_not_found(tmp_path: Path) -> None:
    p = run("record", "-o", str(tmp_path / "t"), "--", "no-such-command-k3sprof")
    assert "command not found: no-such-command-k3sprof" in one_line_error(p)


@pytest.mark.bpf
def test_doctor_json_and_console_script(tmp_path: Path) -> None:
    p = subprocess.run([K3SPROF_SCRIPT, "doctor", "--json"], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stdout
    d = json.loads(p.stdout)
    names = {c["name"]: c for c in d["checks"]}
    assert d["ok"] is True and names["tracefs"]["ok"] and names["compile+attach"]["ok"]
    assert names["tracepoint sock/inet_sock_set_state"]["ok"]
    assert "(compiled with BCC" in names["compile+attach"]["detail"]
    # doctor filled the cache; --cached loads that build (what the lab's seeded VMs do)
    p = subprocess.run([K3SPROF_SCRIPT, "doctor", "--json", "--cached"], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stdout
    cached = {c["name"]: c for c in json.loads(p.stdout)["checks"]}["compile+attach"]
    assert cached["ok"] and "(loaded from the bytecode cache, not compiled" in cached["detail"]
    assert cached["detail"].split()[0] == names["compile+attach"]["detail"].split()[0]  # same n
    # and it is the build a recording with default options loads (one way to choose it:
    # start.load_probes), so a doctor run warms what `record` needs
    p = run("record", "-o", str(tmp_path / "t"), "--", "true")
    assert p.returncode == 0, p.stderr
    meta = json.loads((tmp_path / "t" / "meta.json").read_text())
    assert meta["bpf_loaded_from"] == "cache", meta.get("bpf_cache_note")


def test_help_shows_an_example() -> None:
    for cmd in ([], ["record"], ["info"], ["doctor"]):
        p = run(*cmd, "--help")
        assert p.returncode == 0 and "Example" in p.stdout, cmd
