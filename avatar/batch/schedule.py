"""The order jobs are handed to workers: the longest first, within a bounded look-ahead.

A batch ends when its slowest worker does. Handed out in file order, a long job that comes
last keeps one worker busy while the others idle; handed out longest first, the short jobs
fill the gaps at the end (LPT scheduling). Job files are streamed, never held, so the order is
chosen within a window of the next ``window`` jobs: a 100 000-line file costs a window of small
job records, and at the end of the file the window drains longest first.

Costs are estimates in frames, from what the job names: the driving clip's frame count, the
audio's duration or the text's length, capped by ``max_frames``. Probing a file reads its
header once per path (shared inputs are probed once).
"""

from __future__ import annotations

import heapq
import itertools
import os
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache

from .jobs import Job

_FPS = 25.0  # talk's default frame rate: the estimate's unit is a frame at this rate
_CHARS_PER_S = 14.0  # espeak-ng's default speaking rate, about 175 words a minute
# An animate frame is also decoded and tracked in the driving clip; a talk frame is only rendered.
_ANIMATE_WEIGHT = 2.0
_UNKNOWN = 250.0  # frames assumed when a file cannot be probed (ten seconds)


def _identity(path: str) -> tuple[str, int, int]:
    """The cache key of a probe: a file replaced between batches is probed again."""
    try:
        st = os.stat(path)
    except OSError:
        return path, -1, -1
    return path, st.st_mtime_ns, st.st_size


@lru_cache(maxsize=4096)
def _video_frames(identity: tuple[str, int, int]) -> float:
    from ..media.video import probe_video

    try:
        return float(probe_video(identity[0]).frame_count)
    except Exception:  # noqa: BLE001 - an estimate only: the worker reports the real error
        return _UNKNOWN


@lru_cache(maxsize=4096)
def _audio_frames(identity: tuple[str, int, int]) -> float:
    from ..media.video import audio_duration

    try:
        seconds = audio_duration(identity[0])
    except Exception:  # noqa: BLE001 - as above
        seconds = None
    return _UNKNOWN if seconds is None else seconds * _FPS


def job_cost(job: Job) -> float:
    """Estimated work of ``job``: frames to render, animate frames weighted for driving tracking."""
    options = dict(job.options)
    if job.kind == "animate":
        frames = _video_frames(_identity(job.driving)) if job.driving else _UNKNOWN
    elif job.audio:
        frames = _audio_frames(_identity(job.audio))
    else:
        frames = len(job.text or "") / _CHARS_PER_S * _FPS
    cap = options.get("max_frames")
    if isinstance(cap, (int, float)) and cap > 0:
        frames = min(frames, float(cap))
    return frames * (_ANIMATE_WEIGHT if job.kind == "animate" else 1.0)


def longest_first(jobs: Iterable[Job], window: int, cost: Callable[[Job], float] = job_cost) -> Iterator[Job]:
    """``jobs`` reordered: each one yielded is the costliest of the next ``window`` (ties: file order)."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    heap: list[tuple[float, int, Job]] = []
    order = itertools.count()
    for job in jobs:
        heapq.heappush(heap, (-cost(job), next(order), job))
        if len(heap) >= window:
            yield heapq.heappop(heap)[2]
    while heap:
        yield heapq.heappop(heap)[2]
