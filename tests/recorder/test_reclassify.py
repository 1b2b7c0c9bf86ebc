"""Re-applying changed outcome rules to stored tool results."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from pathlib import Path

from tests.harness import make_settings
from toolwatch.recorder.outcomes import Classifier, Rule
from toolwatch.recorder.reclassify import reclassify
from toolwatch.schemas.records import ToolResult
from toolwatch.store.client import open_client
from toolwatch.store.migrate import migrate
from toolwatch.store.sink import Batch
from toolwatch.store.writer import insert_batch


def result(content: str, rule: str, is_error: bool | None = None) -> ToolResult:
    now = dt.datetime.now(dt.UTC)
    return ToolResult(
        result_uid=uuid.uuid4(),
        call_id=uuid.uuid4(),
        ts=now,
        upstream="openai",
        tool_call_id=f"call_{uuid.uuid4().hex}",
        content=content,
        content_bytes=len(content),
        is_error=is_error,
        error_rule=rule,
        classified_at=now,
    )


def test_reclassify_applies_new_rules_and_keeps_the_latest_verdict(store_path: Path, tmp_path: Path) -> None:
    settings = make_settings(store_path, tmp_path / "spool")
    client = open_client(settings.store, settings.database)
    try:
        migrate(client)
        rows = [
            result("QUOTA EXCEEDED for today", ""),
            result("all good", ""),
            result("Error: x", "error_prefix"),
            result("fine", "", is_error=True),
        ]
        insert_batch(client, Batch(tool_results=rows))
        since = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
        stricter = Classifier((Rule("quota", re.compile(r"(?i)quota exceeded")),))
        done = reclassify(client, stricter, since)
        # "fine" with is_error was stored as ok by an older rule set: the explicit flag now wins too
        assert (done.examined, done.changed) == (4, 2)
        latest = dict(
            client.query(
                "SELECT content, argMax(error_rule, classified_at) FROM tool_results GROUP BY content"
            ).result_rows
        )
        assert latest == {
            "QUOTA EXCEEDED for today": "quota",
            "all good": "",
            "Error: x": "error_prefix",
            "fine": "is_error",
        }
        assert reclassify(client, stricter, since).changed == 0  # idempotent
    finally:
        client.close()
