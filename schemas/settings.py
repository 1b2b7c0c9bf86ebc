"""Settings: one validated model, layered defaults < toolwatch.toml < TOOLWATCH_* environment < flags.

Loaded once per process at start. A bad value raises ``ConfigError`` with every problem listed, so
``toolwatch serve`` stops with a clear message instead of failing later on a request.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from toolwatch.schemas.durations import seconds
from toolwatch.schemas.errors import ConfigError
from toolwatch.schemas.vocab import ApiFlavor, ThresholdMetric

MiB = 1024 * 1024
ENV_PREFIX = "TOOLWATCH_"
LEGACY_DATA = "toolwatch-data"  # the folder older versions kept their data in, under the working directory


def user_data_dir() -> Path:
    """The per-user data folder (``~/.local/share/toolwatch`` on Linux, ``$XDG_DATA_HOME/toolwatch`` when
    set), so every command finds the same store from any folder."""
    return platformdirs.user_data_path("toolwatch", appauthor=False).absolute()


def legacy_data(name: str) -> Path | None:
    """``./toolwatch-data/<name>`` (``store`` or ``spool``) when it exists: older versions' default, still
    used where it is."""
    folder = Path.cwd() / LEGACY_DATA / name
    return folder if folder.is_dir() else None


StoreOrigin = Literal["set", "default", "legacy"]

BUILTIN_UPSTREAMS: dict[str, dict[str, str]] = {
    "openai": {"url": "https://api.openai.com", "api": "openai"},
    "anthropic": {"url": "https://api.anthropic.com", "api": "anthropic"},
    "gemini": {"url": "https://generativelanguage.googleapis.com", "api": "gemini"},
}
RESERVED_MOUNTS = frozenset({"_toolwatch", "healthz", "metrics"})


class Upstream(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    api: ApiFlavor

    @field_validator("url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"upstream url must start with http:// or https://, got {v!r}")
        return v.rstrip("/")


class ModelPrice(BaseModel):
    """USD per million tokens. ``cache_write`` only where a provider prices cache writes apart."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: float = Field(ge=0)
    cached_input: float = Field(ge=0)
    output: float = Field(ge=0)
    cache_write: float | None = Field(None, ge=0)


