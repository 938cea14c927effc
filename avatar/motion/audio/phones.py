"""Timed phones, and the conversion of espeak-ng phoneme events into them.

A :class:`Phone` interval is the time the articulation is held. For bilabials (P, B, M)
it is exactly the time the lips are closed, whatever the source's own convention.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .visemes import espeak_to_arpabet


@dataclass(frozen=True, slots=True)
class Phone:
    """One ARPAbet phone ("SIL" for a pause) from ``start`` to ``end`` seconds."""

    phone: str
    start: float
    end: float


_VOWELS = frozenset("AA AE AH AO AW AX AY EH ER EY IH IY OW OY UH UW".split())
_RELEASE_HOLD = 0.005  # lips stay shut 5 ms past a stop's release event


def from_espeak(events: Sequence[tuple[str, float]], duration: float) -> list[Phone]:
    """Phones from espeak-ng events ``(mnemonic, start s)``; the audio lasts ``duration`` s.

    espeak-ng places a stop's event at its release, with the silent closure made before it
    (a voiced stop after a vowel is the exception: its event marks the closure start).
    The closure is given Rhubarb's length: half the previous phone, clamped to 40..120 ms.
    The aspiration after the release becomes a low-dominance HH.
    """
    raw: list[tuple[str, float]] = []
    for sym, t in events:
        for k, ph in enumerate(espeak_to_arpabet(sym)):
            raw.append((ph, t))
    # Consecutive phones from one mnemonic share a time: split the interval evenly later.
    spans: list[list] = []
    for ph, t in raw:
        spans.append([ph, t, None])
    for i, s in enumerate(spans):
        s[2] = spans[i + 1][1] if i + 1 < len(spans) else max(duration, s[1])
    # Spread groups that share a start over the interval to the next distinct start.
    i = 0
    while i < len(spans):
        j = i
        while j + 1 < len(spans) and spans[j + 1][1] == spans[i][1]:
            j += 1
        if j > i:
            t0, t1 = spans[i][1], spans[j][2]
            n = j - i + 1
            for k in range(n):
                spans[i + k][1] = t0 + (t1 - t0) * k / n
                spans[i + k][2] = t0 + (t1 - t0) * (k + 1) / n
        i = j + 1

    out: list[Phone] = []
    for i, (ph, t0, t1) in enumerate(spans):
        prev = out[-1] if out else None
        if ph in ("P", "B") and not (ph == "B" and prev is not None and prev.phone in _VOWELS):
            prev_dur = (prev.end - prev.start) if prev is not None else 0.16
            clo = min(0.12, max(0.04, 0.5 * prev_dur))
            c0 = max(0.0, t0 - clo)
            if prev is not None:
                c0 = max(c0, prev.start + 0.3 * (prev.end - prev.start))
                out[-1] = Phone(prev.phone, prev.start, c0)
            c1 = min(t0 + _RELEASE_HOLD, t1)
            out.append(Phone(ph, c0, c1))
            if t1 > c1:
                out.append(Phone("HH", c1, t1))
            continue
        if ph in _VOWELS and prev is not None and prev.phone == "M":
            # The vowel event after a nasal comes ~10 ms after its onset transition.
            shift = min(0.010, 0.5 * (prev.end - prev.start))
            out[-1] = Phone("M", prev.start, prev.end - shift)
            t0 = t0 - shift
        out.append(Phone(ph, t0, t1))
    return fill_silence(out, duration)


def fill_silence(phones: Sequence[Phone], duration: float) -> list[Phone]:
    """Sorted phones with SIL filling every gap and both ends, covering [0, duration]."""
    out: list[Phone] = []
    t = 0.0
    for p in sorted(phones, key=lambda p: p.start):
        s, e = max(p.start, t), max(p.end, t)
        if s > t + 1e-4:
            out.append(Phone("SIL", t, s))
        if e > s:
            out.append(Phone(p.phone, s, e))
        t = max(t, e)
    if duration > t + 1e-4:
        out.append(Phone("SIL", t, duration))
    # Merge adjacent silences.
    merged: list[Phone] = []
    for p in out:
        if merged and merged[-1].phone == "SIL" and p.phone == "SIL":
            merged[-1] = Phone("SIL", merged[-1].start, p.end)
        else:
            merged.append(p)
    return merged
