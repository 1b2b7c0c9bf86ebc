"""The ClickHouse sink: one insert per table per batch, columns named after the record fields."""

from __future__ import annotations

from clickhouse_connect.driver.client import Client
from pydantic import BaseModel

from toolwatch.store.handle import StoreHandle
from toolwatch.store.sink import Batch


class ClickHouseSink:
    def __init__(self, store: StoreHandle) -> None:
        self.store = store

    def write(self, batch: Batch) -> None:
        self.store.run(lambda client: insert_batch(client, batch))

    def shutdown(self) -> None:
        self.store.close()


def insert_batch(client: Client, batch: Batch) -> None:
    for table, records in batch.tables().items():
        if not records:
            continue
        columns = list(type(records[0]).model_fields)
        rows = [_row(r, columns) for r in records]
        client.insert(table, rows, column_names=columns)


def _row(record: BaseModel, columns: list[str]) -> list[object]:
    values = record.__dict__
    return [values[c] for c in columns]