class ThresholdRule(BaseModel):
    """An alert that opens while ``metric`` is above ``above`` over the last ``window``, per model."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    metric: ThresholdMetric
    above: float = Field(ge=0)
    window: float = Field(900.0, gt=0)  # seconds; "15m" in a config file
    model: str = ""  # "" = every model, else an exact model name
    min_count: int = Field(20, ge=1)  # the rate's denominator must reach this over the window

    @field_validator("window", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> Any:
        return seconds(v) if isinstance(v, str) else v


class Settings(BaseModel):
    """Every setting, with its default. Sizes are bytes, times are seconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(8787, ge=0, le=65535)
    # clickhouse-connect DSN; "" means chdb://<user data dir>/store, or ./toolwatch-data/store where it exists
    store: str = ""
    database: str = "toolwatch"
    store_timeout: float = Field(30.0, gt=0)  # connect and per-request timeout for a ClickHouse server
    spool: str = ""  # "" means beside the embedded store (<store path>.spool)
    upstreams: dict[str, Upstream] = Field(default_factory=dict, validate_default=True)
    connect_timeout: float = Field(10.0, gt=0)
    first_byte_timeout: float = Field(600.0, gt=0)
    idle_timeout: float = Field(300.0, gt=0)
    parse_limit: int = Field(32 * MiB, ge=1024)
    result_max_bytes: int = Field(64 * 1024, ge=256)
    spool_cap_bytes: int = Field(1024 * MiB, ge=MiB)
    segment_bytes: int = Field(8 * MiB, ge=64 * 1024)
    segment_max_age: float = Field(5.0, gt=0)
    batch_rows: int = Field(5000, ge=1)
    batch_interval: float = Field(1.0, gt=0)
    shutdown_timeout: float = Field(15.0, ge=0)
    ttl_days: int = Field(90, ge=1)
    body_ttl_days: int = Field(7, ge=1)
    # what of the full request and response bodies the bodies table keeps: "redacted" (secrets replaced),
    # "full" (as they were) or "none"
    store_bodies: Literal["full", "redacted", "none"] = "redacted"
    # extra secret patterns to redact, name -> regular expression; the built-in ones apply unless
    # redact_defaults is false
    redact_patterns: dict[str, str] = Field(default_factory=dict)
    redact_defaults: bool = True
    # a bearer token for what toolwatch serves itself (/_toolwatch, /metrics); required to listen on a
    # non-loopback address
    admin_token: str = ""
    # the URL people and links use to reach toolwatch (its host is allowed besides loopback names)
    public_url: str = ""
    # salt of the API-key fingerprints; "" = a random one kept with the store (set it to share it)
    key_salt: str = ""
    # model -> price, over the built-in price table (analyzers/prices.json)
    prices: dict[str, ModelPrice] = Field(default_factory=dict)
    overhead_header: bool = True  # toolwatch-overhead-ms on every proxied answer
    metrics_max_models: int = Field(50, ge=1)  # models with series of their own in /metrics; the rest: "other"
    metrics_max_tools: int = Field(200, ge=1)
    metrics_interval: float = Field(30.0, gt=0)  # how often the session gauges are recomputed
    # OpenTelemetry: spans go to <otel_endpoint>/v1/traces (also on when OTEL_EXPORTER_OTLP_ENDPOINT is set)
    otel_endpoint: str = ""
    otel_tool_content: bool = False  # put tool arguments and results on execute_tool spans (opt-in)
    # regression alerts (see the README): None = on for an embedded store, off for a server store, where
    # exactly one serve should set it
    alerts: bool | None = None
    alert_interval: float = Field(30.0, gt=0)
    alert_alpha: float = Field(0.003, gt=0, lt=0.5)  # each indicator's false-alarm budget over a whole test
    alert_min_sessions: int = Field(30, ge=5)  # sessions on each side before a test may alert
    alert_min_effect: float = Field(0.02, ge=0, le=1)  # the smallest absolute worsening that alerts
    alert_min_relative_effect: float = Field(0.25, ge=0)  # ... and relative to the old rate
    alert_baseline_days: float = Field(7.0, gt=0)  # the old model's sessions this far back
    alert_baseline_sessions: int = Field(2000, ge=30)  # at most this many of them, the most recent
    alert_horizon_sessions: int = Field(5000, ge=100)  # a switch is tested until the new model has this many
    alert_switch_gap_days: float = Field(1.0, gt=0)  # a model unused this long is new again
    alert_rules: list[ThresholdRule] = Field(default_factory=list)
    alert_webhook_url: str = ""  # generic JSON webhook
    alert_slack_url: str = ""  # Slack-compatible incoming webhook
    max_connections: int = Field(4096, ge=1)  # concurrent client connections the proxy holds
    # proxy processes sharing the one listening socket (serve binds it once), each with its own spool writer;
    # one recorder reads them all
    workers: int = Field(1, ge=1, le=64)
    # false: a plain proxy, no spool and no recorder (nothing is recorded; for measuring recording's cost)
    record: bool = True
    fsync_interval: float = Field(0.5, gt=0)  # a power loss loses at most this many seconds of recording
    # extra tool-result error rules, name -> regular expression searched in the result's first 2 KiB
    outcome_rules: dict[str, str] = Field(default_factory=dict)
    # CPU priority of the recorder process: "idle" runs it only on CPU time nothing else wants (recording
    # lags under full load, the spool absorbs it), "low" is nice 10, "normal" shares the CPU evenly
    recorder_priority: Literal["idle", "low", "normal"] = "low"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    access_log: bool = False  # one line per request costs ~20 us of the event loop; off by default
    _store_origin: StoreOrigin = PrivateAttr("set")

    @field_validator("upstreams", mode="before")
    @classmethod
    def _with_builtins(cls, v: Any) -> Any:
        merged: dict[str, Any] = {k: dict(u) for k, u in BUILTIN_UPSTREAMS.items()}
        for name, entry in (v or {}).items():
            if isinstance(entry, Mapping):
                merged[name] = {**merged.get(name, {}), **entry}
            else:
                merged[name] = entry
        for name in merged:
            if name in RESERVED_MOUNTS or not name or "/" in name or name.startswith("_"):
                raise ValueError(f"upstream name {name!r} is reserved or not a single path segment")
        return merged

    @field_validator("store_bodies", mode="before")
    @classmethod
    def _legacy_bool(cls, v: Any) -> Any:
        """``store_bodies = true/false`` from older configs: keep everything, or nothing."""
        if isinstance(v, bool):
            return "full" if v else "none"
        if isinstance(v, str) and v.lower() in ("true", "false", "1", "0"):
            return "full" if v.lower() in ("true", "1") else "none"
        return v

    @field_validator("redact_patterns")
    @classmethod
    def _patterns_compile(cls, v: dict[str, str]) -> dict[str, str]:
        for name, pattern in v.items():
            try:
                re.compile(pattern)
            except re.error as e:
                raise ValueError(f"redact pattern {name!r} is not a valid regular expression: {e}") from e
        return v

    @field_validator("alert_webhook_url", "alert_slack_url")
    @classmethod
    def _webhook_url(cls, v: str) -> str:
        if v and not v.startswith(("http://", "https://")):
            raise ValueError(f"a webhook URL must start with http:// or https://, got {v!r}")
        return v

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, v: str) -> str:
        if v and not v.startswith(("http://", "https://")):
            raise ValueError(f"public_url must start with http:// or https://, got {v!r}")
        return v.rstrip("/")

    @field_validator("outcome_rules")
    @classmethod
    def _rules_compile(cls, v: dict[str, str]) -> dict[str, str]:
        for name, pattern in v.items():
            try:
                re.compile(pattern)
            except re.error as e:
                raise ValueError(f"outcome rule {name!r} is not a valid regular expression: {e}") from e
        return v

    @model_validator(mode="after")
    def _fill_paths(self) -> Settings:
        legacy = legacy_data("store") if not self.store else None
        store = self.store or f"chdb://{legacy or user_data_dir() / 'store'}"
        if not store.startswith(("chdb://", "http://", "https://")):
            raise ValueError(f"store must be chdb:///abs/path or http(s)://host:8123[/db], got {store!r}")
        if store.startswith("chdb://") and not store.removeprefix("chdb://").startswith("/"):
            raise ValueError(
                f"an embedded store needs an absolute path, chdb:///abs/path (three slashes), got {store!r}"
            )
        spool = self.spool
        if not spool:
            path = chdb_path(store)
            spool = f"{path}.spool" if path else str(legacy_data("spool") or user_data_dir() / "spool")
        if not self.store:
            self._store_origin = "legacy" if legacy is not None else "default"
        object.__setattr__(self, "store", store)
        object.__setattr__(self, "spool", str(Path(spool).absolute()))
        return self

    @property
    def store_origin(self) -> StoreOrigin:
        """Where ``store`` came from: ``set`` (a flag, the environment or the config file), ``default``
        (the per-user data folder) or ``legacy`` (``./toolwatch-data``, found in the working directory)."""
        return self._store_origin

    @property
    def spool_path(self) -> Path:
        return Path(self.spool)

    @property
    def evaluates_alerts(self) -> bool:
        """Whether this serve's recorder evaluates alerts: always on an embedded store (it has the only
        recorder), and only where ``alerts = true`` on a server store."""
        return self.alerts if self.alerts is not None else self.store.startswith("chdb://")


