"""UUIDv7 ids: RFC 9562 layout, the creation time in the top 48 bits, ordered across milliseconds."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from types import SimpleNamespace

import pytest

from toolwatch.proxy import uuid7 as uuid7_module
from toolwatch.proxy.uuid7 import uuid7


def fake(monkeypatch: pytest.MonkeyPatch, time_ns: Callable[[], int], urandom: Callable[[int], bytes]) -> None:
    """Replace the clock and the randomness seen by uuid7 only (not the process-wide modules)."""
    monkeypatch.setattr(uuid7_module, "time", SimpleNamespace(time_ns=time_ns))
    monkeypatch.setattr(uuid7_module, "os", SimpleNamespace(urandom=urandom))
    monkeypatch.setattr(uuid7_module, "_random", b"")  # drop pooled bytes: the next id reads afresh


def test_version_and_variant() -> None:
    u = uuid7()
    assert u.version == 7
    assert u.variant == uuid.RFC_4122


def test_timestamp_is_the_creation_time_in_ms() -> None:
    before = time.time_ns() // 1_000_000
    u = uuid7()
    after = time.time_ns() // 1_000_000
    assert before <= u.int >> 80 <= after


def test_exact_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    ms = 0x0123456789AB
    fake(monkeypatch, lambda: ms * 1_000_000 + 999_999, lambda n: b"\xff" * n)
    assert str(uuid7()) == "01234567-89ab-7fff-bfff-ffffffffffff"
    fake(monkeypatch, lambda: ms * 1_000_000, lambda n: b"\x00" * n)
    assert str(uuid7()) == "01234567-89ab-7000-8000-000000000000"


def test_random_bits_are_placed_around_the_fixed_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    rand = bytes(range(1, 11))  # 80 random bits: 12 go to rand_a, the low 62 to rand_b
    fake(monkeypatch, lambda: 0, lambda n: rand[:n])
    r = int.from_bytes(rand, "big")
    u = uuid7()
    assert (u.int >> 64) & 0xFFF == (r >> 62) & 0xFFF
    assert u.int & ((1 << 62) - 1) == r & ((1 << 62) - 1)


def test_later_milliseconds_sort_later(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter(range(1_700_000_000_000, 1_700_000_000_050))
    fake(monkeypatch, lambda: next(clock) * 1_000_000, os.urandom)  # random low bits must not matter
    ids = [uuid7() for _ in range(50)]
    assert ids == sorted(ids)
    assert [str(i) for i in ids] == sorted(str(i) for i in ids)  # as text, too


def test_ids_are_unique() -> None:
    ids = {uuid7() for _ in range(10_000)}
    assert len(ids) == 10_000
