"""How the CLI prints the analyzers' answers: ``as_json`` for ``--json``, and ``rich`` renderables for people,
which ``render`` turns into text (coloured on a terminal, plain otherwise: no escape codes in a pipe).

Times are shown in UTC with their zone (``2026-11-25 10:00:00Z``); a missing value is ``-``, never ``None``.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

# string fields kept as they are in --json even when empty: what a model or a tool sent, verbatim
VERBATIM = frozenset({"raw_arguments", "result_head", "content", "properties"})


def as_json(value: Any) -> str:
    """``--json`` output: missing values are null, never ""."""
    return json.dumps(_nulls(value), indent=2, ensure_ascii=False)


def _nulls(value: Any) -> Any:
    if value == "":
        return None
    if isinstance(value, dict):
        return {k: v if k in VERBATIM else _nulls(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nulls(v) for v in value]
    return value


def render(doc: RenderableType, color: bool, width: int | None = None) -> str:
    """``doc`` as text: with colour for a terminal ``width`` wide, else plain and never wrapped."""
    out = io.StringIO()
    console = Console(
        file=out, force_terminal=color, no_color=not color, color_system="auto" if color else None,
        width=width if color and width else 100_000, highlight=False, emoji=False, markup=False,
    )  # fmt: skip
    tables = [r for r in (doc.renderables if isinstance(doc, Group) else [doc]) if isinstance(r, Table)]
    wide = console.options.update_width(100_000)
    widest = max((Measurement.get(console, wide, t).maximum for t in tables), default=0)
    console.width = max(console.width, widest)  # a narrow terminal wraps lines; rich would drop columns
    console.print(doc, soft_wrap=not isinstance(doc, Group | Table))
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines())


def when(iso: str | None, precision: str = "seconds") -> str:
    """An ISO-8601 time from the store as people read it, in UTC with its zone: 2026-11-25 10:00:00Z."""
    if not iso:
        return "-"
    value = dt.datetime.fromisoformat(iso)
    value = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
    return value.replace(tzinfo=None).isoformat(sep=" ", timespec=precision) + "Z"


def span(since: dt.datetime, until: dt.datetime) -> str:
    """A window as ``2026-11-24 10:00Z to 2026-11-25 10:00Z (24h)``, its length as the command line writes it."""
    seconds = int((until - since).total_seconds())
    units = [(86400, "d"), (3600, "h"), (60, "m")]
    size, unit = next(
        ((n, u) for n, u in units if seconds % n == 0 and seconds >= n * (2 if u == "d" else 1)), (1, "s")
    )
    return f"{when(since.isoformat(), 'minutes')} to {when(until.isoformat(), 'minutes')} ({seconds // size}{unit})"


def _dash(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


OUTCOME_STYLE = {"success": "green", "ok": "green", "failed": "red", "error": "red", "abandoned": "yellow"}


# -- calls ---------------------------------------------------------------------------------------------------


def format_calls(rows: list[dict[str, Any]]) -> Text:
    if not rows:
        return Text("no calls recorded yet")
    out = Text()
    for r in rows:
        if out:
            out.append("\n")
        out.append(f"{when(r['ts'], 'milliseconds')}  ")
        out.append(f"{r['upstream']}/{r['model'] or '?'}", style="bold")
        out.append(f"  {r['status']} ")
        out.append(r["outcome"], style=OUTCOME_STYLE.get(r["outcome"], "red"))
        if r.get("finish_reason"):
            out.append(f"  finish={r['finish_reason']}")
        out.append(f"  in={_dash(r.get('input_tokens'))} out={_dash(r.get('output_tokens'))}")
        out.append(f"  {r['latency_ms']:.0f}ms")
        if r.get("session_id"):
            out.append(f"  session={r['session_id']}")
        if r.get("parse_status") not in ("ok", "not_parsed", None):
            out.append(f"  [{r['parse_status']}]", style="yellow")
        if r.get("error"):
            error = r["error"] if len(r["error"]) <= 100 else r["error"][:97] + "..."
            out.append(f"  error: {error}", style="red")
        for tc in r.get("tool_calls") or []:
            raw = tc["raw_arguments"]
            args = raw if len(raw) <= 120 else raw[:117] + "..."
            out.append(f"\n    -> #{tc['call_index']} {tc['name']}({args}) id={tc['tool_call_id']}")
            if tc["arguments"] is None:
                out.append("  [arguments not a JSON object]", style="red")
            if tc["malformed_kind"]:
                out.append(f"  malformed: {tc['malformed_kind']}", style="red")
            out.append(f"  => {tc['outcome']}", style=OUTCOME_STYLE.get(tc["outcome"], "yellow"))
            if tc["error_rule"]:
                out.append(f" ({tc['error_rule']})")
    return out


# -- report --------------------------------------------------------------------------------------------------

# header, field, format, what it means (the legend); rates are in [0, 1], "higher is worse" unless noted
REPORT_COLUMNS = (
    ("model", "model", "{}", "the model that answered (else the one requested)"),
    ("calls", "llm_calls", "{}", "LLM calls, every attempt"),
    ("tool calls", "tool_calls", "{}", "tool calls the model made"),
    ("malformed", "malformed_rate", "{:.1%}", "share of tool calls that were malformed (kinds below)"),
    ("tool err", "tool_error_rate", "{:.1%}", "share of tool results that were errors"),
    ("retries", "retries", "{}", "attempts re-sent after an upstream failure (not counted as steps)"),
    ("sessions", "closed_sessions", "{}", "sessions that ended (success, failed or abandoned)"),
    ("open", "open_sessions", "{}", "sessions still waiting for a tool result: in no rate until they end"),
    ("success", "session_success_rate", "{:.1%}", "share of ended sessions that succeeded (higher is better)"),
    ("recovery", "recovery_rate", "{:.1%}", "share of failed steps recovered later (higher is better)"),
    ("cascade", "cascade_rate", "{:.1%}", "share of ended sessions with a run of failed steps"),
    ("loops", "loop_sessions", "{}", "sessions that repeated one tool call 3 or more times"),
    ("http err", "http_error_rate", "{:.1%}", "share of calls answered >= 400 or not at all"),
    ("p50 ms", "latency_p50_ms", "{:.0f}", "median latency"),
    ("p95 ms", "latency_p95_ms", "{:.0f}", "95th percentile latency"),
)

# the figures "least reliable" compares: field, how it reads, higher is worse, the count behind it, the least
# of that count for a model to take part
GAPS = (
    ("malformed_rate", "malformed rate", True, "tool_calls", 5),
    ("tool_error_rate", "tool error rate", True, "tool_calls", 5),
    ("session_success_rate", "session success", False, "closed_sessions", 3),
    ("cascade_rate", "cascade rate", True, "closed_sessions", 3),
    ("http_error_rate", "HTTP error rate", True, "llm_calls", 5),
)
COUNT_NAMES = {"tool_calls": "tool calls", "closed_sessions": "sessions", "llm_calls": "calls"}


def _closed(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "closed_sessions": (row.get("sessions") or 0) - (row.get("open_sessions") or 0)}


def _ranked(rows: list[dict[str, Any]], gap: tuple[str, str, bool, str, int]) -> tuple[dict[str, Any], ...]:
    """(best, worst) on one of the GAPS among the models with enough data behind it; () for fewer than two."""
    field, _, higher_worse, count, least = gap
    known = sorted(
        (r for r in rows if r.get(field) is not None and (r.get(count) or 0) >= least),
        key=lambda r: r[field] if higher_worse else -r[field],
    )
    return (known[0], known[-1]) if len(known) >= 2 else ()


def least_reliable(rows: list[dict[str, Any]]) -> str | None:
    """The model furthest behind the best one on any single figure, and that figure; None with fewer than
    two models with enough data, or when none is behind."""
    worst: tuple[float, str] | None = None
    for gap in GAPS:
        field, label, higher_worse, count, _ = gap
        ranked = _ranked([_closed(r) for r in rows], gap)
        if not ranked:
            continue
        best, bad = ranked
        behind = abs(bad[field] - best[field])
        if behind > 0 and (worst is None or behind > worst[0]):
            worst = (
                behind,
                f"least reliable: {bad['model'] or '?'} — {label} {pct(bad[field])} vs {pct(best[field])} for"
                f" {best['model'] or '?'} ({bad[count]} and {best[count]} {COUNT_NAMES[count]})",
            )
    return worst[1] if worst else None


# when the whole table is wider than the terminal: the call figures, then the session figures
CALL_FIELDS = (
    "model", "llm_calls", "tool_calls", "malformed_rate", "tool_error_rate", "retries", "http_error_rate",
    "latency_p50_ms", "latency_p95_ms",
)  # fmt: skip
SESSION_FIELDS = (
    "model", "closed_sessions", "open_sessions", "session_success_rate", "recovery_rate", "cascade_rate",
    "loop_sessions",
)  # fmt: skip


def format_report(
    rows: list[dict[str, Any]], window: str = "", filters: str = "", width: int | None = None
) -> RenderableType:
    """``width``: the terminal's; a table wider than that is split in two (rich would drop columns)."""
    title = Text(f"toolwatch report  {window}".rstrip() + (f"  {filters}" if filters else ""), style="bold")
    if not rows:
        return Group(title, Text("no calls in this window (a longer one: --since 7d)"))
    rows = [_closed(r) for r in rows]
    cells = _cells(rows)
    every = [field for _, field, _, _ in REPORT_COLUMNS]
    tables: list[RenderableType] = [_table(cells, every)]
    if width is not None and _width(cells, every) > width:
        tables = [_table(cells, list(CALL_FIELDS)), Text(""), _table(cells, list(SESSION_FIELDS))]
    parts: list[RenderableType] = [title, Text(""), *tables]
    kinds = [
        (r["model"], ", ".join(f"{k} {n}" for k, n in sorted(r["malformed_by_kind"].items(), key=lambda kv: -kv[1])))
        for r in rows
        if r.get("malformed_by_kind")
    ]
    if kinds:
        pad = max(len(m or "?") for m, _ in kinds)
        parts += [Text(""), Text("malformed tool calls by kind", style="bold")]
        parts += [Text(f"  {(m or '?').ljust(pad)}  {k}") for m, k in kinds]
    still_open = [f"{r['model'] or '?'} {r['open_sessions']}" for r in rows if r.get("open_sessions")]
    if still_open:
        parts += [Text(""), Text("open sessions, in no rate until they end: " + ", ".join(still_open), style="cyan")]
    verdict = least_reliable(rows)
    if verdict:
        parts += [Text(""), Text(verdict, style="bold yellow")]
    legend = Text("\n".join(f"  {h:<11} {meaning}" for h, _, _, meaning in REPORT_COLUMNS[1:]), style="dim")
    parts += [Text(""), Text("columns", style="dim bold"), legend]
    return Group(*parts)


