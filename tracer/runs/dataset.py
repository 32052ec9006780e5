"""Analyses of many runs as a Parquet dataset (docs/runs.md, "Dataset"): one directory per table,
Hive-partitioned by label, node and boot, readable by DuckDB (``k3sprof query``), polars, Spark
or Trino as it is.

    DIR/_dataset.json                    version and schema of every table
    DIR/runs/label=L/node=N/boot=B/part-<batch>.parquet
    DIR/segments/...  waits/...  phases/...  processes/...  metrics/...

Appending writes new part files only: nothing already in DIR is rewritten. A batch is written
under DIR/.tmp-<batch>/ and then moved into place file by file, the ``runs`` file of each
partition last: a batch whose runs rows are visible is complete (``query``'s views show the
other tables' rows only for runs that are there). A run already in the dataset (same run_id)
is not added twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from tracer._errors import TracerError, UsageError
from tracer.runs.engine import Outcome
from tracer.runs.metrics import run_metrics

#: 2: table `components` (stack components; 1 had none)
DATASET_VERSION = "2"
INFO_FILE = "_dataset.json"
PARTITIONS = ("label", "node", "boot")

_RUN_ID = ("run_id", pa.string())
#: the tables; every one has run_id (the runs row it belongs to); partition columns are not in
#: the files (they are the directory names)
TABLES: dict[str, pa.Schema] = {
    "runs": pa.schema([
        _RUN_ID, ("run", pa.string()), ("path", pa.string()), ("hostname", pa.string()),
        ("boot_id", pa.string()), ("kernel", pa.string()), ("k3s_version", pa.string()),
        ("profile", pa.string()), ("scope", pa.string()), ("start_ns", pa.int64()),
        ("end_ns", pa.int64()), ("total_ns", pa.int64()), ("end_reached", pa.bool_()),
        ("lost_events", pa.int64()), ("trace_start_ns", pa.int64()),
        ("trace_end_ns", pa.int64()), ("analysis_version", pa.string()),
    ]),
    "segments": pa.schema([
        _RUN_ID, ("seq", pa.int32()), ("start_ns", pa.int64()), ("end_ns", pa.int64()),
        ("duration_ns", pa.int64()), ("kind", pa.string()), ("label", pa.string()),
        ("pid", pa.int64()), ("comm", pa.string()), ("key", pa.string()),
    ]),
    "waits": pa.schema([
        _RUN_ID, ("seq", pa.int32()), ("kind", pa.string()), ("endpoint", pa.string()),
        ("component", pa.string()), ("waiter_pid", pa.int64()), ("waiter_comm", pa.string()),
        ("target_pid", pa.int64()), ("target_comm", pa.string()), ("start_ns", pa.int64()),
        ("end_ns", pa.int64()), ("duration_ns", pa.int64()), ("attempts", pa.int64()),
        ("interval_ns", pa.int64()), ("lag_ns", pa.int64()), ("in_window", pa.bool_()),
    ]),
    "phases": pa.schema([
        _RUN_ID, ("name", pa.string()), ("start_ns", pa.int64()), ("end_ns", pa.int64()),
        ("duration_ns", pa.int64()),
    ]),
    "processes": pa.schema([
        _RUN_ID, ("key", pa.string()), ("pid", pa.int64()), ("parent_key", pa.string()),
        ("comm", pa.string()), ("exe", pa.string()), ("argv", pa.list_(pa.string())),
        ("start_ns", pa.int64()), ("end_ns", pa.int64()), ("exit_code", pa.int64()),
        ("component", pa.string()), ("unit", pa.string()), ("pod_uid", pa.string()),
        ("in_scope", pa.bool_()),
    ]),
    #: with stacks: on-CPU samples per stack component in the analysis window, and the time
    #: they stand for (samples x 1 s / sample_hz)
    "components": pa.schema([
        _RUN_ID, ("component", pa.string()), ("samples", pa.int64()), ("sample_hz", pa.int64()),
        ("cpu_ns", pa.int64()), ("pct", pa.float64()),
    ]),
    #: the numbers `compare` compares, one row per run and metric (tracer/runs/metrics.py)
    "metrics": pa.schema([_RUN_ID, ("name", pa.string()), ("value_ns", pa.int64())]),
}


@dataclass
class Written:
    """What one `dataset` call did."""

    added: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    skipped: list[Outcome] = field(default_factory=list)
    files: int = 0


def _party(p: Any) -> tuple[int | None, str | None]:
    return (p.get("pid"), p.get("comm")) if isinstance(p, dict) else (None, None)


def run_id(o: Outcome, label: str) -> str:
    """Stable id of one analysed trace: the same recording under the same label is one run."""
    a = o.analysis or {}
    t = a.get("trace") or {}
    ident = [label, o.boot_id, t.get("hostname"), t.get("start_ns"), t.get("end_ns"),
             a.get("total_ns"), os.path.basename(os.path.normpath(o.path))]
    return hashlib.sha256(json.dumps(ident).encode()).hexdigest()[:20]


def rows(o: Outcome, rid: str) -> dict[str, list[dict[str, Any]]]:
    """The rows of every table for one analysed trace."""
    a = o.analysis or {}
    t = a.get("trace") or {}
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in TABLES}
    out["runs"].append({
        "run_id": rid, "run": o.name, "path": o.path, "hostname": t.get("hostname"),
        "boot_id": o.boot_id, "kernel": t.get("kernel"), "k3s_version": t.get("k3s_version"),
        "profile": a.get("profile"), "scope": (a.get("scope") or {}).get("mode"),
        "start_ns": a.get("start_ns"), "end_ns": a.get("end_ns"), "total_ns": a.get("total_ns"),
        "end_reached": a.get("end_reached"), "lost_events": a.get("lost_events"),
        "trace_start_ns": t.get("start_ns"), "trace_end_ns": t.get("end_ns"),
        "analysis_version": a.get("analysis_version"),
    })
    for i, s in enumerate(a.get("critical_path") or []):
        out["segments"].append({"run_id": rid, "seq": i, **{k: s.get(k) for k in (
            "start_ns", "end_ns", "duration_ns", "kind", "label", "pid", "comm", "key")}})
    for i, w in enumerate(a.get("waits") or []):
        (wp, wc), (tp, tc) = _party(w.get("waiter")), _party(w.get("target"))
        out["waits"].append({
            "run_id": rid, "seq": i, "waiter_pid": wp, "waiter_comm": wc, "target_pid": tp,
            "target_comm": tc, **{k: w.get(k) for k in (
                "kind", "endpoint", "component", "start_ns", "end_ns", "duration_ns",
                "attempts", "interval_ns", "lag_ns", "in_window")}})
    for p in a.get("phases") or []:
        out["phases"].append({"run_id": rid, **{k: p.get(k) for k in (
            "name", "start_ns", "end_ns", "duration_ns")}})
    for p in a.get("processes") or []:
        out["processes"].append({"run_id": rid, **{k: p.get(k) for k in (
            "key", "pid", "parent_key", "comm", "exe", "argv", "start_ns", "end_ns",
            "exit_code", "component", "unit", "pod_uid", "in_scope")}})
    st = a.get("stacks") or {}
    hz = int(st.get("sample_hz") or 0)
    for c in st.get("by_component") or [] if hz else []:
        out["components"].append({
            "run_id": rid, "component": c.get("component"), "samples": c.get("samples"),
            "sample_hz": hz, "cpu_ns": round(int(c.get("samples") or 0) * 1_000_000_000 / hz),
            "pct": c.get("pct")})
    out["metrics"] = [{"run_id": rid, "name": k, "value_ns": v}
                      for k, v in run_metrics(o.result()).items()]
    return out


_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]")


def _part_value(v: str | None) -> str:
    """A partition value as a directory name (Hive style; unknown = __unknown__)."""
    if not v:
        return "__unknown__"
    return _UNSAFE.sub("_", v)[:100]


def info() -> dict[str, Any]:
    """_dataset.json: the version and every table's columns (name -> Arrow type)."""
    return {
        "dataset_version": DATASET_VERSION,
        "partitioning": {"style": "hive", "columns": list(PARTITIONS)},
        "tables": {n: {f.name: str(f.type) for f in s} for n, s in TABLES.items()},
    }


