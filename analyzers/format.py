"""How the CLI prints analyzer rows as text. ``--json`` prints the rows themselves."""

from __future__ import annotations

from typing import Any


def format_calls(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no calls recorded yet"
    lines = []
    for r in rows:
        tokens = f"in={r.get('input_tokens')} out={r.get('output_tokens')}"
        lines.append(
            f"{r['ts'][:23]}  {r['upstream']}/{r['model'] or '?'}  {r['status']} {r['outcome']}"
            f"  finish={r.get('finish_reason')}  {tokens}  {r['latency_ms']:.0f}ms"
            + (f"  session={r['session_id']}" if r.get("session_id") else "")
            + (f"  [{r['parse_status']}]" if r.get("parse_status") not in ("ok", "not_parsed") else "")
        )
        for index, call_id, name, raw, valid in r.get("tool_calls") or []:
            args = raw if len(raw) <= 120 else raw[:117] + "..."
            lines.append(
                f"    -> #{index} {name}({args}) id={call_id}" + ("" if valid else "  [arguments not a JSON object]")
            )
    return "\n".join(lines)


REPORT_COLUMNS = (
    ("model", "model", "{}"),
    ("calls", "llm_calls", "{}"),
    ("tool calls", "tool_calls", "{}"),
    ("malformed", "malformed_rate", "{:.1%}"),
    ("tool err", "tool_error_rate", "{:.1%}"),
    ("sessions", "sessions", "{}"),
    ("success", "session_success_rate", "{:.1%}"),
    ("recovery", "recovery_rate", "{:.1%}"),
    ("cascade", "cascade_rate", "{:.1%}"),
    ("loops", "loop_sessions", "{}"),
    ("http err", "http_error_rate", "{:.1%}"),
    ("p50 ms", "latency_p50_ms", "{:.0f}"),
    ("p95 ms", "latency_p95_ms", "{:.0f}"),
)


def format_report(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no calls in this window"
    table = [[h for h, _, _ in REPORT_COLUMNS]]
    for r in rows:
        table.append(["-" if r.get(k) is None else f.format(r[k]) for _, k, f in REPORT_COLUMNS])
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in table)


def format_sessions(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no sessions in this window"
    lines = []
    for r in rows:
        flags = ", ".join(f for f, on in (("cascade", r["cascade"]), ("loop", r["loop"])) if on)
        lines.append(
            f"{r['session']}  {r['model']}  {r['outcome']}  steps={r['steps']}  failed={r['failed_steps']}"
            f"  unrecovered={r['unrecovered_steps']}  last={r['last_ts'][:19]}" + (f"  [{flags}]" if flags else "")
        )
    return "\n".join(lines)


def format_session(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no such session in this window"
    lines = []
    first_failure = next((i for i, r in enumerate(rows) if r["failed"]), None)
    for i, r in enumerate(rows):
        mark = ""
        if r["failed"]:
            mark = "  <- FIRST FAILURE" if i == first_failure else "  <- failed"
            mark += " (recovered later)" if r["recovered"] else " (never recovered)"
        kind = "final answer" if r["final_answer"] else f"finish={r['finish_reason']}"
        lines.append(f"step {i + 1}  {r['ts'][11:23]}  {r['model']}  {r['status']} {r['outcome']}  {kind}{mark}")
        for tc in r.get("tool_calls") or []:
            raw = tc["raw_arguments"]
            args = raw if len(raw) <= 100 else raw[:97] + "..."
            bad = f" MALFORMED:{tc['malformed_kind']}" if tc["malformed_kind"] else ""
            why = f" ({tc['error_rule']})" if tc["error_rule"] else ""
            lines.append(f"    -> {tc['name']}({args}) id={tc['tool_call_id']}{bad} => {tc['outcome']}{why}")
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def format_alerts(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no alerts"
    lines = []
    for a in rows:
        models = f"{a['old_model']} -> {a['new_model']}" if a["old_model"] != a["new_model"] else a["new_model"]
        flags = "".join(
            f"  [{t}]" for t, on in (("acknowledged", a["acknowledged_at"]), ("silenced", a["silenced_until"])) if on
        )
        lines.append(
            f"{a['id']}  {a['state']:<8}  {a['kind']:<17}  {a['agent']}  {models}  {a['metric']} "
            f"{_pct(a['before'])} -> {_pct(a['after'])}  (n {a['n_before']}/{a['n_after']})  "
            f"opened {a['opened_at'][:19]}Z{flags}"
        )
        lines.append(f"    {a['detail']}")
        if a["examples"]:
            lines.append(f"    e.g. {a['examples'][0]}")
    return "\n".join(lines)


def format_silences(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no active silences"
    return "\n".join(
        f"{s['id']}  until {s['until'][:19]}Z  "
        + (f"alert {s['alert_id']}" if s["alert_id"] else f"agent {s['agent']} {s['kind'] or 'every kind'}")
        + (f"  by {s['created_by']}" if s["created_by"] else "")
        + (f"  ({s['comment']})" if s["comment"] else "")
        for s in rows
    )


def format_check(found: dict[str, Any]) -> str:
    who = f"agent {found['agent']}" if found["agent"] else "any agent"
    if not found["open"]:
        return f"ok: no regression alert open for {who} (opened since {found['since'][:19]}Z)"
    return f"REGRESSION: {found['open']} alert(s) open for {who}\n" + format_alerts(found["alerts"])


def format_compare(found: dict[str, Any]) -> str:
    b, a = found["before"], found["after"]
    n = found["sessions"]
    lines = [
        f"agent {found['agent']}: {b} ({n[b]} sessions) vs {a} ({n[a]} sessions), "
        f"{found['since'][:19]}Z to {found['until'][:19]}Z",
        f"{'metric':<26}{b[:20]:>22}{a[:20]:>22}{'difference (95%)':>26}{'p worse':>10}",
    ]
    for m in found["metrics"]:
        diff = m["difference_interval"]
        spread = "-" if diff is None else f"[{diff[0]:+.1%}, {diff[1]:+.1%}]"
        p = "-" if m["p_after_worse"] is None else f"{m['p_after_worse']:.2g}"
        before = f"{_pct(m['before'])} ({m['n_before']})"
        after = f"{_pct(m['after'])} ({m['n_after']})"
        lines.append(f"{m['metric']:<26}{before:>22}{after:>22}{spread:>26}{p:>10}")
    for model in (b, a):
        lat = found["latency"].get(model)
        if lat:
            lines.append(
                f"latency {model}: p50 {lat['latency_p50_ms']:.0f} ms, p95 {lat['latency_p95_ms']:.0f} ms over "
                f"{lat['llm_calls']} calls"
            )
    return "\n".join(lines)
