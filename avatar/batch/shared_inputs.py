"""Inputs shared by many jobs, read once per worker.

One driving video used by 1 000 jobs is decoded and face-tracked once per worker: the
:class:`TrackCache` keeps each clip's landmarks (small) and, under a byte budget, its decoded
frames, keyed by path, size and mtime (a changed file is read again). :class:`CachingAnimator`
is an :class:`~avatar.pipeline.Animator` that reads driving clips through that cache, so a
batch job renders exactly what a single run renders.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..pipeline import Animator, StageTimer


@dataclass
class _Track:
    landmarks: list[np.ndarray | None]
    frames: list[np.ndarray] | None  # None when the clip is over the byte budget
    nbytes: int


class TrackCache:
    """LRU of tracked driving clips, holding at most ``max_bytes`` of decoded frames."""

    def __init__(self, max_bytes: int = 512 << 20) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple, _Track] = OrderedDict()
        self.hits = self.misses = 0

    @staticmethod
    def key(path: str | Path, max_frames: int | None, detector: tuple) -> tuple:
        st = os.stat(path)
        return (os.path.abspath(path), st.st_size, st.st_mtime_ns, max_frames, detector)

    def get(self, key: tuple, count: bool = True) -> _Track | None:
        track = self._items.get(key)
        if track is not None:
            self._items.move_to_end(key)
        if count:
            self.hits += track is not None
            self.misses += track is None
        return track

    def put(self, key: tuple, track: _Track) -> None:
        self._items[key] = track
        while sum(t.nbytes for t in self._items.values()) > self.max_bytes and len(self._items) > 1:
            self._items.popitem(last=False)


class CachingAnimator(Animator):
    """An Animator whose driving clips come from a per-worker :class:`TrackCache`."""

    def __init__(self, *args: Any, cache: TrackCache, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cache = cache

    def _cache_key(self, path: str | Path, max_frames: int | None) -> tuple:
        face = self.config.face
        return TrackCache.key(path, max_frames, (face.backend, face.min_confidence, face.face_index))

    def _track(self, path: str | Path, max_frames: int | None,
               timer: StageTimer | None = None) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        key = self._cache_key(path, max_frames)
        track = self.cache.get(key)
        if track is not None:
            frames = track.frames if track.frames is not None else super()._frames(path, max_frames)
            yield from zip(frames, track.landmarks)
            return
        frames: list[np.ndarray] | None = []
        landmarks: list[np.ndarray | None] = []
        nbytes = 0
        for frame, lm in super()._track(path, max_frames, timer):
            landmarks.append(lm)
            if frames is not None:
                nbytes += frame.nbytes
                if nbytes <= self.cache.max_bytes:
                    frame.setflags(write=False)  # shared by later jobs: nothing may draw on it
                    frames.append(frame)
                else:
                    frames = None
            yield frame, lm
        self.cache.put(key, _Track(landmarks, frames, nbytes if frames is not None else 0))

    def _frames(self, path: str | Path, max_frames: int | None) -> Iterable[np.ndarray]:
        track = self.cache.get(self._cache_key(path, max_frames), count=False)
        if track is not None and track.frames is not None:
            return iter(track.frames)
        return super()._frames(path, max_frames)
