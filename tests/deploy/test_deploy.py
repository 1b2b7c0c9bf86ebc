"""The Grafana dashboard and the Prometheus rules in ``deploy/`` against what toolwatch actually serves.

A real ``toolwatch serve`` gets traffic from the official ``openai`` SDK (tool calls, a tool result that is
an error, a malformed tool call, an HTTP error); its ``/metrics`` is parsed with prometheus-client's own
parser. Every metric name in every expression of the dashboard (panels and template variables) and of the
alert rules must be a series that was served, used the way its type allows (``rate`` of counters and
histogram parts, ``histogram_quantile`` of ``_bucket`` by ``le``), and every label the expressions select
on, group by, match on, or print (legends, alert annotations) must be on those series. promtool, where
installed, checks the rule file, the config (and its commented bearer-token variant), the rules' unit
tests, and the dashboard's PromQL. Where Debian's ``prometheus`` is installed (it comes with promtool), a
real Prometheus scrapes the serve and loads the rules: every dashboard query must return data, every rule
must evaluate without error, and the alerts that the served values call for must be pending.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy import miniyaml
from tests.fakes.upstreams import FakeUpstream, Reply, ToolCallSpec
from tests.harness import TOOLS, ServeProcess, send_openai

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "toolwatch.json"
PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"
RULES = ROOT / "deploy" / "prometheus" / "toolwatch-rules.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "toolwatch-rules.test.yml"
CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"

TARGET_LABELS = frozenset({"instance", "job"})  # added by Prometheus when it scrapes, not in /metrics
# Label values that exist but that the test's traffic does not produce (from the metrics' documentation).
KNOWN_VALUES = {
    "outcome": {  # toolwatch_llm_calls_total's, then toolwatch_tool_results_total's
        *("ok", "http_error", "connect_error", "upstream_timeout", "upstream_error", "client_aborted", "proxy_error"),
        "error",
    },
    "kind": {"truncated", "invalid_json", "unknown_tool", "schema_violation", "in_text"},
    "type": {"input", "cache_read", "cache_write", "output"},
    "window": {"1h", "24h"},
}
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__range": "1h", "$__interval": "1m", "$model": ".*", "$upstream": ".*"}

NAME = re.compile(r"(?<![\w:$.])toolwatch_[a-z0-9_]+(?![\w:])")
STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
SELECTOR = re.compile(r"(?<![\w:$.])([a-zA-Z_:][\w:]*)\s*\{")
MATCHER = re.compile(r'\s*([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*")\s*,?')
CLAUSE = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)")
LEGEND = re.compile(r"\{\{\s*([a-zA-Z_]\w*)\s*\}\}")
TEMPLATE_LABEL = re.compile(r"\$labels\.([a-zA-Z_]\w*)")
SESSION_GAUGES = ("toolwatch_session_success_ratio", "toolwatch_cascade_ratio")
RANGE_FUNCTIONS = ("rate", "irate", "increase", "delta", "idelta", "deriv")


# --------------------------------------------------------------------------- what is served

# Series served only once there is something to say: an alert has been open on an (agent, kind).
CONDITIONAL = {
    "toolwatch_alerts_open": ("gauge", {"agent", "kind"}, {"kind": {"switch_regression", "drift", "threshold"}})
}


@dataclass
class Served:
    """The parsed exposition: every sample name, its family's type, label names and label values."""

    types: dict[str, str] = field(default_factory=dict)  # sample name -> family type
    samples: list[tuple[str, dict[str, str], float]] = field(default_factory=list)
    labels: dict[str, set[str]] = field(default_factory=dict)  # sample name -> label names
    values: dict[tuple[str, str], set[str]] = field(default_factory=dict)  # (sample name, label) -> values

    @classmethod
    def parse(cls, text: str) -> Served:
        served = cls()
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                served.types[s.name] = family.type
                served.samples.append((s.name, s.labels, s.value))
                served.labels.setdefault(s.name, set()).update(s.labels)
                for k, v in s.labels.items():
                    served.values.setdefault((s.name, k), set()).add(v)
        for name, (kind, labels, values) in CONDITIONAL.items():
            if name not in served.types:
                served.types[name] = kind
                served.labels[name] = set(labels)
                for label, allowed in values.items():
                    served.values[(name, label)] = set(allowed)
        return served

    def value(self, name: str, **labels: str) -> float:
        [found] = [v for n, la, v in self.samples if n == name and la.items() >= labels.items()]
        return found


