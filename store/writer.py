"""The ClickHouse sink: one insert per table per batch, columns named after the record fields, each
block with its deduplication token (see ``store/sink.py``)."""

from __future__ import annotations

from typing import Any

from clickhouse_connect.driver.client import Client

from toolwatch.store.handle import StoreHandle
from toolwatch.store.sessions import SessionUpkeep
from toolwatch.store.sink import Batch

# a block inserted again with a token the table has seen is dropped, in the materialized views too
DEDUP_SETTINGS = {"deduplicate_blocks_in_dependent_materialized_views": 1}


class ClickHouseSink:
    def __init__(self, store: StoreHandle) -> None:
        self.store = store
        self.sessions = SessionUpkeep()

    def write(self, batch: Batch) -> None:
        self.store.run(lambda client: insert_batch(client, batch))

    def fold_sessions(self, batch: Batch) -> None:
        """After the batch's event tables are stored: the session rows it changes (``store/sessions.py``)."""
        self.store.run(lambda client: self.sessions.fold(client, batch.llm_calls, batch.tool_results, batch.token))

    def reachable(self) -> bool:
        """Whether the store answers at all: tells a store outage from a batch it refuses."""
        try:
            self.store.run(lambda client: client.command("SELECT 1"))
        except Exception:  # noqa: BLE001 - any failure means: not reachable now
            return False
        return True

    def shutdown(self) -> None:
        self.store.close()


def insert_batch(client: Client, batch: Batch) -> None:
    for table, records in batch.tables().items():
        if not records or table in batch.done:
            continue
        columns = list(type(records[0]).model_fields)
        rows = [_row(r, columns) for r in records]
        settings: dict[str, Any] = dict(DEDUP_SETTINGS)
        if batch.token:
            settings["insert_deduplication_token"] = batch.table_token(table)
        client.insert(table, rows, column_names=columns, settings=settings)
        batch.done.add(table)


def _row(record: Any, columns: list[str]) -> list[object]:
    values = record.__dict__
    return [values[c] for c in columns]
