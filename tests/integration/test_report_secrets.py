"""A real recording of a workload whose argv carries k3s-shaped secrets: the trace holds them
(ground truth), the shareable outputs (report, Perfetto export, analyze) must not."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.integration.recording import K3SPROF, ROOT, free_port, record
from tracer import schema
from tracer.analyzer import analyze
from tracer.report.html import HtmlReport
from tracer.report.perfetto import PerfettoExport

pytestmark = pytest.mark.bpf


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    tag = uuid.uuid4().hex[:12]  # unique: other engineers' workloads share the system-wide trace
    secrets = [f"joinpw{tag}", f"dbpw{tag}", f"agentpw{tag}"]
    port = free_port()
    argv = [
        "k3s",
        "server",
        f"--token=K10{tag}::server:{secrets[0]}",
        f"--datastore-endpoint=postgres://k3s:{secrets[1]}@127.0.0.1:{port}/k3s",
        "--agent-token",
        secrets[2],
    ]
    # sh runs a helper with the same argv (as k3s's re-exec does), then tries the "datastore"
    # port (refused: nobody listens), so the trace has execs and a connect of this workload.
    script = (
        '/bin/echo "$@" >/dev/null; '
        f"python3 -c 'import socket; socket.socket().connect_ex((\"127.0.0.1\", {port}))'; "
        "exit 0"
    )
    out = tmp_path_factory.mktemp("secrets") / f"secret-{tag}.trace"
    record(out, ["/bin/sh", "-c", script, *argv])
    return out, secrets


def test_the_trace_really_holds_the_secrets(recorded: tuple[Path, list[str]]) -> None:
    # without this, "no secret in the outputs" would prove nothing
    path, secrets = recorded
    trace = schema.load(path)
    proc = trace.table("process").to_pylist()
    argvs = [" ".join(r["argv"] or []) for r in proc if r["kind"] == "exec"]
    for s in secrets:
        assert any(s in a for a in argvs), f"{s} not recorded"


def test_report_and_export_carry_no_secret(
    recorded: tuple[Path, list[str]], tmp_path: Path
) -> None:
    path, secrets = recorded
    trace = schema.load(path)
    # redaction happens once, in the analyzer; the reporters render what it handed them
    result = analyze(trace)
    page = HtmlReport.from_analysis(result).render_bytes().decode()
    export = PerfettoExport.from_analysis(result).render_bytes().decode()
    for s in secrets:
        assert s not in page and s not in export
    # and the workload is in there, redacted, not dropped
    assert "--token=<redacted>" in export and "--agent-token" in export
    raw = PerfettoExport.from_analysis(analyze(trace, redact=False)).render_bytes().decode()
    assert all(s in raw for s in secrets)


def test_cli_outputs_carry_no_secret(recorded: tuple[Path, list[str]], tmp_path: Path) -> None:
    path, secrets = recorded
    outs = []
    for cmd in (
        ["report", str(path), "-o", str(tmp_path / "r.html")],
        ["export", str(path), "--format", "perfetto", "-o", str(tmp_path / "e.json")],
        ["analyze", str(path), "--json"],
        ["analyze", str(path)],
    ):
        p = subprocess.run(
            [*K3SPROF, *cmd], capture_output=True, text=True, cwd=ROOT, timeout=120, check=False
        )
        assert p.returncode == 0, p.stderr
        outs.append(p.stdout + p.stderr)
    outs += [(tmp_path / "r.html").read_text(), (tmp_path / "e.json").read_text()]
    json.loads(outs[-1])
    for text in outs:
        for s in secrets:
            assert s not in text
