"""The ClickHouse sink: one insert per table per batch, columns named after the record fields, each
block with its deduplication token (see ``store/sink.py``).

Blocks go to the engine as bytes it parses itself in C++ (``raw_insert``), built here in a few C-speed
calls rather than value by value: the record tables as ``JSONCompactColumns`` (one orjson call per block:
UUIDs, times, maps, arrays and nulls as orjson writes them; times parsed with ``best_effort``, which keeps
their instant and drops what is finer than the column), the bodies, which are bytes and may not be UTF-8,
as ``RowBinary``. ``tests/store/test_writer.py`` checks that what is stored is what clickhouse-connect's
own ``insert`` stores.
"""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Sequence
from math import floor
from operator import itemgetter
from typing import Any

import orjson
from clickhouse_connect.driver.client import Client

from toolwatch.schemas.records import Body
from toolwatch.store.handle import StoreHandle
from toolwatch.store.sessions import SessionUpkeep
from toolwatch.store.sink import Batch

# a block inserted again with a token the table has seen is dropped, in the materialized views too
DEDUP_SETTINGS = {"deduplicate_blocks_in_dependent_materialized_views": 1}
# ISO 8601 times with their offset, as orjson writes them
JSON_SETTINGS = {"date_time_input_format": "best_effort"}
_HALF = (1 << 64) - 1


class ClickHouseSink:
    def __init__(self, store: StoreHandle) -> None:
        self.store = store
        self.sessions = SessionUpkeep(insert=insert_rows)

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
        settings: dict[str, Any] = dict(DEDUP_SETTINGS)
        if batch.token:
            settings["insert_deduplication_token"] = batch.table_token(table)
        columns = list(type(records[0]).model_fields)
        row = itemgetter(*columns)
        if not hasattr(client, "raw_insert"):  # a client that only takes rows (tests/faults wraps one)
            client.insert(table, [list(row(r.__dict__)) for r in records], column_names=columns, settings=settings)
        elif table == "bodies":
            client.raw_insert(table, columns, row_binary_bodies(records), settings=settings, fmt="RowBinary")
        else:
            values = list(zip(*(row(r.__dict__) for r in records), strict=True))
            insert_columns(client, table, columns, values, settings)
        batch.done.add(table)


def insert_columns(
    client: Client, table: str, columns: Sequence[str], values: Sequence[Sequence[Any]], settings: dict[str, Any]
) -> None:
    """Insert one block given as one sequence of values per column, each value of a type orjson writes."""
    block = orjson.dumps([_aware(column) for column in values])
    client.raw_insert(table, list(columns), block, settings={**settings, **JSON_SETTINGS}, fmt="JSONCompactColumns")


def _aware(column: Sequence[Any]) -> Sequence[Any]:
    """A column of times with those without a zone in local time, as clickhouse-connect reads them (orjson
    would write them without an offset, which the engine reads in the column's zone)."""
    if column and isinstance(column[0], dt.datetime) and any(v.tzinfo is None for v in column):
        return [v.astimezone() if v.tzinfo is None else v for v in column]
    return column


def insert_rows(
    client: Client, table: str, columns: Sequence[str], rows: list[list[Any]], settings: dict[str, Any]
) -> None:
    """``insert_columns`` of a block given row by row."""
    insert_columns(client, table, columns, list(zip(*rows, strict=True)), settings)


def row_binary_bodies(bodies: Sequence[Body]) -> bytes:
    """The bodies table's rows in RowBinary: UUID, DateTime64(3), two Strings and two Bools."""
    out = bytearray()
    for body in bodies:
        key, ts = body.call_id.int, body.ts
        ticks = floor(ts.timestamp()) * 1000 + ts.microsecond // 1000  # clickhouse-connect's count of ms
        out += struct.pack("<QQq", key >> 64, key & _HALF, ticks)
        for data in (body.request_body, body.response_body):
            _varint(out, len(data))
            out += data
        out += struct.pack("<??", body.request_truncated, body.response_truncated)
    return bytes(out)


def _varint(out: bytearray, n: int) -> None:
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