# --------------------------------------------------------------------------- expressions


@dataclass
class Expr:
    where: str
    text: str
    printed: tuple[str, ...] = ()  # labels printed from the result: a legend's {{x}}, an annotation's $labels.x
    series_only: bool = False  # a series selector (label_values), not an expression to evaluate


def metric_names(expr: str) -> set[str]:
    """The toolwatch series names in a PromQL expression (not in its strings: label values, regexes)."""
    return set(NAME.findall(STRING.sub('""', expr)))


def blanked(expr: str) -> str:
    """The expression with its strings blanked out, every character at its place."""
    return STRING.sub(lambda s: '"' + " " * (len(s.group()) - 2) + '"', expr)


def selectors(expr: str) -> Iterator[tuple[str, list[tuple[str, str, str]]]]:
    """(metric name, [(label, operator, value)]) for every ``name{...}`` selector."""
    for m in SELECTOR.finditer(blanked(expr)):
        pos, matchers = m.end(), []
        while True:
            mm = MATCHER.match(expr, pos)
            if not mm:
                break
            matchers.append((mm.group(1), mm.group(2), json.loads(mm.group(3))))
            pos = mm.end()
        if not expr[pos:].lstrip().startswith("}"):
            raise AssertionError(f"cannot read the selector at {expr[m.start() : m.start() + 80]!r}")
        yield m.group(1), matchers


def closing(blank: str, open_at: int) -> int:
    """Where the parenthesis opened at ``open_at`` closes (in a string-blanked expression)."""
    depth = 0
    for k in range(open_at, len(blank)):
        depth += {"(": 1, ")": -1}.get(blank[k], 0)
        if depth == 0:
            return k
    raise AssertionError(f"unbalanced parentheses in {blank!r}")


def opening(blank: str, close_at: int) -> int:
    depth = 0
    for k in range(close_at, -1, -1):
        depth += {")": 1, "(": -1}.get(blank[k], 0)
        if depth == 0:
            return k
    raise AssertionError(f"unbalanced parentheses in {blank!r}")


def clauses(expr: str) -> Iterator[tuple[str, list[str], str]]:
    """(keyword, labels, the expression it applies to) for by/without/on/ignoring/group_left/right; the
    scope of by/without is their aggregation's argument, in the prefix (``sum by (x) (...)``) or the
    suffix form (``sum(...) by (x)``); for the others, the whole expression."""
    blank = blanked(expr)
    for m in CLAUSE.finditer(blank):
        labels = [x.strip() for x in m.group(2).split(",") if x.strip()]
        keyword, scope = m.group(1), expr
        if keyword in ("by", "without"):
            after = len(blank) - len(blank[m.end() :].lstrip())
            before = len(blank[: m.start()].rstrip()) - 1
            if after < len(blank) and blank[after] == "(":
                scope = expr[after + 1 : closing(blank, after)]
            elif before >= 0 and blank[before] == ")":
                scope = expr[opening(blank, before) + 1 : before]
            else:
                raise AssertionError(f"{keyword} ({m.group(2)}) applies to nothing in {expr!r}")
        yield keyword, labels, scope


def result_labels(expr: str, served: Served) -> set[str]:
    """The labels the expression's result can carry (an over-estimate where it is unsure)."""
    grouped = [set(labels) for kw, labels, _ in clauses(expr) if kw == "by"]
    if grouped:
        return set().union(*grouped) - {"le"} | TARGET_LABELS
    found = set(TARGET_LABELS)
    for name in metric_names(expr):
        found |= served.labels.get(name, set())
    return found


