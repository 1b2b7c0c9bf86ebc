"""What calls cost: a price table per model (input, cached input and output tokens, and cache writes where
the provider prices them apart), applied to the report's token sums.

The built-in table (``prices.json``) says where its figures come from and when they were taken; the
``prices`` setting overrides or adds models. A model the table does not know costs ``null``, never a
guess. A dated model name (``gpt-4o-2024-11-20``, ``claude-sonnet-4-5-20250929``) takes its family's price.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

_DATED = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8})$")


@dataclass(frozen=True)
class Price:
    input: float
    cached_input: float
    output: float
    cache_write: float | None = None  # None: cache writes cost what input does


@dataclass(frozen=True)
class PriceTable:
    prices: dict[str, Price]
    source: str
    as_of: str

    def price(self, model: str) -> Price | None:
        found = self.prices.get(model)
        if found is None and _DATED.search(model):
            found = self.prices.get(_DATED.sub("", model))
        return found

    def cost(self, model: str, input: int, cache_read: int, cache_write: int, output: int) -> float | None:
        """USD for these token counts of ``model`` (input excludes cached tokens), or None if unpriced."""
        p = self.price(model)
        if p is None:
            return None
        write = p.input if p.cache_write is None else p.cache_write
        return (input * p.input + cache_read * p.cached_input + cache_write * write + output * p.output) / 1e6

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "as_of": self.as_of,
            "unit": "USD per 1M tokens",
            "models": {m: vars(p) for m, p in sorted(self.prices.items())},
        }


@cache
def _builtin() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(resources.files("toolwatch.analyzers").joinpath("prices.json").read_text())
    return data


def price_table(overrides: dict[str, dict[str, float]] | None = None) -> PriceTable:
    data = _builtin()
    prices = {m: Price(**p) for m, p in data["models"].items()}
    for model, fields in (overrides or {}).items():
        prices[model] = Price(**fields)
    source = data["source"] + (
        " Overridden in the configuration for: " + ", ".join(sorted(overrides)) if overrides else ""
    )
    return PriceTable(prices, source, data["as_of"])


def add_costs(rows: list[dict[str, Any]], table: PriceTable) -> list[dict[str, Any]]:
    """Report rows with ``cost_usd`` and ``cost_per_successful_session_usd`` (None when unpriced)."""
    for row in rows:
        cost = table.cost(
            row["model"],
            row.get("input_tokens") or 0,
            row.get("cache_read_tokens") or 0,
            row.get("cache_write_tokens") or 0,
            row.get("output_tokens") or 0,
        )
        row["cost_usd"] = None if cost is None else round(cost, 6)
        ok = row.get("successful_sessions") or 0
        row["cost_per_successful_session_usd"] = None if cost is None or not ok else round(cost / ok, 6)
    return rows
