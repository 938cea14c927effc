"""Read ahead in a second thread: decoding (PyAV, swscale) releases the GIL, so frame i+1
decodes while frame i is tracked or rendered."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_END = object()


class _Failed:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def prefetch(items: Iterable[T], depth: int = 8) -> Iterator[T]:
    """``items`` in order, produced up to ``depth`` ahead by a thread.

    An exception of the producer is raised here, at the item where it happened. Closing the
    returned generator early stops the producer at its next item and closes ``items`` if it
    can be closed (a video reader releases its file).
    """
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def put(x: object) -> bool:
        while not stop.is_set():
            try:
                q.put(x, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for x in items:
                if not put(x):
                    return
            put(_END)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer's thread
            put(_Failed(exc))
        finally:
            close = getattr(items, "close", None)
            if callable(close):
                close()

    worker = threading.Thread(target=run, name="avatar-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            x = q.get()
            if x is _END:
                return
            if isinstance(x, _Failed):
                raise x.exc
            yield x
    finally:
        stop.set()
        worker.join()