def problems(exprs: list[Expr], served: Served) -> list[str]:
    """Everything wrong with the expressions against what is served; empty when all is well."""
    out: list[str] = []
    for e in exprs:
        text = e.text
        names = metric_names(text)
        if not names and not re.search(r"(?<![\w:$.])up\s*\{", text):
            out.append(f"{e.where}: uses no toolwatch series: {text!r}")
        for name in sorted(names):
            if name not in served.types:
                out.append(f"{e.where}: {name} is not served")
        known = {n for n in names if n in served.types}
        # selectors: label names on the series, equality values that exist
        for name, matchers in selectors(text):
            if name not in known:
                continue
            for label, op, value in matchers:
                if label not in served.labels[name] | TARGET_LABELS:
                    out.append(f"{e.where}: {name} has no label {label!r}")
                    continue
                if "$" in value or label in TARGET_LABELS:
                    continue
                allowed = served.values.get((name, label), set()) | KNOWN_VALUES.get(label, set())
                wanted = [value] if op in ("=", "!=") else value.split("|") if re.fullmatch(r"[\w|]+", value) else []
                for v in wanted:
                    if v not in allowed:
                        out.append(f"{e.where}: {name}{{{label}{op}...}}: no such value {v!r}")
        # grouping and matching clauses
        for keyword, labels, scope in clauses(text):
            inside = {n for n in metric_names(scope) if n in known} or known
            for label in labels:
                if label in TARGET_LABELS:
                    continue
                if keyword in ("by", "without"):
                    missing = [n for n in sorted(inside) if label not in served.labels[n]]
                    if missing:
                        out.append(f"{e.where}: {keyword} ({label}) but {', '.join(missing)} has no {label!r}")
                elif not any(label in served.labels[n] for n in known):
                    out.append(f"{e.where}: {keyword} ({label}) but no series here has {label!r}")
        # types: rate() of counters and histogram parts, histogram_quantile() of _bucket by le
        blank = blanked(text)
        for name in known if not e.series_only else ():
            kind = served.types[name]
            in_range_fn = re.search(rf"\b(?:{'|'.join(RANGE_FUNCTIONS)})\s*\(\s*{name}\b", blank)
            if kind == "gauge" and in_range_fn:
                out.append(f"{e.where}: {name} is a gauge, not something to rate()")
            if kind in ("counter", "histogram") and not name.endswith("_created") and not in_range_fn:
                out.append(f"{e.where}: {name} is a {kind}: use it through rate() or increase()")
            if name.endswith("_bucket"):
                quantile = [m.end() - 1 for m in re.finditer(r"histogram_quantile\s*\(", blank)]
                inside_quantile = any(name in blank[q : closing(blank, q)] for q in quantile)
                by_le = any(kw == "by" and "le" in labels for kw, labels, _ in clauses(text))
                if not (inside_quantile and by_le):
                    out.append(f"{e.where}: {name} outside histogram_quantile(..., sum by (..., le) ...)")
        # what is printed from the result
        can_print = result_labels(text, served)
        for label in e.printed:
            if label not in can_print:
                out.append(f"{e.where}: prints {label!r} but the result has only {sorted(can_print)}")
    return out


def grafana_expr(text: str) -> str:
    for variable, value in sorted(GRAFANA_VARIABLES.items(), key=lambda kv: -len(kv[0])):
        text = text.replace("${" + variable[1:] + "}", value).replace(variable, value)
    return text


def all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for p in panels:
        yield p
        yield from all_panels(p.get("panels", []))


def dashboard_exprs(dashboard: dict[str, Any]) -> list[Expr]:
    exprs = []
    for p in all_panels(dashboard["panels"]):
        for t in p.get("targets", []):
            legend = tuple(LEGEND.findall(t.get("legendFormat", "")))
            exprs.append(Expr(f"panel {p['id']} {p['title']!r} {t['refId']}", grafana_expr(t["expr"]), legend))
    for v in dashboard["templating"]["list"]:
        if v["type"] != "query":
            continue
        query = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
        for text in {query, v.get("definition", query)}:
            m = re.fullmatch(r"\s*label_values\s*\((.*),\s*([a-zA-Z_]\w*)\s*\)\s*", text, re.S)
            assert m, f"variable {v['name']}: expected label_values(series, label), got {text!r}"
            exprs.append(Expr(f"variable {v['name']}", grafana_expr(m.group(1)), (m.group(2),), series_only=True))
    return exprs


def rules() -> list[dict[str, Any]]:
    return [r for g in miniyaml.load(RULES.read_text())["groups"] for r in g["rules"]]


def rule_exprs() -> list[Expr]:
    out = []
    for r in rules():
        text = " ".join(str(a) for a in r.get("annotations", {}).values())
        out.append(Expr(f"rule {r['alert']}", r["expr"], tuple(TEMPLATE_LABEL.findall(text))))
    return out


# --------------------------------------------------------------------------- a real serve


@dataclass
class Evaluation:
    """What a real Prometheus scraping the serve made of the dashboard's queries and of the rules."""

    results: dict[str, list[dict[str, Any]]]  # dashboard query (its Expr.where) -> the series it returned
    rules: list[dict[str, Any]]  # /api/v1/rules: each rule with its health, last error and alerts


