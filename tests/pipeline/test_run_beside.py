"""Labelling and encoding run in a second thread: order, counts and errors from either side."""

from __future__ import annotations

import threading

import pytest

from avatar.pipeline import _run_beside


def test_items_are_consumed_in_order_in_another_thread():
    seen, threads = [], set()

    def consume(x):
        seen.append(x)
        threads.add(threading.current_thread().name)

    assert _run_beside(iter(range(50)), consume) == 50
    assert seen == list(range(50)) and threading.current_thread().name not in threads


def test_a_consumer_error_stops_the_producer_and_is_raised():
    produced = []

    def items():
        for i in range(1000):
            produced.append(i)
            yield i

    def consume(x):
        if x == 3:
            raise ValueError("encoder failed")

    with pytest.raises(ValueError, match="encoder failed"):
        _run_beside(items(), consume, depth=2)
    assert len(produced) < 1000  # stopped early, not run to the end


def test_a_producer_error_is_raised_after_the_consumer_finished():
    done = []

    def items():
        yield 1
        yield 2
        raise KeyError("no face")

    with pytest.raises(KeyError, match="no face"):
        _run_beside(items(), done.append)
    assert done == [1, 2]
