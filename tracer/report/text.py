"""Readable text of an analysis result (what `k3sprof analyze` prints without --json)."""

from __future__ import annotations

from typing import Any

from tracer.analyzer import schedpath, summary
from tracer.analyzer.model import (
    Analysis,
    BlockersJson,
    ModuleLoaderJson,
    Party,
    SegmentJson,
    StacksJson,
    WokenByJson,
)

TOP_WAITS = 10
TOP_GROUPS = 20
TOP_SUMMARY = 6


def _ms(ns: int | None, base: int | None = None) -> str:
    if ns is None:
        return "-"
    v = (ns - base) if base is not None else ns
    return f"{v / 1e6:,.1f} ms"


def _at(ns: int | None, base: int) -> str:
    return "-" if ns is None else f"+{(ns - base) / 1e6:,.1f}"


def _who(p: Party | None) -> str:
    return "?" if not p else f"{p['comm']}[{p['pid']}]"


#: a run/wait segment's state breakdown is printed when it is at least this share of the path
STATES_MIN_PCT = 1.0
_STATE_WORDS = {"cpu": "on-CPU", "steal": "on a CPU the host did not run (steal)",
                "runqueue": "waiting for a CPU", "io": "in disk I/O"}


def _shares(states: dict[str, int], total: int, *, always: bool = False) -> str:
    """"cpu 41.0%, runqueue 12.0%, ..." (states under 0.05 % left out unless always)."""
    tot = total or 1
    return ", ".join(
        f"{k} {100 * v / tot:.1f}%"
        for k, v in states.items()
        if always or 100 * v / tot >= 0.05
    )


def _states_lines(s: SegmentJson) -> list[str]:
    """The state breakdown under a significant segment, and issue 17's one-liner for a poll:
    what the target was doing while it answered not-ready."""
    st = s.get("states")
    if not st or (s["pct"] or 0.0) < STATES_MIN_PCT:
        return []
    dur = s["duration_ns"] or 1
    of = s.get("states_of")
    whose = "" if s["kind"] == "run" else f"{_who(of)}: "
    out = [f"  {'':>10} {'':>12} {'':>6}  {'':<14} {'':<22} {whose}{_shares(st, dur)}"]
    if s["kind"] != "wait:poll":
        return out
    name = (of["comm"] if of else None) or "the target"
    busy = {k: st.get(k, 0) for k in ("cpu", "steal", "runqueue", "io")}
    if sum(busy.values()) >= dur / 2:
        parts = [f"{_STATE_WORDS[k]} {100 * v / dur:.0f} %" for k, v in busy.items()
                 if v >= dur / 20]
        out.append(f"  {'':>10}   note: {name} was {' and '.join(parts)} while answering "
                   "not-ready")
    elif st["sleep"] + st["io"] >= dur / 2:
        out.append(f"  {'':>10}   note: {name} was asleep {100 * st['sleep'] / dur:.0f} % "
                   f"while answering not-ready; {_woken(s.get('woken_by') or [])}")
    return out


#: a component is named on a segment when it has at least this share of the segment's on-CPU
COMPONENT_MIN_SHARE = 0.05


def _component_lines(s: SegmentJson, waits: list[Any]) -> list[str]:
    """With stacks: which parts of the process the segment was ("kubelet polled
    kube-apiserver 127.0.0.1:6443 every 100 ms; kube-apiserver was on-CPU 92 % ...")."""
    if (s["pct"] or 0.0) < STATES_MIN_PCT:
        return []
    pad = f"  {'':>10} {'':>12} {'':>6}  {'':<14} {'':<22} "
    out = []
    w = waits[s["wait"]] if s["wait"] is not None and s["wait"] < len(waits) else None
    if w is not None and w.get("waiter_component") is not None:
        verb = {"poll": "polled", "listener": "waited for"}.get(w["kind"])
        if verb is not None:
            every = f" every {_ms(w['interval_ns'])}" if w["kind"] == "poll" else ""
            out.append(f"{pad}{w['waiter_component']} {verb} "
                       f"{w.get('target_component') or _who(w['target'])} "
                       f"{w['endpoint'] or '?'}{every}")
    comps = s.get("components")
    if comps:
        dur = s["duration_ns"] or 1
        named = [(k, v) for k, v in comps.items() if v >= COMPONENT_MIN_SHARE * sum(comps.values())]
        whose = _who(s.get("components_of"))
        est = "" if s.get("components_from") == "sched" else " (from samples)"
        hot = s.get("components_hot") or {}
        out.append(f"{pad}{whose} on-CPU{est}: " + ", ".join(
            f"{k} {100 * v / dur:.0f} %" + (f" (mostly in {hot[k]})" if k in hot else "")
            for k, v in named))
    return out