@dataclass
class Scenario:
    served: Served
    prometheus: Evaluation | None


PROMETHEUS = shutil.which("prometheus")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrometheusRun:
    """A real Prometheus scraping the serve twice a second and evaluating the rules, from the serve's start
    (so that it is up by the time the traffic is recorded)."""

    def __init__(self, tmp: Path, target_url: str) -> None:
        self.tmp = tmp
        self.log = tmp / "prometheus.log"
        config = {
            "global": {"scrape_interval": "500ms", "evaluation_interval": "500ms"},
            "rule_files": [str(RULES)],
            "scrape_configs": [
                {
                    "job_name": "toolwatch",
                    "metrics_path": "/metrics",
                    "static_configs": [{"targets": [target_url.removeprefix("http://")]}],
                }
            ],
        }
        (tmp / "prometheus.json").write_text(json.dumps(config))  # JSON is YAML
        self.port = free_port()
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> PrometheusRun:
        assert PROMETHEUS is not None
        with self.log.open("wb") as log:
            self.proc = await asyncio.create_subprocess_exec(
                PROMETHEUS,
                f"--config.file={self.tmp / 'prometheus.json'}",
                f"--storage.tsdb.path={self.tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                stdout=log,
                stderr=log,
            )
        return self

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()

    async def evaluate(self) -> Evaluation:
        """Once every series served now has been scraped a few times and the rules evaluated after that,
        every dashboard query is run as Grafana runs it (its variables filled in) and the rules are read."""
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:

            async def get(path: str, **params: str) -> Any:
                async with http.get(f"http://127.0.0.1:{self.port}{path}", params=params) as r:
                    body = await r.json()
                    assert body["status"] == "success", body
                    return body["data"]

            async def scrapes() -> float:
                found = await get("/api/v1/query", query='count_over_time(up{job="toolwatch"}[10m])')
                return float(found["result"][0]["value"][1]) if found["result"] else 0.0

            async def evaluations() -> dict[str, str]:
                return {g["name"]: g["lastEvaluation"] for g in (await get("/api/v1/rules"))["groups"]}

            deadline = time.monotonic() + 40
            state: Any = "not listening"
            while time.monotonic() < deadline:  # up
                assert self.proc is not None and self.proc.returncode is None, self.log.read_text()[-3000:]
                try:
                    start = await scrapes()
                    break
                except (aiohttp.ClientError, OSError):
                    await asyncio.sleep(0.2)
            else:
                raise AssertionError(f"Prometheus did not answer: {self.log.read_text()[-3000:]}")
            # rates want two samples of each series: three scrapes from now; then two rounds of the rules (the
            # first may have started before)
            while time.monotonic() < deadline and (state := await scrapes()) < start + 3:
                await asyncio.sleep(0.2)
            rounds = [await evaluations()]
            while time.monotonic() < deadline and len(rounds) < 3:
                now = await evaluations()
                if all(now[g] != rounds[-1][g] for g in now):
                    rounds.append(now)
                await asyncio.sleep(0.1)
            assert len(rounds) == 3, f"Prometheus did not get going: {state} scrapes, rule rounds {rounds}"
            results = {}
            for e in dashboard_exprs(json.loads(DASHBOARD.read_text())):
                if e.series_only:
                    results[e.where] = await get("/api/v1/series", **{"match[]": e.text})
                else:
                    results[e.where] = (await get("/api/v1/query", query=e.text))["result"]
            groups = (await get("/api/v1/rules"))["groups"]
            return Evaluation(results, [r for g in groups for r in g["rules"]])


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def scenario(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Scenario]:
    replies = [
        Reply(tool_calls=(ToolCallSpec("lookup", '{"key": "a"}'),)),  # send_openai's two requests
        Reply(tool_calls=(ToolCallSpec("lookup", '{"key": "b"}'),)),
        Reply(tool_calls=(ToolCallSpec("lookup", '{"key": "c"}'), ToolCallSpec("lookup", '{"key": '))),
        Reply(text="done"),  # the answer to the tool results
        Reply(status=500, error_message="overloaded"),
    ]
    async with FakeUpstream(replies) as fake:
        tmp = tmp_path_factory.mktemp("deploy")
        serve = await ServeProcess(tmp, fake.url, env={"TOOLWATCH_METRICS_INTERVAL": "1"}).start()
        prometheus = await PrometheusRun(tmp, serve.url).start() if PROMETHEUS else None
        try:
            await send_openai(serve.url, 2)
            async with openai.AsyncOpenAI(base_url=f"{serve.url}/openai/v1", api_key="sk-x", max_retries=0) as c:
                messages: list[Any] = [{"role": "user", "content": "look up c"}]
                first = await c.chat.completions.create(model="gpt-test", messages=messages, tools=TOOLS)  # type: ignore[arg-type]
                calls = first.choices[0].message.tool_calls or []
                assert len(calls) == 2
                messages.append(first.choices[0].message.model_dump(exclude_none=True))
                messages.append({"role": "tool", "tool_call_id": calls[0].id, "content": "c = 3"})
                messages.append({"role": "tool", "tool_call_id": calls[1].id, "content": "Error: invalid arguments"})
                await c.chat.completions.create(model="gpt-test", messages=messages, tools=TOOLS)  # type: ignore[arg-type]
                with pytest.raises(openai.InternalServerError):
                    await c.chat.completions.create(model="gpt-test", messages=messages, tools=TOOLS)  # type: ignore[arg-type]
            await serve.wait_for(lambda s: s.get("calls_written", 0) >= 5)
            text = ""
            # The session gauges come from the analyzers' report, a round every metrics_interval (1 s here); a
            # round takes about a second a window, several on a busy machine.
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                code, text = await serve.get_raw("/metrics")
                assert code == 200
                gauges = {
                    (s.name, s.labels["model"], s.labels["window"])
                    for family in text_string_to_metric_families(text)
                    for s in family.samples
                    if s.name in SESSION_GAUGES
                }
                # A round that runs after the store took the first batch but before the batch was counted
                # labels the model "other" (a model gets a series of its own once its calls are counted);
                # the next round puts it right.
                if all((n, "gpt-test", w) in gauges for n in SESSION_GAUGES for w in ("1h", "24h")):
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(
                    f"no session gauges for gpt-test in both windows in /metrics: {gauges}\n"
                    f"stderr: {serve.stderr.decode()[-3000:]}"
                )
            evaluation = await prometheus.evaluate() if prometheus else None
        finally:
            if prometheus:
                await prometheus.stop()
            assert await serve.stop() == 0, serve.stderr.decode()[-3000:]
    yield Scenario(Served.parse(text), evaluation)


