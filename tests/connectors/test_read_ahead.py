"""Reading the next page ahead (connectors/read_ahead.py): same items, same order, errors at
the same point, and a consumer that stops early leaves the source closed after its last
step. Real threads; the source is a generator like the clients' page readers."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from connectors.read_ahead import read_ahead


def test_items_and_order_are_the_source_s() -> None:
    assert list(read_ahead(iter(range(1000)))) == list(range(1000))
    assert list(read_ahead(iter([]))) == []


def test_the_next_item_is_read_while_the_consumer_works_on_this_one() -> None:
    asked = [threading.Event() for _ in range(4)]

    def source() -> Iterator[int]:
        for i in range(4):
            asked[i].set()
            yield i

    seen = []
    for item in read_ahead(source()):
        if item < 3:
            # The helper asks for the next item without waiting for this loop to go on.
            assert asked[item + 1].wait(5), "the next item was not read ahead"
        seen.append(item)
    assert seen == [0, 1, 2, 3]


def test_an_error_reaches_the_consumer_where_it_would_without_reading_ahead() -> None:
    def source() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("page 3 refused")

    got = []
    with pytest.raises(ValueError, match="page 3 refused"):
        for item in read_ahead(source()):
            got.append(item)
    assert got == [1, 2]


def test_stopping_early_closes_the_source_after_the_step_in_flight() -> None:
    events: list[str] = []
    release = threading.Event()

    def source() -> Iterator[int]:
        try:
            for i in range(10):
                if i == 1:
                    release.wait(5)  # the step in flight when the consumer stops
                events.append(f"read {i}")
                yield i
        finally:
            events.append("closed")  # e.g. the Bulk job is deleted

    reader = read_ahead(source())
    assert next(reader) == 0
    threading.Timer(0.05, release.set).start()
    reader.close()
    assert events == ["read 0", "read 1", "closed"]
    assert threading.current_thread().name == "MainThread"
