"""Reading ahead in a thread: order, errors where they happened, and an early stop that frees the reader."""

from __future__ import annotations

import threading
import time

import pytest

from avatar.media.prefetch import prefetch


def test_items_come_in_order_from_another_thread():
    threads = set()

    def items():
        for i in range(100):
            threads.add(threading.current_thread().name)
            yield i

    assert list(prefetch(items(), depth=3)) == list(range(100))
    assert threading.current_thread().name not in threads


def test_a_producer_error_is_raised_at_its_item():
    def items():
        yield 1
        yield 2
        raise ValueError("frame 2 is corrupt")

    got = []
    with pytest.raises(ValueError, match="frame 2 is corrupt"):
        for x in prefetch(items()):
            got.append(x)
    assert got == [1, 2]


class _Reader:
    """An endless reader that records whether it was closed."""

    def __init__(self) -> None:
        self.produced = 0
        self.closed = threading.Event()

    def __iter__(self):
        return self

    def __next__(self):
        self.produced += 1
        return self.produced

    def close(self) -> None:
        self.closed.set()


def test_stopping_early_stops_the_producer_and_closes_the_reader():
    reader = _Reader()
    it = prefetch(reader, depth=4)
    assert [next(it) for _ in range(3)] == [1, 2, 3]
    it.close()
    assert reader.closed.is_set()
    produced = reader.produced
    time.sleep(0.2)
    assert reader.produced == produced <= 3 + 4 + 1  # no more than the queue's depth ahead, then stopped