@pytest.fixture(scope="module")
def served(scenario: Scenario) -> Served:
    return scenario.served


@pytest.fixture(scope="module")
def prometheus(scenario: Scenario) -> Evaluation:
    if scenario.prometheus is None:
        pytest.skip("prometheus is not installed (Debian: apt-get install prometheus); .ci/run installs it")
    return scenario.prometheus


# --------------------------------------------------------------------------- the tests


def test_the_traffic_made_every_series(served: Served) -> None:
    """The scenario itself: what the dashboard needs was produced (else the checks below prove little)."""
    assert {"invalid_json"} <= served.values[("toolwatch_malformed_tool_calls_total", "kind")]
    assert served.values[("toolwatch_tool_results_total", "outcome")] == {"ok", "error"}
    assert {"ok", "http_error"} <= served.values[("toolwatch_llm_calls_total", "outcome")]
    assert served.values[("toolwatch_session_success_ratio", "model")] == {"gpt-test"}


def test_every_dashboard_expression_matches_the_served_series(served: Served) -> None:
    exprs = dashboard_exprs(json.loads(DASHBOARD.read_text()))
    assert len(exprs) >= 20
    found = problems(exprs, served)
    assert not found, "\n".join(found)


def test_every_rule_expression_matches_the_served_series(served: Served) -> None:
    exprs = rule_exprs()
    assert len(exprs) >= 7
    found = problems(exprs, served)
    assert not found, "\n".join(found)


def test_the_dashboard_and_the_rules_cover_the_served_toolwatch_series(served: Served) -> None:
    used = set().union(*(metric_names(e.text) for e in dashboard_exprs(json.loads(DASHBOARD.read_text()))))
    families = {re.sub(r"_(bucket|sum|count|total)$", "", n) for n in served.types if not n.endswith("_created")}
    unused = {f for f in families if not any(re.sub(r"_(bucket|sum|count|total)$", "", n) == f for n in used)}
    assert not unused, f"served but on no panel of {DASHBOARD.relative_to(ROOT)}: {sorted(unused)}"
    rules_use = set().union(*(metric_names(e.text) for e in rule_exprs()))
    for name in (
        "toolwatch_malformed_tool_calls_total",
        "toolwatch_tool_results_total",
        "toolwatch_recorder_lag_seconds",
        "toolwatch_dead_letters",
        "toolwatch_records_dropped_total",
        "toolwatch_store_errors_total",
        "toolwatch_session_success_ratio",
    ):
        assert name in rules_use, name