def check_dir(out: Path) -> None:
    """An existing DIR must be a dataset this version can append to."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: not a directory")
    if not out.exists() or not any(out.iterdir()):
        return
    p = out / INFO_FILE
    try:
        have = json.loads(p.read_text())
    except FileNotFoundError:
        raise UsageError(f"{out}: not empty and not a k3sprof dataset (no {INFO_FILE})") from None
    except (OSError, ValueError) as e:
        raise TracerError(f"{p}: unreadable ({e})") from None
    v = str(have.get("dataset_version", ""))
    if v != DATASET_VERSION:
        raise UsageError(f"{out}: dataset version {v} is not {DATASET_VERSION} (this k3sprof "
                         "writes and reads version " + DATASET_VERSION + ")")


def existing_run_ids(out: Path) -> set[str]:
    ids: set[str] = set()
    for f in (out / "runs").glob("**/*.parquet"):
        ids.update(pq.read_table(f, columns=["run_id"])["run_id"].to_pylist())
    return ids


def write(outcomes: Sequence[Outcome], out: Path, *, label: str) -> Written:
    """Append the analysed outcomes to the dataset at out (bad ones are listed, not written)."""
    if not label or "/" in label:
        raise UsageError(f"--label {label!r}: give a non-empty name without '/'")
    check_dir(out)
    done = Written(skipped=[o for o in outcomes if o.error])
    have = existing_run_ids(out) if out.exists() else set()
    groups: dict[tuple[str, str, str], dict[str, list[dict[str, Any]]]] = {}
    for o in outcomes:
        if o.error:
            continue
        rid = run_id(o, label)
        if rid in have:
            done.already.append(o.path)
            continue
        have.add(rid)
        host = (o.analysis or {}).get("trace", {}).get("hostname")
        key = (_part_value(label), _part_value(host), _part_value(o.boot_id))
        g = groups.setdefault(key, {n: [] for n in TABLES})
        for name, rs in rows(o, rid).items():
            g[name].extend(rs)
        done.added.append(o.path)
    if not groups:
        return done
    batch = uuid.uuid4().hex[:12]
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".tmp-{batch}"
    moves: list[tuple[Path, Path]] = []
    try:
        for (lab, node, boot), tables in sorted(groups.items()):
            part = Path(f"label={lab}") / f"node={node}" / f"boot={boot}"
            # runs last: a batch is visible (through runs) only once every table is in place
            for name in [*(n for n in TABLES if n != "runs"), "runs"]:
                rel = Path(name) / part / f"part-{batch}.parquet"
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                table = pa.Table.from_pylist(tables[name], schema=TABLES[name])
                table = table.replace_schema_metadata(
                    {"k3sprof.dataset_version": DATASET_VERSION, "k3sprof.table": name})
                pq.write_table(table, tmp / rel)
                moves.append((tmp / rel, out / rel))
        info_tmp = tmp / INFO_FILE
        info_tmp.write_text(json.dumps(info(), indent=1, sort_keys=True) + "\n")
        if not (out / INFO_FILE).exists():
            os.replace(info_tmp, out / INFO_FILE)
        # every other table of every partition first, the runs files last
        for src, dst in sorted(moves, key=lambda m: m[1].relative_to(out).parts[0] == "runs"):
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
            done.files += 1
    except OSError as e:
        raise TracerError(f"{out}: cannot write the dataset ({e.strerror or e})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return done