def _stacks_lines(st: StacksJson | None) -> list[str]:
    """With stacks: on-CPU samples by component over the window, and what makes names or
    components partial (one-frame stacks, missing symbols), plainly."""
    if st is None:
        return []
    rows = st["by_component"]
    lines = [f"On-CPU by component ({st['cpu_samples']} samples at "
             f"{st['sample_hz']} Hz in the analysis window; `k3sprof stacks` prints them)"]
    if rows:
        lines.append("  " + ", ".join(f"{r['component']} {r['pct']:.1f}%"
                                      for r in rows[:TOP_SUMMARY * 2]))
    for p in st["problems"]:
        lines.append(f"  note: {p}")
    lines.append("")
    return lines


def _woken(wakers: list[WokenByJson]) -> str:
    """"woken by a timer (1x, longest idle 280.0 ms), client[12] (6x, longest idle 50.1 ms)":
    what woke its threads, the one that ended the longest sleep first."""
    if not wakers:
        return "no wakeup of its threads (after >= 1 ms idle) inside the wait"
    by: dict[str, list[int]] = {}
    for w in wakers:
        if w["kind"] == "process":
            who = f"{'its own thread ' if w['same_process'] else ''}{w['comm']}[{w['pid']}]"
        elif w["kind"] == "unknown":
            who = "an unknown waker"
        else:
            who = {"timer": "a timer"}.get(w["kind"], f"the {w['kind']}")
        got = by.setdefault(who, [0, 0])
        got[0] += 1
        got[1] = max(got[1], int(w["idle_ns"]))
    ranked = sorted(by.items(), key=lambda kv: -kv[1][1])  # the longest sleep it ended first
    return "woken by " + ", ".join(
        f"{k} ({n}x, longest idle {_ms(ns)})" for k, (n, ns) in ranked
    )


def _module_lines(loaders: list[ModuleLoaderJson]) -> list[str]:
    """Module loads per loader: "modprobe br_netfilter [pid 42]: llc 1.1 ms, stp 0.9 ms, ..."."""
    if not loaders:
        return []
    n = sum(len(e["loads"]) for e in loaders)
    lines = [f"Module loads ({n} load calls by {len(loaders)} processes)"]
    for e in loaders:
        parts = [
            f"{x['module']} {_ms(x['duration_ns'])}" if x["module"]
            else f"(not loaded: ret {x['ret']}) {_ms(x['duration_ns'])}"
            for x in e["loads"]
        ]
        lines.append(
            f"  {e['command'][:60]} [pid {e['pid']}]: " + ", ".join(parts)
            + f"  (total {_ms(e['total_ns'])})"
        )
    lines.append("")
    return lines


#: rows of each Top blockers list in the text (the JSON has up to blockers.TOP)
TOP_BLOCKERS = 8


def _blocker_lines(b: BlockersJson | None) -> list[str]:
    """Top blockers (record --sched): fsync-family time per process, wakeup edges."""
    if b is None:
        return []
    fs, wk = b["fsync"], b["wakeups"]
    lines = ["Top blockers (inside the analysis window; scheduler data)"]
    if not fs and not wk:
        lines += ["  no fsync calls and no wakeup by another process after >= 1 ms idle", ""]
        return lines
    for r in fs[:TOP_BLOCKERS]:
        calls = ", ".join(f"{n} {k}" for k, n in sorted(r["by_kind"].items()))
        comps = r.get("components")
        by = (" (" + ", ".join(f"{k} {_ms(v)}" for k, v in comps.items()) + ")") if comps else ""
        lines.append(f"  fsync   {r['comm'] or '?'}[{r['pid']}]: {calls}, "
                     f"{_ms(r['total_ns'])} in total, longest {_ms(r['max_ns'])}{by}")
    more = len(fs) - TOP_BLOCKERS + b["fsync_left_out"]
    if more > 0:
        lines.append(f"  fsync   ... {more} more processes (see --json)")
    for e in wk[:TOP_BLOCKERS]:
        path = f"; on the critical path {_ms(e['path_ns'])}" if e["path_ns"] else ""
        lines.append(
            f"  wakeup  {e['waker_comm'] or '?'}[{e['waker_pid']}] -> "
            f"{e['woken_comm'] or '?'}[{e['woken_pid']}]: {e['count']}x, ended "
            f"{_ms(e['idle_ns'])} idle, longest {_ms(e['max_idle_ns'])}{path}")
    more = len(wk) - TOP_BLOCKERS + b["wakeups_left_out"]
    if more > 0:
        lines.append(f"  wakeup  ... {more} more edges (see --json)")
    lines.append("")
    return lines