SAMPLE = """\
# TYPE toolwatch_llm_calls_total counter
toolwatch_llm_calls_total{model="m",upstream="u",api="openai",outcome="ok"} 1.0
# TYPE toolwatch_upstream_latency_seconds histogram
toolwatch_upstream_latency_seconds_bucket{model="m",upstream="u",le="1.0"} 1.0
toolwatch_upstream_latency_seconds_bucket{model="m",upstream="u",le="+Inf"} 1.0
toolwatch_upstream_latency_seconds_count{model="m",upstream="u"} 1.0
toolwatch_upstream_latency_seconds_sum{model="m",upstream="u"} 0.5
# TYPE toolwatch_spool_bytes gauge
toolwatch_spool_bytes 0.0
# TYPE toolwatch_session_success_ratio gauge
toolwatch_session_success_ratio{model="m",window="24h"} 1.0
"""


@pytest.mark.parametrize(
    ("expr", "printed", "reported"),
    [
        ("rate(toolwatch_made_up_total[5m])", (), "toolwatch_made_up_total is not served"),
        ("rate(toolwatch_llm_calls[5m])", (), "toolwatch_llm_calls is not served"),  # the family, not the series
        ("rate(toolwatch_upstream_latency_seconds[5m])", (), "toolwatch_upstream_latency_seconds is not served"),
        ("sum by (modle) (rate(toolwatch_llm_calls_total[5m]))", (), "toolwatch_llm_calls_total has no 'modle'"),
        ('rate(toolwatch_llm_calls_total{upstrem="u"}[5m])', (), "has no label 'upstrem'"),
        ('toolwatch_session_success_ratio{upstream=~"$upstream"}', (), "has no label 'upstream'"),
        ('toolwatch_session_success_ratio{window="1d"}', (), "no such value '1d'"),
        ('rate(toolwatch_llm_calls_total{outcome=~"ok|timeout"}[5m])', (), "no such value 'timeout'"),
        ("rate(toolwatch_spool_bytes[5m])", (), "is a gauge"),
        ("toolwatch_llm_calls_total", (), "use it through rate()"),
        ("sum by (le) (rate(toolwatch_upstream_latency_seconds_bucket[5m]))", (), "outside histogram_quantile"),
        (
            "histogram_quantile(0.9, sum by (model) (rate(toolwatch_upstream_latency_seconds_bucket[5m])))",
            (),
            "outside histogram_quantile(..., sum by (..., le)",
        ),
        ("sum by (model) (rate(toolwatch_llm_calls_total[5m]))", ("upstream",), "prints 'upstream'"),
        ("sum(rate(toolwatch_llm_calls_total[5m])) by (tool)", (), "toolwatch_llm_calls_total has no 'tool'"),
        ('sum(rate(process_cpu_seconds_total{job="toolwatch_llm_calls_total"}[5m]))', (), "uses no toolwatch series"),
        ("label_values(toolwatch_llm_calls_total, modle)", ("modle",), "prints 'modle'"),
    ],
)
def test_a_wrong_expression_is_reported(expr: str, printed: tuple[str, ...], reported: str) -> None:
    found = problems([Expr("made up", grafana_expr(expr), printed)], Served.parse(SAMPLE))
    assert any(reported in p for p in found), found


def test_right_expressions_are_not_reported() -> None:
    good = [
        'sum by (model) (rate(toolwatch_llm_calls_total{model=~"$model",outcome!~"ok|client_aborted"}[5m]))',
        "histogram_quantile(0.95, sum by (model, le) (rate(toolwatch_upstream_latency_seconds_bucket[5m])))",
        "sum(rate(toolwatch_upstream_latency_seconds_sum[5m])) by (model) / sum(rate(toolwatch_upstream_latency_seconds_count[5m])) by (model)",  # noqa: E501
        'toolwatch_session_success_ratio{window="24h"} < 0.8',
        "up == 1 unless on (instance, job) toolwatch_spool_bytes",
    ]
    assert (
        problems(
            [Expr("good", grafana_expr(e), ("model",) if "model" in e else ()) for e in good], Served.parse(SAMPLE)
        )
        == []
    )


