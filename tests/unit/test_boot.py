"""Boot unit: text checked by systemd's own tools, install/uninstall into a temp root, naming,
rotation, sd_notify, the in-process analysis and report of a run, and the CLI's one-line
errors. No root, no BPF, no running systemd."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pyarrow as pa
import pytest
from pyarrow import ipc

import tracer.cli
from tests import builders
from tests.builders import ms
from tracer import boot, host, schema
from tracer._errors import UsageError
from tracer.boot import supervise

VENV_K3SPROF = Path(sys.executable).with_name("k3sprof")
BOOT_ID = "0123456789abcdef0123456789abcdef"

# The unit k3s's install.sh writes (trimmed to what matters for ordering), with ExecStart
# pointed at an executable that exists so `systemd-analyze verify` can check it.
K3S_UNIT = """\
[Unit]
Description=Lightweight Kubernetes
Documentation=https://k3s.io
Wants=network-online.target
After=network-online.target

[Install]
WantedBy=multi-user.target

[Service]
Type=notify
EnvironmentFile=-/etc/default/%N
EnvironmentFile=-/etc/sysconfig/%N
EnvironmentFile=-/etc/systemd/system/k3s.service.env
KillMode=process
Delegate=yes
TimeoutStartSec=0
Restart=always
RestartSec=5s
ExecStartPre=-/sbin/modprobe br_netfilter
ExecStartPre=-/sbin/modprobe overlay
ExecStart={k3s} {role}
"""


def main(argv: list[str]) -> int:
    return tracer.cli.main(argv)


def unit_entries(text: str) -> dict[str, list[str]]:
    """Key -> values of a unit file (keys repeat in units; values are space-separated lists)."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            k, _, v = line.partition("=")
            out.setdefault(k, []).append(v)
    return out


def exe() -> list[str]:
    return [str(VENV_K3SPROF)] if VENV_K3SPROF.exists() else [sys.executable, "-m", "tracer"]


needs_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze not installed (package systemd)",
)
needs_systemctl = pytest.mark.skipif(
    shutil.which("systemctl") is None, reason="systemctl not installed (package systemd)"
)


def verify(*units: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SYSTEMD_LOG_COLOR": "0"}
    return subprocess.run(
        ["systemd-analyze", "verify", *map(str, units)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


# --- the unit text ---------------------------------------------------------------------------


@needs_analyze
@pytest.mark.parametrize("with_k3s", [True, False], ids=["k3s-installed", "k3s-not-yet"])
def test_unit_verifies_clean_with_and_without_k3s_units(tmp_path: Path, with_k3s: bool) -> None:
    # GIVEN the generated unit (ExecStart = this venv's k3sprof) and, maybe, k3s's own units
    ours = tmp_path / boot.UNIT_NAME
    ours.write_text(boot.render_unit(boot.BootOptions(end="listen:10250"), exe()))
    units = [ours]
    if with_k3s:
        fake_k3s = tmp_path / "k3s"
        fake_k3s.write_text("#!/bin/sh\n")
        fake_k3s.chmod(0o755)
        for name, role in (("k3s.service", "server"), ("k3s-agent.service", "agent")):
            (tmp_path / name).write_text(K3S_UNIT.format(k3s=fake_k3s, role=role))
            units.append(tmp_path / name)
    # WHEN systemd checks them together (this also builds start transactions: ordering cycles fail)
    r = verify(*units)
    # THEN no error and not even a warning
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == ""


@needs_analyze
def test_verify_rejects_a_unit_whose_recorder_is_missing(tmp_path: Path) -> None:
    # The check above can fail: a unit pointing at a k3sprof that is not there is an error.
    ours = tmp_path / boot.UNIT_NAME
    ours.write_text(boot.render_unit(boot.BootOptions(), [str(tmp_path / "no-such-k3sprof")]))
    r = verify(ours)
    assert r.returncode != 0
    assert "no-such-k3sprof" in r.stderr


def test_unit_semantics() -> None:
    text = boot.render_unit(boot.BootOptions(end="listen:10250", attach_timeout_s=45), exe())
    e = unit_entries(text)
    assert e["Type"] == ["notify"]
    assert e["NotifyAccess"] == ["all"]  # READY=1 is sent by the recorder, a child
    before = " ".join(e["Before"]).split()
    assert {"k3s.service", "k3s-agent.service"} <= set(before)
    # ordering only: nothing that would stop k3s, or this unit, when the other fails
    for strong in ("Requires", "Requisite", "BindsTo", "PartOf", "RequiredBy"):
        assert strong not in e
    assert e["DefaultDependencies"] == ["no"]
    assert "sysinit.target" in " ".join(e["After"]).split()
    assert "network-online.target" not in text and "basic.target" not in " ".join(e["After"])
    assert e["TimeoutStartSec"] == ["45"]
    assert e["KillMode"] == ["mixed"]
    assert e["WantedBy"] == ["multi-user.target"]
    assert e["UMask"] == ["0077"]


@pytest.mark.parametrize(
    "end",
    [
        "listen:10250",
        "connect-ok:/run/k3s/containerd/containerd.sock",
        "exec:k3s-server",
        r'log:Node "?\S+"? ready \(\d+%\) costs \$5; a\\b',
        "log:has  two  spaces",
        "log:it's",
    ],
)
def test_exec_start_round_trips(end: str) -> None:
    opts = boot.BootOptions(Path("/var/lib/k3s prof"), end, 120, 3, start=end)
    argv = boot.run_argv(opts, ["/opt/k3sprof/.venv/bin/k3sprof"])
    line = boot.exec_line(argv)
    # % and $ are systemd specifiers/variables: every one must be doubled in the unit (the
    # condition is there twice: as --end and as --start)
    assert line.count("%") == 4 * end.count("%") and line.count("$") == 4 * end.count("$")
    assert boot.parse_exec_line(line) == argv
    assert boot.options_from_argv(argv) == opts


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"end": "ready"}, "unknown condition"),
        ({"start": "soon"}, "unknown condition"),
        ({"end": "listen:99999"}, "TCP port"),
        ({"timeout_s": 0}, "--timeout"),
        ({"keep": 0}, "--keep"),
        ({"output_dir": Path("var/lib/k3sprof")}, "absolute"),
    ],
)
def test_bad_options_are_usage_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        boot.BootOptions(**kwargs).validate()  # type: ignore[arg-type]