def render(a: Analysis, *, all_waits: bool = False, all_segments: bool = False) -> str:
    """`k3sprof analyze` text. Top waits ranks the waits inside the analysis window; all_waits
    lists the others after them (never above). Consecutive runs of one helper on the critical
    path are one line unless all_segments."""
    base = a.start_ns
    lines: list[str] = []
    t = a.trace
    lines.append(
        f"trace   {t['path']}  host {t['hostname'] or '?'}  kernel {t['kernel'] or '?'}"
        + (f"  k3s {t['k3s_version']}" if t["k3s_version"] else "")
    )
    lines.append(f"profile {a.profile}   start: {a.start_by}   end: {a.end_by or '-'}")
    sc = a.scope
    if sc["mode"] == "tree":
        lines.append(
            f"scope   the recorded command's process tree ({_who(sc['root'])}, "
            f"{sc['processes']} processes); {sc['left_out']} other processes in the "
            "trace left out (--scope all includes them)"
        )
    if a.lost_events:
        lines.append(
            f"WARNING: {a.lost_events} events were lost while recording: waits and the "
            "critical path may be incomplete (record with a bigger buffer)"
        )
    if t["truncated_tables"]:
        lines.append(
            f"WARNING: truncated tables (recorder killed?): {', '.join(t['truncated_tables'])}"
        )
    for name, why in sorted(t["missing_tables"].items()):
        lines.append(f"WARNING: table {name}: {why}")
    if t["probes_unavailable"]:
        names = map(str, t["probes_unavailable"] or {})
        lines.append(f"note: probes unavailable: {', '.join(names)}")
    lines.append("")
    if not a.start_reached:
        lines.append(
            f"START NOT REACHED: {a.start_by} never happened in this trace; no critical path."
        )
    elif not a.end_reached:
        lines.append(
            f"END NOT REACHED: {a.end_by} never happened after the start; "
            "no critical path (nothing is made up)."
        )
    else:
        lines.append(
            f"Critical path: {_ms(a.total_ns)} from start to end (times are ms after the start)"
        )
        lines.append(f"  {'at':>10} {'duration':>12} {'%':>6}  {'kind':<14} {'process':<22} what")
        total_ns = a.total_ns or 1
        rows = (
            list(a.critical_path)
            if all_segments
            else summary.collapse(a.critical_path, a.processes)
        )
        for s in rows:
            if isinstance(s, summary.Collapsed):
                between = (
                    f"; {s.waiter} between them: {_ms(s.between_ns)}"
                    if s.between
                    else ""
                )
                lines.append(
                    f"  {_at(a.critical_path[s.first]['start_ns'], base):>10} "
                    f"{_ms(s.duration_ns):>12} {100 * s.duration_ns / total_ns:>5.1f}%  "
                    f"{s.kind:<14} {s.executable + ' x' + str(s.count):<22} "
                    f"{s.count} runs of {s.executable}, {_ms(s.helper_ns)}{between} "
                    "(--all-segments lists them)"
                )
                continue
            lines.append(
                f"  {_at(s['start_ns'], base):>10} {_ms(s['duration_ns']):>12} "
                f"{s['pct']:>5.1f}%  {s['kind']:<14} "
                f"{(s['comm'] or '-') + ('[' + str(s['pid']) + ']' if s['pid'] else ''):<22} "
                f"{s['label']}"
            )
            lines.extend(_states_lines(s))
            lines.extend(_component_lines(s, a.waits))
        by_kind: dict[str, int] = {}
        for s in a.critical_path:
            by_kind[s["kind"]] = by_kind.get(s["kind"], 0) + s["duration_ns"]
        total = a.total_ns or 1
        lines.append(
            "  composition: "
            + ", ".join(
                f"{k} {100 * v / total:.1f}%"
                for k, v in sorted(by_kind.items(), key=lambda x: -x[1])
            )
        )
        comp = schedpath.composition(a.critical_path)
        if comp is not None:
            covered = sum(comp.values())
            lines.append(
                "  path: " + _shares(comp, covered, always=True)
                + (
                    f" (over the {100 * covered / total:.1f}% of the path with scheduler "
                    "states: run, wakeup and helper segments and the targets of poll/listener "
                    "waits)"
                    if covered < total
                    else ""
                )
            )
        ps = a.path_summary
        by_what = [] if ps is None else [("executable", ps["by_executable"]),
                                         ("component", ps["by_component"])]
        for what, rows_of in by_what:
            if rows_of:
                lines.append(
                    f"  by {what}: "
                    + ", ".join(
                        f"{r['name']} x{r['processes']} {_ms(r['total_ns'])} {r['pct']:.1f}%"
                        if r["processes"] > 1
                        else f"{r['name']} {_ms(r['total_ns'])} {r['pct']:.1f}%"
                        for r in rows_of[:TOP_SUMMARY]
                    )
                    + (
                        f", ... {len(rows_of) - TOP_SUMMARY} more"
                        if len(rows_of) > TOP_SUMMARY
                        else ""
                    )
                )
    lines.append("")
    lines += _module_lines(a.module_loads or [])
    lines += _blocker_lines(a.blockers)
    lines += _stacks_lines(a.stacks)
    inside = [w for w in a.waits if w["in_window"]]
    net = [w for w in inside if w["kind"] in ("listener", "poll")]
    net.sort(key=lambda w: -(w["duration_ns"] or 0))
    outside = [w for w in a.waits if not w["in_window"]]
    outside_net = [w for w in outside if w["kind"] in ("listener", "poll")]
    outside_net.sort(key=lambda w: -(w["duration_ns"] or 0))
    lines.append(
        f"Top waits ({len(net)} listener/poll waits, "
        f"{sum(1 for w in inside if w['kind'] == 'child')} child waits"
        + (
            f"; {len(outside)} more outside the analysis window: "
            + ("listed last" if all_waits else "--all-waits lists them")
            if outside
            else ""
        )
        + ")"
    )
    shown = net[:TOP_WAITS] + (outside_net if all_waits else [])
    if shown:
        lines.append(
            f"  {'kind':<9} {'waiter':<20} {'endpoint':<28} {'attempts':>8} "
            f"{'every':>10} {'waited':>12} {'lag':>10}  target"
        )
    for w in shown:
        waited = _ms(w["duration_ns"]) if w["duration_ns"] is not None else "never ok"
        extra = ""
        if w["kind"] == "poll":
            extra = f"  conf {w['confidence'] or 0:.2f}" + (
                "" if w["ended_ns"] is not None else "  (still polling at trace end)"
            )
        if not w["in_window"]:
            extra += "  (outside the analysis window)"
        if w.get("waiter_component") or w.get("target_component"):
            extra += (f"  ({w.get('waiter_component') or '?'} -> "
                      f"{w.get('target_component') or '?'})")
        lines.append(
            f"  {w['kind']:<9} {_who(w['waiter']):<20} {w['endpoint'] or '-':<28} "
            f"{w['attempts'] or '-':>8} {_ms(w['interval_ns']):>10} {waited:>12} "
            f"{_ms(w['lag_ns']):>10}  {_who(w['target']) if w['target'] else '-'}{extra}"
        )
    lines.append("")
    if a.phases:
        lines.append("Phases")
        for p in a.phases:
            if p["duration_ns"] is None:
                lines.append(f"  {p['name']:<62} absent: {p['missing']}")
            else:
                lines.append(f"  {p['name']:<62} {_ms(p['duration_ns']):>12}")
        lines.append("")
    if a.milestones:
        lines.append("Milestones")
        for m in a.milestones[:40]:
            who = f"{m['comm']}[{m['pid']}]" if m["pid"] else ""
            lines.append(f"  {_at(m['ts_ns'], base):>10}  {m['name']:<44} {who}")
        if len(a.milestones) > 40:
            lines.append(f"  ... {len(a.milestones) - 40} more (see --json)")
    groups = a.groups
    if groups and any(g["kind"] != "none" for g in groups):
        lines.append("")
        lines.append("By unit / pod")
        lines.append(
            f"  {'unit / pod':<44} {'procs':>6} {'execs':>6} {'connects':>8} "
            f"{'first':>10} {'last':>10}"
        )
        for g in groups[:TOP_GROUPS]:
            name = ("pod " if g["kind"] == "pod" else "") + g["name"]
            lines.append(
                f"  {name[:44]:<44} {g['processes']:>6} {g['execs']:>6} {g['connects']:>8} "
                f"{_at(g['first_ns'], base):>10} {_at(g['last_ns'], base):>10}"
            )
        if len(groups) > TOP_GROUPS:
            lines.append(f"  ... {len(groups) - TOP_GROUPS} more (see --json)")
    c = a.counts
    lines.append("")
    lines.append(
        f"{c['processes']} processes, {c['execs']} execs, {c['connects']} connects "
        f"({c['connects_failed']} failed), {c['listens']} listens, {c['events']} events"
    )
    return "\n".join(lines) + "\n"


def not_reached(a: Analysis) -> str | None:
    """"start milestone not reached (SPEC)" / "end ..." when there is no critical path."""
    if a.start_reached and a.end_reached:
        return None
    what = "start" if not a.start_reached else "end"
    spec = a.start_by if what == "start" else a.end_by
    return f"{what} milestone not reached ({spec})"