def chdb_path(dsn: str) -> str | None:
    """The filesystem path of a ``chdb://`` DSN, absolute; None for a server DSN."""
    if not dsn.startswith("chdb://"):
        return None
    return str(Path(dsn.removeprefix("chdb://").split("?", 1)[0] or ".").absolute())


def _env_layer(environ: Mapping[str, str]) -> dict[str, Any]:
    fields = Settings.model_fields
    layer: dict[str, Any] = {}
    upstreams: dict[str, dict[str, str]] = {}
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX):
            continue
        name = key.removeprefix(ENV_PREFIX).lower()
        if name in ("upstream_url", "upstream_api"):
            raise ConfigError(f"{key} names no upstream: use TOOLWATCH_UPSTREAM_<NAME>_URL")
        if name.startswith("upstream_") and name.rsplit("_", 1)[-1] in ("url", "api"):
            mount, attr = name.removeprefix("upstream_").rsplit("_", 1)
            upstreams.setdefault(mount, {})[attr] = value
        elif name in fields and name != "upstreams":
            layer[name] = value
    if upstreams:
        layer["upstreams"] = upstreams
    return layer


def _match_mounts(env_ups: dict[str, dict[str, str]], known: set[str]) -> dict[str, dict[str, str]]:
    """Environment names are upper-case with ``_``; map them onto configured mounts like ``my-glm``."""
    by_norm = {k.lower().replace("-", "_"): k for k in known}
    return {by_norm.get(name, name): attrs for name, attrs in env_ups.items()}


def load_settings(
    config: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build the settings. ``overrides`` are command-line flags; None values are ignored."""
    environ = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    config = config or environ.get("TOOLWATCH_CONFIG")
    if config:
        try:
            with open(config, "rb") as fh:
                data = tomllib.load(fh)
        except OSError as e:
            raise ConfigError(f"cannot read config file {config}: {e.strerror}") from e
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config file {config} is not valid TOML: {e}") from e
    env = _env_layer(environ)
    raw_ups = data.get("upstreams") or {}
    if not isinstance(raw_ups, dict) or not all(isinstance(v, dict) for v in raw_ups.values()):
        raise ConfigError("invalid configuration: upstreams must be tables like [upstreams.NAME] with url and api")
    ups: dict[str, Any] = {k: dict(v) for k, v in raw_ups.items()}
    env_ups = _match_mounts(env.pop("upstreams", {}), set(ups) | set(BUILTIN_UPSTREAMS))
    for name, attrs in env_ups.items():
        ups[name] = {**ups.get(name, {}), **attrs}
    data.update(env)
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    if ups:
        data["upstreams"] = ups
    try:
        return Settings.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}" for err in e.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from e
