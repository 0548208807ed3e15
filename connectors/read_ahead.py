"""Read the next page while the current one is converted and written.

Why: a CRM read alternates waiting for the server (the request, the body arriving, and for
Salesforce Bulk the CSV parse, which Arrow does without the GIL) with work on the page just
read (typing it, dlt writing it to a Parquet file). Done one after the other, the two add
up; here the source iterator is advanced in one helper thread, one item ahead of the
consumer, so they overlap. The items, their order and the requests are the same; only when
the request for the next page is sent changes (as soon as the previous page has arrived).

An exception raised while reading ahead (a failed request, the API allocation reached) is
raised to the consumer when it asks for that item, at the same point of the iteration as
without reading ahead. A consumer that stops early makes the helper finish the one item in
flight (it is dropped), then the source is closed, so its own clean-up (deleting a Bulk
job) runs after the last request it made.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TypeVar

T = TypeVar("T")

_DONE = object()


def _advance(source: Iterator[T]) -> object:
    return next(source, _DONE)


def read_ahead(source: Iterator[T], name: str = "read-ahead") -> Iterator[T]:
    """``source``'s items, each asked for while the consumer works on the one before.

    ``source`` must not be shared: it is advanced by the helper thread only, one step at a
    time, never by two threads at once.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=name) as pool:
        pending = pool.submit(_advance, source)
        try:
            while True:
                item = pending.result()
                if item is _DONE:
                    return
                pending = pool.submit(_advance, source)
                yield item  # type: ignore[misc]
        finally:
            # Stopped early or failed: let the step in flight finish (its result is
            # dropped), then close the source here, so its clean-up runs once, after it.
            pending.cancel()
            wait([pending])
            close = getattr(source, "close", None)
            if close is not None:
                close()