def test_the_dashboard_is_well_formed() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert 36 <= dashboard["schemaVersion"] <= 41 and dashboard["uid"] == "toolwatch"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for name in ("model", "upstream"):
        assert variables[name]["type"] == "query" and "label_values(" in variables[name]["definition"]
        assert variables[name]["datasource"]["uid"] == "${datasource}"
    panels = list(all_panels(dashboard["panels"]))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    titles = {p["title"] for p in panels}
    for p in panels:
        assert {"h", "w", "x", "y"} <= set(p["gridPos"]) and p["gridPos"]["x"] + p["gridPos"]["w"] <= 24, p["title"]
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], f"panel {p['title']!r} has no query"
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), p["title"]
        for t in p["targets"]:
            assert t["datasource"] == {"type": "prometheus", "uid": "${datasource}"} and t["expr"].strip(), p["title"]
    # no two panels overlap
    cells = [(x, y) for p in panels for x in range(p["gridPos"]["x"], p["gridPos"]["x"] + p["gridPos"]["w"])
             for y in range(p["gridPos"]["y"], p["gridPos"]["y"] + p["gridPos"]["h"])]  # fmt: skip
    assert len(cells) == len(set(cells)), "panels overlap"
    for wanted in ("Malformed tool-call rate", "Tool error rate", "Session success ratio", "Cascade ratio"):
        assert wanted in titles


def test_the_rules_are_complete() -> None:
    found = rules()
    assert len({r["alert"] for r in found}) == len(found)
    for r in found:
        assert r.get("for"), r["alert"]
        assert r["labels"]["severity"] in {"info", "warning", "critical"}, r["alert"]
        assert r["annotations"]["summary"] and "$value" in r["annotations"]["description"], r["alert"]
        if "by (model)" in r["expr"] or re.search(r"toolwatch_(session_success|cascade)_ratio", r["expr"]):
            assert "$labels.model" in r["annotations"]["description"], r["alert"]


def test_the_config_scrapes_toolwatch_and_loads_the_rules() -> None:
    config = miniyaml.load(CONFIG.read_text())
    [job] = [j for j in config["scrape_configs"] if j["job_name"] == "toolwatch"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["127.0.0.1:8787"]
    assert [(CONFIG.parent / f).resolve() for f in config["rule_files"]] == [RULES]
    assert "credentials_file:" in bearer_variant(CONFIG.read_text(), "/run/token")
    providers = miniyaml.load((PROVISIONING / "dashboards" / "toolwatch.yaml").read_text())["providers"]
    assert providers[0]["type"] == "file" and providers[0]["options"]["path"]
    sources = miniyaml.load((PROVISIONING / "datasources" / "toolwatch.yaml").read_text())["datasources"]
    assert sources[0]["type"] == "prometheus"


def bearer_variant(config: str, token_file: str) -> str:
    """prometheus.yml with its toolwatch job replaced by the commented bearer-token variant."""
    lines = config.split("\n")
    start = lines.index("  # - job_name: toolwatch")
    variant = []
    for line in lines[start:]:
        if not line.startswith("  #"):
            break
        body = line[3:]
        if not body.strip() or body.strip().startswith("#"):
            continue
        variant.append("  " + body[1:])
    plain_start = lines.index("  - job_name: toolwatch")
    plain_end = next(k for k in range(plain_start + 1, len(lines)) if not lines[k].startswith("    "))
    out = lines[:plain_start] + variant + lines[plain_end:]
    return "\n".join(out).replace("/etc/prometheus/toolwatch-admin-token", token_file)


PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed (Debian: apt-get install prometheus); .ci/run installs it"
)


def promtool(*args: str, cwd: Path = ROOT) -> None:
    assert PROMTOOL is not None
    r = subprocess.run([PROMTOOL, *args], capture_output=True, text=True, cwd=cwd, timeout=60)
    assert r.returncode == 0, f"promtool {' '.join(args)}:\n{r.stdout}\n{r.stderr}"


