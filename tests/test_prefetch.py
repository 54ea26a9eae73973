"""io.prefetch: read ahead in a thread, same items in the same order, errors in place."""

from __future__ import annotations

import threading
import time

import pytest

from medaka_heart.io.prefetch import prefetched


def _threads() -> set[str]:
    return {t.name for t in threading.enumerate()}


def test_items_come_in_order_and_the_thread_ends():
    assert list(prefetched(iter(range(50)), ahead=3)) == list(range(50))
    assert "medaka-heart-read-ahead" not in _threads()


def test_reading_runs_ahead_of_the_consumer():
    produced = []

    def slow_source():
        for i in range(4):
            produced.append(i)
            yield i

    items = prefetched(slow_source(), ahead=2)
    assert next(items) == 0
    deadline = time.monotonic() + 5
    while len(produced) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(produced) == 3  # one taken, two waiting: read while the first was worked on
    assert list(items) == [1, 2, 3]


def test_an_error_is_raised_in_its_place():
    def broken():
        yield 1
        yield 2
        raise ValueError("frame 3 cannot be decoded")

    items = prefetched(broken())
    assert [next(items), next(items)] == [1, 2]
    with pytest.raises(ValueError, match="frame 3"):
        next(items)
    assert "medaka-heart-read-ahead" not in _threads()


def test_leaving_early_stops_the_thread_and_closes_the_source():
    closed = threading.Event()

    def endless():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    items = prefetched(endless(), ahead=2)
    assert [next(items) for _ in range(3)] == [0, 1, 2]
    items.close()
    assert closed.is_set()  # the decoder let go of its file
    assert "medaka-heart-read-ahead" not in _threads()
