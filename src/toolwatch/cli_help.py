"""The help texts of the ``toolwatch`` command line (``cli_args.py`` builds the parsers with them): the
environment variables each command reads, where agents point, the exit codes, the report's columns."""

from __future__ import annotations

from collections.abc import Sequence

ENV = {
    "TOOLWATCH_STORE": "the store, as --store (default chdb://<per-user data folder>/store)",
    "TOOLWATCH_CONFIG": "a toolwatch.toml, as --config",
    "TOOLWATCH_ADMIN_TOKEN": "the server's admin_token, sent when reading through a running server",
    "TOOLWATCH_SPOOL": "the spool folder, as --spool (default: beside the embedded store)",
    "TOOLWATCH_HOST": "listen address, as --host (127.0.0.1)",
    "TOOLWATCH_PORT": "listen port, as --port (8787)",
    "TOOLWATCH_UPSTREAM_<NAME>_URL": "where upstream NAME forwards to (and _API: openai, anthropic, gemini, azure)",
    "TOOLWATCH_<SETTING>": "any setting of the README's Configuration table, e.g. TOOLWATCH_LOG_LEVEL=debug",
    "TOOLWATCH_DEBUG": "1: a traceback for unexpected errors, as --debug",
    "XDG_DATA_HOME": "moves the per-user data folder (default ~/.local/share on Linux)",
    "NO_COLOR": "no colour, even on a terminal (FORCE_COLOR: colour even in a pipe)",
    "USER": "who acknowledges or silences an alert, as --by",
    "OTEL_EXPORTER_OTLP_ENDPOINT": "send OpenTelemetry spans there (as otel_endpoint)",
}
READING = ("TOOLWATCH_STORE", "TOOLWATCH_CONFIG", "TOOLWATCH_ADMIN_TOKEN", "TOOLWATCH_<SETTING>", "NO_COLOR")
SERVING = (
    *("TOOLWATCH_CONFIG", "TOOLWATCH_STORE", "TOOLWATCH_SPOOL", "TOOLWATCH_HOST", "TOOLWATCH_PORT"),
    *("TOOLWATCH_ADMIN_TOKEN", "TOOLWATCH_UPSTREAM_<NAME>_URL", "TOOLWATCH_<SETTING>", "OTEL_EXPORTER_OTLP_ENDPOINT"),
    "TOOLWATCH_DEBUG",
)
AGENTS = """\
point an agent at it (the API key travels as usual, untouched):
  OPENAI_BASE_URL=http://127.0.0.1:8787/openai/v1
  ANTHROPIC_BASE_URL=http://127.0.0.1:8787/anthropic
  GOOGLE_GEMINI_BASE_URL=http://127.0.0.1:8787/gemini
  AzureOpenAI(azure_endpoint="http://127.0.0.1:8787/azure")      with [upstreams.azure], api = "azure"
  base URL http://127.0.0.1:8787/NAME                             any [upstreams.NAME] of the config"""
EXIT_CODES = "exit codes: 0 ok; 1 a finding (check: a regression is open; a lookup found nothing); 2 an error"


def epilog(examples: Sequence[tuple[str, str]], env: Sequence[str] = READING, *more: str) -> str:
    width = max(len(cmd) for cmd, _ in examples)
    text = ["examples:", *(f"  {cmd.ljust(width)}  # {why}" if why else f"  {cmd}" for cmd, why in examples)]
    for block in more:
        text += ["", block]
    text += ["", "environment:"]
    name_width = max(len(name) for name in env)
    text += [f"  {name.ljust(name_width)}  {ENV[name]}" for name in env]
    return "\n".join([*text, "", EXIT_CODES])


def report_columns() -> str:
    from toolwatch.analyzers.format import REPORT_COLUMNS

    return "columns:\n" + "\n".join(f"  {h:<10}  {meaning}" for h, _, _, meaning in REPORT_COLUMNS)