@needs_promtool
def test_promtool_accepts_the_rules_and_the_config(tmp_path: Path) -> None:
    promtool("check", "rules", str(RULES))
    promtool("check", "config", str(CONFIG))
    promtool("test", "rules", str(RULE_TESTS))
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    shutil.copy(RULES, tmp_path / RULES.name)
    (tmp_path / "prometheus.yml").write_text(bearer_variant(CONFIG.read_text(), str(token)))
    promtool("check", "config", str(tmp_path / "prometheus.yml"))


@needs_promtool
def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    """The dashboard's PromQL, its Grafana variables filled in, as recording rules that promtool parses."""
    exprs = dashboard_exprs(json.loads(DASHBOARD.read_text()))
    group = [{"record": f"dashboard:query_{k}", "expr": e.text} for k, e in enumerate(exprs)]
    (tmp_path / "dashboard.rules.json").write_text(json.dumps({"groups": [{"name": "dashboard", "rules": group}]}))
    promtool("check", "rules", str(tmp_path / "dashboard.rules.json"))


def test_every_dashboard_query_returns_data_in_prometheus(prometheus: Evaluation) -> None:
    """Run by a real Prometheus on the scraped series, as Grafana runs them: every panel has something."""
    assert len(prometheus.results) == len(dashboard_exprs(json.loads(DASHBOARD.read_text())))
    texts = {e.where: e.text for e in dashboard_exprs(json.loads(DASHBOARD.read_text()))}
    empty = [
        where
        for where, result in prometheus.results.items()
        if not result and not any(name in texts.get(where, "") for name in CONDITIONAL)
    ]
    assert not empty, "queries with no result:\n" + "\n".join(empty)
    assert {s["model"] for s in prometheus.results["variable model"]} == {"gpt-test"}
    assert {s["upstream"] for s in prometheus.results["variable upstream"]} >= {"openai", "anthropic"}


def test_prometheus_evaluates_every_rule_without_error(prometheus: Evaluation) -> None:
    assert sorted(r["name"] for r in prometheus.rules) == sorted(r["alert"] for r in rules())
    broken = [f"{r['name']}: {r['health']} {r.get('lastError', '')}" for r in prometheus.rules if r["health"] != "ok"]
    assert not broken, "\n".join(broken)


def test_the_alerts_that_the_served_values_call_for_are_pending(prometheus: Evaluation, served: Served) -> None:
    """The session rules meet the real gauges, labelled by model; the volume guards keep this little traffic
    (1 malformed tool call in 4, 1 HTTP error in 5 calls, 1 tool error in 2 results) from alerting."""
    expected = set()
    if served.value("toolwatch_session_success_ratio", model="gpt-test", window="24h") < 0.8:
        expected.add(("ToolwatchSessionSuccessLow", "gpt-test", "pending"))
    if served.value("toolwatch_cascade_ratio", model="gpt-test", window="24h") > 0.2:
        expected.add(("ToolwatchCascadeRatioHigh", "gpt-test", "pending"))
    alerts = {(r["name"], a["labels"].get("model"), a["state"]) for r in prometheus.rules for a in r["alerts"]}
    assert alerts == expected
    assert expected, "the scenario no longer meets any rule: make it meet one (its session fails)"


def test_the_yaml_reader_reads_what_yaml_reads() -> None:
    text = """\
# a comment
groups:
  - name: g  # trailing comment
    rules:
      - alert: A
        expr: |
          sum by (model) (rate(x_total{a="#b"}[5m]))
            > 0

        for: 15m
        labels: {severity: warning, "q": 'it''s'}
        annotations:
          description: >-
            one
            two

            three
      - alert: "B: quoted"
        targets: [127.0.0.1:8787, "b"]
plain:
- item
empty:
"""
    assert miniyaml.load(text) == {
        "groups": [
            {
                "name": "g",
                "rules": [
                    {
                        "alert": "A",
                        "expr": 'sum by (model) (rate(x_total{a="#b"}[5m]))\n  > 0\n',
                        "for": "15m",
                        "labels": {"severity": "warning", "q": "it's"},
                        "annotations": {"description": "one two\nthree"},
                    },
                    {"alert": "B: quoted", "targets": ["127.0.0.1:8787", "b"]},
                ],
            }
        ],
        "plain": ["item"],
        "empty": None,
    }
    for bad in ("a: &anchor x\n", "a:\n\t- x\n", "a: b: c\n", "a: [x,\n  y]\n", "a: 1\na: 2\n", "---\na: 1\n"):
        with pytest.raises(miniyaml.YamlSubsetError):
            miniyaml.load(bad)