# --- install / uninstall / status ------------------------------------------------------------


@needs_systemctl
def test_install_enables_like_systemctl_and_uninstall_disables(tmp_path: Path) -> None:
    root = tmp_path / "root"
    opts = boot.BootOptions(Path("/var/lib/k3sprof"), "listen:10250", 200, 3)
    # WHEN installed into an empty root (no k3s yet)
    res = boot.install(opts, root=root, exe=exe())
    # THEN systemd's own offline tool agrees it is enabled
    r = subprocess.run(
        ["systemctl", "--root", str(root), "is-enabled", boot.UNIT_NAME],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.stdout.strip() == "enabled", r.stderr
    assert res.k3s_units_found == [] and not res.replaced and not res.reloaded
    assert (root / "etc/systemd/system" / boot.UNIT_NAME).stat().st_mode & 0o777 == 0o644
    out = root / "var/lib/k3sprof"
    assert out.stat().st_mode & 0o777 == 0o700
    # and the link is exactly what `systemctl enable` makes
    ours = os.readlink(boot.wants_link(root))
    boot.wants_link(root).unlink()
    subprocess.run(
        ["systemctl", "--root", str(root), "enable", boot.UNIT_NAME],
        check=True,
        capture_output=True,
    )
    assert os.readlink(boot.wants_link(root)) == ours

    # WHEN a run exists and the unit is uninstalled
    run_dir = boot.new_run_dir(out, BOOT_ID, dt.datetime(2025, 4, 1, tzinfo=dt.UTC))
    removed = boot.uninstall(root=root).removed
    # THEN systemd sees no unit, and the recorded run is still there
    r = subprocess.run(
        ["systemctl", "--root", str(root), "is-enabled", boot.UNIT_NAME],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode != 0
    assert set(removed) == {boot.unit_path(root), boot.wants_link(root)}
    assert run_dir.is_dir()
    assert boot.uninstall(root=root).removed == []  # idempotent


def test_reinstall_replaces_options_and_tightens_output_dir(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc/systemd/system").mkdir(parents=True)
    (root / "etc/systemd/system/k3s-agent.service").write_text("[Service]\nExecStart=/bin/true\n")
    (root / "srv/traces").mkdir(parents=True, mode=0o755)
    (root / "srv/traces").chmod(0o755)
    boot.install(boot.BootOptions(Path("/srv/traces"), None, 100, 2), root=root, exe=exe())
    res = boot.install(
        boot.BootOptions(Path("/srv/traces"), "exec:kubelet", 50, 7, 30), root=root, exe=exe()
    )
    assert res.replaced and res.k3s_units_found == ["k3s-agent.service"]
    assert (root / "srv/traces").stat().st_mode & 0o777 == 0o700
    st = boot.status(root=root)
    assert st.installed and st.enabled
    assert st.options == boot.BootOptions(Path("/srv/traces"), "exec:kubelet", 50, 7, 30)
    assert st.exec_start == boot.run_argv(st.options, exe())
    assert st.runs == []


def test_status_not_installed(tmp_path: Path) -> None:
    st = boot.status(root=tmp_path)
    assert not st.installed and not st.enabled and st.options is None and st.runs == []


# --- naming and rotation ---------------------------------------------------------------------


def test_boot_id_is_the_kernels_in_both_forms() -> None:
    kernel = uuid.UUID(Path("/proc/sys/kernel/random/boot_id").read_text().strip())
    assert host.boot_id() == str(kernel)  # what trace metadata stores
    assert host.boot_id("journal") == kernel.hex  # what journald's _BOOT_ID and run names use
    assert host.journal_boot_id(str(kernel).upper()) == kernel.hex
    assert boot.RUN_NAME.match(
        boot.run_name(1, host.boot_id("journal"), dt.datetime.now(dt.UTC))
    )


def test_run_dirs_are_named_by_sequence_time_and_boot_id(tmp_path: Path) -> None:
    when = dt.datetime(2025, 4, 23, 10, 11, 12, tzinfo=dt.UTC)
    a = boot.new_run_dir(tmp_path, BOOT_ID, when)
    b = boot.new_run_dir(tmp_path, BOOT_ID, when)  # same boot, same second: still distinct
    assert a.name == f"0001-20250423T101112Z-{BOOT_ID}"
    assert b.name == f"0002-20250423T101112Z-{BOOT_ID}"
    assert a.stat().st_mode & 0o777 == 0o700
    with pytest.raises(ValueError):
        boot.run_name(1, "not-a-boot-id", when)


def test_rotation_keeps_newest_by_sequence_not_clock_and_ignores_other_files(
    tmp_path: Path,
) -> None:
    # GIVEN 5 runs whose wall clocks go BACKWARDS (early-boot clocks before NTP can do that)
    years = [2030, 2029, 2028, 1970, 1970]
    runs = [
        boot.new_run_dir(tmp_path, f"{i:032x}", dt.datetime(y, 1, 1, tzinfo=dt.UTC))
        for i, y in enumerate(years, 1)
    ]
    foreign = [
        tmp_path / "notes.txt",
        tmp_path / "0001-bad",
        tmp_path / f"0000-20250101T000000Z-{BOOT_ID}",
    ]
    foreign[0].write_text("mine")
    foreign[1].mkdir()
    foreign[2].symlink_to(runs[0])
    # WHEN keeping 2, with the oldest-numbered one marked as the current run
    removed = boot.rotate(tmp_path, 2, current=runs[0])
    # THEN the newest by sequence survive, the current one too, and nothing foreign is touched
    assert sorted(removed) == sorted(runs[1:3])
    assert [r.path for r in boot.list_runs(tmp_path)] == [runs[0], runs[3], runs[4]]
    assert all(p.is_symlink() or p.exists() for p in foreign)


# --- sd_notify -------------------------------------------------------------------------------


@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
def test_notify_sends_one_datagram(tmp_path: Path, abstract: bool) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        if abstract:
            name = f"k3sprof-test-{os.getpid()}-{tmp_path.name}"
            s.bind("\0" + name)
            addr = "@" + name
        else:
            addr = str(tmp_path / "notify")
            s.bind(addr)
        s.settimeout(5)
        assert host.sd_notify("STATUS=attaching probes", env={"NOTIFY_SOCKET": addr})
        assert s.recv(4096) == b"STATUS=attaching probes"
        host.send_notify(addr, b"READY=1")  # the demo supervisor's way: its own socket path
        assert s.recv(4096) == b"READY=1"
    assert not host.sd_notify("READY=1", env={})
    assert not host.sd_notify("READY=1", env={"NOTIFY_SOCKET": str(tmp_path / "gone")})
    with pytest.raises(FileNotFoundError):
        host.send_notify(str(tmp_path / "gone"), b"READY=1")


# --- analysis and report: one in-process analysis (boot.supervise) ---------------------------

#: a real recording (tests/data/reduce_trace.py says how it was made)
REAL_TRACE = Path(__file__).resolve().parents[1] / "data" / "etcd-start.trace"


def real_trace(trace_dir: Path) -> Path:
    """What the recorder would leave in RUN/trace: a copy of a real recording."""
    shutil.copytree(REAL_TRACE, trace_dir)
    return trace_dir


def garbage_process_table(trace_dir: Path) -> Path:
    """A real trace whose process table is garbage (a foreign or corrupted writer): a valid
    Arrow stream whose columns do not have the schema's types, so loading it fails for real."""
    real_trace(trace_dir)
    t = pa.table({"ts_ns": pa.array(["garbage"]), "pid": pa.array(["x"])})
    with ipc.new_stream(str(trace_dir / ("process" + schema.TABLE_SUFFIX)), t.schema) as w:
        w.write_table(t)
    return trace_dir


def k3s_stopped_early(trace_dir: Path) -> Path:
    """A k3s server boot recorded until before the kubelet served (no listen on 10250, the k3s
    profile's end): what a recording stopped early (timeout, `systemctl stop`) holds."""
    tr = builders.trace(
        process=[
            dict(ts_ns=ms(10), kind="fork", pid=700, tid=700, ppid=1, comm="systemd"),
            dict(ts_ns=ms(11), kind="exec", pid=700, tid=700, comm="k3s-server",
                 filename="/usr/local/bin/k3s", argv=["/usr/local/bin/k3s", "server"]),
            dict(ts_ns=ms(500), kind="fork", pid=701, tid=701, ppid=700, comm="k3s-server"),
            dict(ts_ns=ms(501), kind="exec", pid=701, tid=701, comm="containerd",
                 filename="/var/lib/rancher/k3s/data/current/bin/containerd",
                 argv=["containerd"]),
        ],
        meta={"end_ns": ms(2000)},
    )
    trace_dir.mkdir(parents=True)
    schema.write_meta(trace_dir, tr.meta)
    for name, table in tr.tables.items():
        w = schema.StreamWriter(trace_dir / (name + schema.TABLE_SUFFIX), schema.TABLES[name])
        w.write(table)
        w.close()
    return trace_dir


class Logged:
    """`boot run`'s log callback: (level, message) pairs."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def __call__(self, level: str, message: str) -> None:
        self.lines.append((level, message))

    def text(self, level: str) -> str:
        return "\n".join(m for lv, m in self.lines if lv == level)


def by_hand(step: boot.Step, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run a step's argv (`python -m tracer ...`) through the CLI in process: (rc, out, err)."""
    assert step.argv[1:3] == ["-m", "tracer"]
    capsys.readouterr()
    rc = tracer.cli.main(step.argv[3:])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def no_subprocess(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a subprocess was started: {args}")

    monkeypatch.setattr(subprocess, "run", refuse)
    monkeypatch.setattr(subprocess, "Popen", refuse)


@pytest.mark.usefixtures("no_subprocess")
def test_analysis_and_report_come_from_one_load_in_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a run directory holding a real trace, with every load of a trace counted
    real_trace(tmp_path / boot.TRACE_SUBDIR)
    loads: list[Path] = []
    real_load = schema.load

    def counting_load(trace_dir: str | os.PathLike[str]) -> schema.Trace:
        loads.append(Path(trace_dir))
        return real_load(trace_dir)

    monkeypatch.setattr(schema, "load", counting_load)
    log = Logged()
    # WHEN the analysis step runs
    report, analysis = supervise._analyze_and_report(tmp_path, log)
    # THEN one load (no subprocess: the fixture refuses them) made both files
    assert loads == [tmp_path / boot.TRACE_SUBDIR]
    assert (analysis.rc, analysis.error, report.rc, report.error) == (0, None, 0, None)
    assert "<html" in (tmp_path / boot.REPORT_FILE).read_text()[:2000].lower()
    assert [lv for lv, _ in log.lines] == ["info", "info"]
    assert "analysis written" in log.text("info") and "report written" in log.text("info")
    # AND analysis.json is what the step's own command prints (`analyze --json`), byte for byte
    monkeypatch.setattr(schema, "load", real_load)
    rc, out, _ = by_hand(analysis, capsys)
    assert rc == 0 and out == (tmp_path / boot.ANALYSIS_FILE).read_text() + "\n"
    assert json.loads(out)["end_reached"] is True


def test_an_unreadable_trace_fails_the_analysis_alone_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace_dir = garbage_process_table(tmp_path / boot.TRACE_SUBDIR)
    kept = sorted(p.name for p in trace_dir.iterdir())
    log = Logged()
    report, analysis = supervise._analyze_and_report(tmp_path, log)
    # the analysis failed with the loader's own one-line error and the trace is untouched
    assert analysis.rc == 3 and "process.arrows: column ts_ns has type string" in (
        analysis.error or ""
    )
    assert sorted(p.name for p in trace_dir.iterdir()) == kept
    assert sorted(p.name for p in tmp_path.iterdir()) == [boot.TRACE_SUBDIR]
    # the report, which needs the analysis, says why it is missing (boot status shows it)
    assert report.error == analysis.error and report.rc == 3
    # one warning line each, no traceback
    assert [lv for lv, _ in log.lines] == ["warning", "warning"]
    assert all("\n" not in m and "Traceback" not in m for _, m in log.lines)
    assert "analysis failed" in log.text("warning") and "trace is kept" in log.text("warning")
    # and by hand, the step's command fails the same way
    rc, _, err = by_hand(analysis, capsys)
    assert rc == analysis.rc and analysis.error in err


def test_a_failing_report_keeps_the_analysis_and_names_the_unexpected_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tracer.report.html import HtmlReport

    def broken(self: HtmlReport) -> bytes:
        raise RuntimeError("boom\nwith a second line")

    monkeypatch.setattr(HtmlReport, "render_bytes", broken)
    real_trace(tmp_path / boot.TRACE_SUBDIR)
    log = Logged()
    report, analysis = supervise._analyze_and_report(tmp_path, log)
    assert report.rc == 1 and report.error == "unexpected RuntimeError: boom"
    assert not (tmp_path / boot.REPORT_FILE).exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left
    # the analysis is independent of the report's failure
    assert analysis.error is None
    assert json.loads((tmp_path / boot.ANALYSIS_FILE).read_text())["end_reached"] is True
    assert log.lines[-1] == (
        "error",
        "report failed (unexpected RuntimeError: boom); the analysis and the trace are kept",
    )


def test_a_boot_stopped_before_its_end_still_gets_its_analysis(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tracer.cli.analyze import EXIT_NOT_REACHED

    k3s_stopped_early(tmp_path / boot.TRACE_SUBDIR)
    log = Logged()
    report, analysis = supervise._analyze_and_report(tmp_path, log)
    # `analyze` exits 6 with a full answer; the step records that and has not failed
    assert analysis.rc == supervise.EXIT_NOT_REACHED == EXIT_NOT_REACHED
    assert analysis.error is None
    data = json.loads((tmp_path / boot.ANALYSIS_FILE).read_text())
    assert data["profile"] == "k3s" and data["end_reached"] is False
    assert data["start_reached"] is True and data["critical_path"] == []
    assert "end milestone not reached (listen:10250" in log.text("info")
    assert report.error is None and (tmp_path / boot.REPORT_FILE).exists()
    assert by_hand(analysis, capsys)[0] == EXIT_NOT_REACHED


# --- CLI ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--end", "ready"], 2, "unknown condition 'ready'"),
        (["--keep", "0"], 2, "--keep must be at least 1"),
        (["--output-dir", "relative/dir"], 2, "must be an absolute path"),
    ],
)
def test_install_cli_errors_are_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    code: int,
    message: str,
) -> None:
    assert main(["boot", "install", "--root", str(tmp_path), *args]) == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("k3sprof: error: ") and message in err
    assert not boot.unit_path(tmp_path).exists()


def test_cli_install_status_uninstall(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = ["--root", str(tmp_path)]
    assert main(["boot", "install", *root, "--end", "listen:10250", "--keep", "2"]) == 0
    out = capsys.readouterr().out
    assert "installed" in out and "neither k3s.service nor k3s-agent.service" in out
    boot.new_run_dir(tmp_path / "var/lib/k3sprof", BOOT_ID, dt.datetime.now(dt.UTC))
    assert main(["boot", "status", *root, "--json"]) == 0
    st = json.loads(capsys.readouterr().out)
    assert st["installed"] and st["enabled"] and st["options"]["end"] == "listen:10250"
    assert [r["boot_id"] for r in st["runs"]] == [BOOT_ID]
    assert main(["boot", "status", *root]) == 0
    text = capsys.readouterr().out
    assert "enabled" in text and "stops at: listen:10250" in text and "NO TRACE" in text
    assert main(["boot", "uninstall", *root]) == 0
    assert "removed" in capsys.readouterr().out
    assert main(["boot", "uninstall", *root]) == 0
    assert "nothing to remove" in capsys.readouterr().out


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to an unprivileged user")
def test_install_as_non_root_says_use_sudo() -> None:
    # A real unprivileged process (setpriv drops to nobody) installing into the real /. It keeps
    # CAP_DAC_READ_SEARCH only, to read the checkout wherever it is (CI may clone into a 0700
    # directory): it can read, not write, and is not root.
    code = "import sys, tracer.cli as c; sys.exit(c.main(['boot', 'install']))"
    r = subprocess.run(
        [
            "setpriv",
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "--inh-caps=+dac_read_search",
            "--ambient-caps=+dac_read_search",
            sys.executable,
            "-c",
            code,
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd="/",
    )
    assert r.returncode == 4, r.stderr
    assert r.stderr.strip().count("\n") == 0 and "run it as root" in r.stderr


# --- the Vagrant lab: what can be checked without a VM -----------------------------------------

LAB = Path(__file__).resolve().parents[2] / "vagrant"


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:  # a failure in CI (tests/conftest.py): setup installs it
        pytest.skip(f"{name} not installed (package {package}; run: sudo make setup)")
    return path


def test_lab_scripts_pass_shellcheck() -> None:
    scripts = sorted(LAB.rglob("*.sh"))
    assert {p.relative_to(LAB).as_posix() for p in scripts} >= {
        "provision.sh",
        "collect.sh",
        "lib.sh",
        "single/run.sh",
        "compare/run.sh",
        "server-agent/run.sh",
    }
    r = subprocess.run(
        [_tool("shellcheck", "shellcheck"), "-x", *map(str, scripts)],
        capture_output=True,
        text=True,
        cwd=LAB,
        check=False,
    )
    assert r.returncode == 0, r.stdout
    for p in scripts:
        if p.name != "lib.sh":  # sourced, not run
            assert os.access(p, os.X_OK), f"{p} is not executable"


def vagrantfiles() -> list[Path]:
    return sorted(LAB.glob("*/Vagrantfile"))


def test_vagrantfiles_parse_as_ruby() -> None:
    ruby = _tool("ruby", "ruby")
    assert [p.parent.name for p in vagrantfiles()] == ["compare", "server-agent", "single"]
    for p in vagrantfiles():
        r = subprocess.run([ruby, "-c", str(p)], capture_output=True, text=True, check=False)
        assert r.returncode == 0 and "Syntax OK" in r.stdout, r.stderr


def _vagrant_validate(where: Path, tmp_path: Path) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "VAGRANT_DOTFILE_PATH": str(tmp_path / f"dot-{where.name}"),
        "VAGRANT_HOME": str(tmp_path / "vagrant-home"),
        "VAGRANT_CHECKPOINT_DISABLE": "1",
    }
    return subprocess.Popen(
        ["vagrant", "validate", "--ignore-provider", "--no-color"],
        cwd=where,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.skipif(
    shutil.which("vagrant") is None, reason="vagrant not installed (Debian package vagrant)"
)
def test_vagrantfiles_validate(tmp_path: Path) -> None:
    # vagrant validate needs neither a provider nor the box; it checks the config and that
    # the provisioning script each Vagrantfile points at exists. In parallel: ~2 s each.
    runs = {p.parent.name: _vagrant_validate(p.parent, tmp_path) for p in vagrantfiles()}
    # the same check fails for a copy whose relative path to provision.sh is broken
    broken = tmp_path / "elsewhere" / "single"
    broken.mkdir(parents=True)
    shutil.copy(LAB / "single" / "Vagrantfile", broken)
    (broken.parent / "lib").mkdir()  # the shared provider settings are there: only the path
    shutil.copy(LAB / "lib" / "provider.rb", broken.parent / "lib")  # to provision.sh breaks
    runs["broken"] = _vagrant_validate(broken, tmp_path)
    out = {name: (p.wait(timeout=120), p.communicate()[0]) for name, p in runs.items()}
    for name in ("compare", "server-agent", "single"):
        assert out[name][0] == 0, out[name][1]
    assert out["broken"][0] != 0 and "provision.sh" in out["broken"][1]


def test_install_as_non_root_says_use_sudo_in_process(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tracer.cli import main as cli_main

    monkeypatch.setattr("os.geteuid", lambda: 1000)
    assert cli_main(["boot", "install"]) == 4
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "run it as root" in err
