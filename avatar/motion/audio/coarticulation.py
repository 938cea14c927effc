"""Phones → coarticulated mouth tracks: Cohen–Massaro dominance blending plus hard closures.

Each segment pulls the mouth towards its viseme's targets with a dominance that is flat
inside the segment and decays exponentially outside it (anticipation τ 40 ms before,
carry-over τ 30 ms after). The blend is the dominance-weighted mean, continuous in time.
Bilabials (P/B/M) and pauses of at least 150 ms then close the lips exactly: openness is
multiplied by a gate that is 0 over the closure and rises over 30 ms raised-cosine ramps.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .phones import Phone
from .visemes import VISEME_INDEX, VISEMES, arpabet_visemes


@dataclass(frozen=True, slots=True)
class CoarticulationConfig:
    """Rule parameters (seconds)."""

    anticipation: float = 0.040
    carryover: float = 0.030
    ramp: float = 0.030
    long_pause: float = 0.150
    pause_inset: float = 0.040
    short_pause_dominance: float = 0.05
    diphthong_split: float = 0.6


@dataclass(frozen=True, slots=True)
class Segment:
    """One viseme held from ``start`` to ``end``; ``closure`` marks lips shut over it."""

    viseme: int
    start: float
    end: float
    dominance: float
    closure: tuple[float, float] | None = None


@dataclass(frozen=True, eq=False)
class MouthTracks:
    """Per-sample tracks, each (T,): openness 0..1, rounding -1..1, closed 0..1, viseme index."""

    openness: np.ndarray
    rounding: np.ndarray
    closed: np.ndarray
    viseme: np.ndarray


def segments_from_phones(phones: Sequence[Phone], cfg: CoarticulationConfig = CoarticulationConfig()) -> list[Segment]:
    """Viseme segments (diphthongs split, pause rules applied) from gap-free timed phones."""
    segs: list[Segment] = []
    last = len(phones) - 1
    for i, p in enumerate(phones):
        if p.end <= p.start:
            continue
        names = arpabet_visemes(p.phone)
        if names == ("sil",):
            dur = p.end - p.start
            edge = i == 0 or i == last
            if dur >= cfg.long_pause or edge:
                a, b = p.start + cfg.pause_inset, p.end - cfg.pause_inset
                # Utterance edges: the mouth is shut before the first and after the last phone.
                if i == 0:
                    a = p.start - 1.0
                if i == last:
                    b = p.end + 1.0
                segs.append(Segment(VISEME_INDEX["sil"], p.start, p.end, VISEMES[0].dominance, (a, b)))
            else:
                segs.append(Segment(VISEME_INDEX["sil"], p.start, p.end, cfg.short_pause_dominance))
            continue
        bounds = [p.start, p.end] if len(names) == 1 else [p.start, p.start + cfg.diphthong_split * (p.end - p.start), p.end]
        for k, n in enumerate(names):
            v = VISEMES[VISEME_INDEX[n]]
            a, b = bounds[k], bounds[k + 1]
            segs.append(Segment(VISEME_INDEX[n], a, b, v.dominance, (a, b) if v.bilabial else None))
    return segs


def _closure_gate(segs: Sequence[Segment], t: np.ndarray, ramp: float) -> np.ndarray:
    """(T,) 0..1: 1 where the lips are closed, raised-cosine ramps of ``ramp`` s around closures."""
    bump = np.zeros_like(t)
    for s in segs:
        if s.closure is None:
            continue
        a, b = s.closure
        if b <= a:
            continue
        lo, hi = np.searchsorted(t, [a - ramp, b + ramp])
        if hi <= lo:
            continue
        tt = t[lo:hi]
        d = np.maximum(a - tt, tt - b).clip(min=0.0)  # distance outside [a, b]
        v = 0.5 * (1.0 + np.cos(np.pi * np.minimum(d / ramp, 1.0)))
        bump[lo:hi] = np.maximum(bump[lo:hi], v)
    return bump


def mouth_tracks(segs: Sequence[Segment], times: np.ndarray, cfg: CoarticulationConfig = CoarticulationConfig()) -> MouthTracks:
    """Sample the coarticulated tracks at sorted ``times`` (T,) seconds."""
    t = np.asarray(times, dtype=np.float64)
    num_o = np.zeros_like(t)
    num_r = np.zeros_like(t)
    den = np.full_like(t, 1e-9)
    best = np.zeros_like(t)
    vis = np.zeros(t.shape, dtype=np.int64)
    reach_a, reach_c = 6.0 * cfg.anticipation, 6.0 * cfg.carryover
    for s in segs:
        lo, hi = np.searchsorted(t, [s.start - reach_a, s.end + reach_c])
        if hi <= lo:
            continue
        tt = t[lo:hi]
        w = np.where(tt < s.start, np.exp(-(s.start - tt) / cfg.anticipation),
                     np.where(tt > s.end, np.exp(-(tt - s.end) / cfg.carryover), 1.0)) * s.dominance
        v = VISEMES[s.viseme]
        num_o[lo:hi] += w * v.openness
        num_r[lo:hi] += w * v.rounding
        den[lo:hi] += w
        inside = (tt >= s.start) & (tt < s.end)
        upd = inside & (w >= best[lo:hi])
        vis[lo:hi][upd] = s.viseme
        best[lo:hi][upd] = w[upd]
    closed = _closure_gate(segs, t, cfg.ramp)
    openness = (num_o / den) * (1.0 - closed)
    rounding = num_r / den
    return MouthTracks(openness.astype(np.float32), rounding.astype(np.float32), closed.astype(np.float32), vis)


def frame_tracks(phones: Sequence[Phone], fps: float, num_frames: int,
                 cfg: CoarticulationConfig = CoarticulationConfig(), lead_s: float = 0.0) -> MouthTracks:
    """Tracks at render frames t = k / fps, k < num_frames, showing the mouth of the phones at t + ``lead_s``.

    A bilabial closure shorter than a frame period could fall between two frames; the frame
    nearest its middle is then closed, so every closure is seen.
    """
    segs = segments_from_phones(phones, cfg)
    if lead_s:
        segs = [dataclasses.replace(s, start=s.start - lead_s, end=s.end - lead_s,
                                    closure=None if s.closure is None else (s.closure[0] - lead_s, s.closure[1] - lead_s))
                for s in segs]
    times = np.arange(num_frames, dtype=np.float64) / fps
    tr = mouth_tracks(segs, times, cfg)
    if num_frames == 0:
        return tr
    for s in segs:
        if s.closure is None or not VISEMES[s.viseme].bilabial:
            continue
        a, b = s.closure
        k0 = int(np.ceil(a * fps - 1e-9))
        if k0 * 1.0 / fps <= b:
            continue  # a frame already falls inside the closure
        k = int(round(0.5 * (a + b) * fps))
        if 0 <= k < num_frames:
            tr.openness[k] = 0.0
            tr.closed[k] = 1.0
            tr.viseme[k] = s.viseme
    return tr
