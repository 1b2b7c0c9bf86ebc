"""The same migrations, writer and analyzer SQL against a ClickHouse server (skipped without one).

Set TOOLWATCH_TEST_CLICKHOUSE_URL=http://user:pass@host:8123 to run.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime

import pytest

from toolwatch.analyzers import runner
from toolwatch.schemas.records import LlmCall, ToolCall
from toolwatch.store.client import open_client
from toolwatch.store.migrate import migrate
from toolwatch.store.sink import Batch
from toolwatch.store.writer import insert_batch

URL = os.environ.get("TOOLWATCH_TEST_CLICKHOUSE_URL")
pytestmark = pytest.mark.skipif(not URL, reason="TOOLWATCH_TEST_CLICKHOUSE_URL is not set")


def test_server_store_roundtrip() -> None:
    assert URL
    database = f"tw_test_{uuid.uuid4().hex[:10]}"
    client = open_client(URL.rstrip("/"), database)
    try:
        assert migrate(client)  # a fresh database gets every migration
        assert migrate(client) == []
        call_id = uuid.uuid4()
        now = datetime.now(UTC)
        batch = Batch(
            llm_calls=[
                LlmCall(
                    call_id=call_id,
                    ts=now,
                    upstream="openai",
                    api="openai",
                    endpoint="chat_completions",
                    method="POST",
                    path="/v1/chat/completions",
                    model="m",
                    tool_call_count=1,
                )
            ],
            tool_calls=[
                ToolCall(
                    tool_call_uid=uuid.uuid4(),
                    call_id=call_id,
                    ts=now,
                    upstream="openai",
                    model="m",
                    call_index=0,
                    tool_call_id="c1",
                    name="f",
                    raw_arguments="{}",
                    arguments="{}",
                )
            ],
        )
        insert_batch(client, batch)
        rows = runner.run(client, "recent_calls", last=5)
        assert [r["call_id"] for r in rows] == [str(call_id)]
        assert rows[0]["tool_calls"][0][2] == "f"
    finally:
        client.command(f"DROP DATABASE IF EXISTS `{database}`")
        client.close()