def _cells(rows: list[dict[str, Any]]) -> dict[str, list[Text]]:
    """Each column's cells, the worst value of a compared figure in red."""
    marks = _extremes(rows)
    out: dict[str, list[Text]] = {}
    for _, field, fmt, _ in REPORT_COLUMNS:
        values = [r.get(field) for r in rows]
        texts = ["-" if v is None or v == "" else fmt.format(v) for v in values]
        out[field] = [Text(t, style=marks.get((r["model"], field), "")) for t, r in zip(texts, rows, strict=True)]
    return out


HEADERS = {field: header for header, field, _, _ in REPORT_COLUMNS}


def _width(cells: dict[str, list[Text]], fields: list[str]) -> int:
    return sum(max(len(HEADERS[f]), *(len(t) for t in cells[f])) for f in fields) + 2 * (len(fields) - 1)


def _table(cells: dict[str, list[Text]], fields: list[str]) -> Table:
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold", padding=(0, 1, 0, 1))
    for field in fields:
        table.add_column(HEADERS[field], justify="left" if field == "model" else "right", no_wrap=True)
    for i in range(len(cells["model"])):
        table.add_row(*(cells[f][i] for f in fields))
    return table


def _extremes(rows: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """The worst value of each compared figure in red (every model at it), when the models differ."""
    ranked = {gap[0]: _ranked(rows, gap) for gap in GAPS}
    return {
        (r["model"], field): "red"
        for field, pair in ranked.items()
        if pair and pair[0][field] != pair[1][field]
        for r in rows
        if r.get(field) == pair[1][field]
    }


# -- sessions ------------------------------------------------------------------------------------------------


def format_sessions(rows: list[dict[str, Any]], window: str = "") -> Text:
    if not rows:
        return Text(f"no sessions {window or 'in this window'} (a longer one: --since 7d)")
    out = Text()
    for r in rows:
        if out:
            out.append("\n")
        out.append(r["session"], style="bold")
        out.append(f"  {r['model'] or '?'}  ")
        out.append(r["outcome"], style=OUTCOME_STYLE.get(r["outcome"], "cyan"))
        out.append(
            f"  steps={r['steps']}  failed={r['failed_steps']}  unrecovered={r['unrecovered_steps']}"
            f"  last={when(r['last_ts'])}"
        )
        if r.get("agent"):
            out.append(f"  agent={r['agent']}")
        flags = ", ".join(f for f, on in (("cascade", r["cascade"]), ("loop", r["loop"])) if on)
        if flags:
            out.append(f"  [{flags}]", style="red")
    return out


def format_session(rows: list[dict[str, Any]]) -> Text:
    out = Text()
    first_failure = next((i for i, r in enumerate(rows) if r["failed"]), None)
    for i, r in enumerate(rows):
        if out:
            out.append("\n")
        kind = "final answer" if r["final_answer"] else f"finish={_dash(r['finish_reason'])}"
        out.append(f"step {i + 1}  {when(r['ts'], 'milliseconds')}  {r['model'] or '?'}  {r['status']} {r['outcome']}")
        out.append(f"  {kind}")
        if r.get("retried"):
            out.append("  (retried: replaced by the next attempt)", style="yellow")
        if r["failed"]:
            mark = "  <- FIRST FAILURE" if i == first_failure else "  <- failed"
            out.append(mark, style="bold red")
            recovered = r["recovered"]
            out.append(
                " (recovered later)" if recovered else " (never recovered)", style="green" if recovered else "red"
            )
        for tc in r.get("tool_calls") or []:
            raw = tc["raw_arguments"]
            args = raw if len(raw) <= 100 else raw[:97] + "..."
            out.append(f"\n    -> {tc['name']}({args}) id={tc['tool_call_id']}")
            if tc["malformed_kind"]:
                out.append(f" MALFORMED:{tc['malformed_kind']}", style="red")
            out.append(f" => {tc['outcome']}", style=OUTCOME_STYLE.get(tc["outcome"], "yellow"))
            if tc["error_rule"]:
                out.append(f" ({tc['error_rule']})")
    return out


# -- alerts --------------------------------------------------------------------------------------------------


def format_alerts(rows: list[dict[str, Any]]) -> Text:
    if not rows:
        return Text("no alerts")
    out = Text()
    for a in rows:
        if out:
            out.append("\n")
        models = f"{a['old_model']} -> {a['new_model']}" if a["old_model"] != a["new_model"] else a["new_model"]
        out.append(f"{a['id']}  ")
        out.append(f"{a['state']:<8}", style="bold red" if a["state"] == "open" else "green")
        out.append(
            f"  {a['kind']:<17}  {_dash(a['agent'])}  {models}  {a['metric']} "
            f"{pct(a['before'])} -> {pct(a['after'])}  (n {a['n_before']}/{a['n_after']})  "
            f"opened {when(a['opened_at'])}"
        )
        for tag, on in (("acknowledged", a["acknowledged_at"]), ("silenced", a["silenced_until"])):
            if on:
                out.append(f"  [{tag}]", style="dim")
        out.append(f"\n    {a['detail']}")
        if a["examples"]:
            out.append(f"\n    e.g. {a['examples'][0]}")
    return out


def format_silences(rows: list[dict[str, Any]]) -> Text:
    if not rows:
        return Text("no active silences")
    return Text(
        "\n".join(
            f"{s['id']}  until {when(s['until'])}  "
            + (f"alert {s['alert_id']}" if s["alert_id"] else f"agent {s['agent']} {s['kind'] or 'every kind'}")
            + (f"  by {s['created_by']}" if s["created_by"] else "")
            + (f"  ({s['comment']})" if s["comment"] else "")
            for s in rows
        )
    )


def format_check(found: dict[str, Any]) -> Text:
    who = f"agent {found['agent']}" if found["agent"] else "any agent"
    if not found["open"]:
        return Text(f"ok: no regression alert open for {who} (opened since {when(found['since'])})", style="green")
    out = Text(f"REGRESSION: {found['open']} alert(s) open for {who}", style="bold red")
    return out.append("\n").append_text(format_alerts(found["alerts"]))


def format_compare(found: dict[str, Any]) -> Text:
    b, a = found["before"], found["after"]
    n = found["sessions"]
    lines = [
        f"agent {found['agent']}: {b} ({n[b]} sessions) vs {a} ({n[a]} sessions), "
        f"{when(found['since'])} to {when(found['until'])}",
        f"{'metric':<26}{b[:20]:>22}{a[:20]:>22}{'difference (95%)':>26}{'p worse':>10}",
    ]
    for m in found["metrics"]:
        diff = m["difference_interval"]
        spread = "-" if diff is None else f"[{diff[0]:+.1%}, {diff[1]:+.1%}]"
        p = "-" if m["p_after_worse"] is None else f"{m['p_after_worse']:.2g}"
        before = f"{pct(m['before'])} ({m['n_before']})"
        after = f"{pct(m['after'])} ({m['n_after']})"
        lines.append(f"{m['metric']:<26}{before:>22}{after:>22}{spread:>26}{p:>10}")
    for model in (b, a):
        lat = found["latency"].get(model)
        if lat and lat.get("latency_p50_ms") is not None:
            lines.append(
                f"latency {model}: p50 {lat['latency_p50_ms']:.0f} ms, p95 {lat['latency_p95_ms']:.0f} ms over "
                f"{lat['llm_calls']} calls"
            )
    return Text("\n".join(lines))
