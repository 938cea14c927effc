"""Vocal effort: how loud each moment is against the speaker's own running level, as a mouth-opening gain.

People open wider when they speak up, but a recording's absolute level says little (microphone
gain, distance, codec). So the level of each 10 ms feature frame is compared with a causal,
slowly adapting estimate of the speaker's speech level: normal speech sits near 0 dB, a shout
well above it, a murmur below. :func:`effort_gain` turns that into a factor on openness, so
the mouth is modest for most syllables and wide only where the speech is loud and open (a flat
factor for ordinary speech keeps the synthetic benchmark's correlation with the rule targets).
Offline and streaming run the same :class:`SpeechLevel`, frame by frame.
"""

from __future__ import annotations

import numpy as np

DB_PER_NEPER = 10.0 / np.log(10.0)
# Frames within this many dB of the running level (or above it) update it; quieter ones are
# consonants, pauses and noise, which should not pull the level down.
_UPDATE_WINDOW_DB = 12.0
_FLOOR_DB = -35.0  # ≈ -60 dBFS: below this (digital silence, hiss) nothing is speech
SILENT_DB = _FLOOR_DB
_SLOW = 1.0 / 300.0  # ≈ 3 s time constant at 100 frames/s
_FAST_FRAMES = 30  # the first speech frames set the level quickly
GAIN_NORMAL = 0.6  # openness factor for ordinary speech (at or below the running level + _LOUD_DB)
_LOUD_DB = 6.0  # stressed syllables reach ~+6 dB; only speech louder than that opens wider
GAIN_PER_DB = 0.03
GAIN_MAX = 1.0


def frame_db(mel: np.ndarray) -> np.ndarray:
    """(F, n_mels) natural-log mel power → (F,) frame level in dB (arbitrary reference)."""
    m = np.asarray(mel, np.float64)
    top = m.max(axis=1, keepdims=True)
    return (top[:, 0] + np.log(np.exp(m - top).sum(axis=1))) * DB_PER_NEPER


class SpeechLevel:
    """Causal running speech level; ``push(mel)`` → each frame's level relative to it, in dB."""

    def __init__(self) -> None:
        self.level: float | None = None
        self._updates = 0

    def push(self, mel: np.ndarray) -> np.ndarray:
        return self.push_db(frame_db(mel) if len(mel) else np.zeros(0))

    def push_db(self, db: np.ndarray) -> np.ndarray:
        """As :meth:`push`, from frame levels already computed (:func:`frame_db`)."""
        out = np.zeros(len(db), np.float32)
        for i, d in enumerate(db.tolist()):
            if d > _FLOOR_DB and (self.level is None or d > self.level - _UPDATE_WINDOW_DB):
                if self.level is None:
                    self.level = float(d)
                rate = 1.0 / (self._updates + 2) if self._updates < _FAST_FRAMES else _SLOW
                self.level += rate * (float(d) - self.level)
                self._updates += 1
            out[i] = 0.0 if self.level is None else d - self.level
        return out


def effort_gain(relative_db: np.ndarray | float) -> np.ndarray:
    """Openness factor for a level relative to the speaker's running level (dB): flat for ordinary
    speech (quieter syllables already open less in the network's and the rules' openness), rising
    for speech well above the speaker's level (a raised voice, a shout)."""
    loud = np.maximum(np.asarray(relative_db, np.float64) - _LOUD_DB, 0.0)
    return np.minimum(GAIN_NORMAL + GAIN_PER_DB * loud, GAIN_MAX)


def frame_gains(audio16k: np.ndarray, fps: float, num_frames: int, lead_s: float = 0.0) -> np.ndarray:
    """(num_frames,) effort gains at t = k / fps + ``lead_s`` for a whole signal (the offline rule paths)."""
    from . import features as feat  # noqa: PLC0415

    rel = SpeechLevel().push(feat.logmel(audio16k))
    if len(rel) == 0:
        return np.full(num_frames, GAIN_NORMAL)
    t = (np.arange(num_frames) / fps + lead_s) * feat.FRAME_RATE
    return effort_gain(np.interp(t, np.arange(len(rel)), rel))


# Openness normalisation: speakers (and the network's confidence on their voices) differ, but a
# talking face's openings have a typical spread. The running 90th percentile of the speaking
# frames' openness is tracked causally and mapped to OPEN_P90, so every voice gets a real
# speaker's distribution of openings; the slow tracker keeps short-term contrasts (a shout).
OPEN_P90 = 0.8
_SPEAKING = 0.05
_Q_STEP = 0.004  # per 100 Hz frame: adapts within a few seconds of speech
_SCALE_MIN, _SCALE_MAX = 0.6, 1.8


class OpeningNorm:
    """Causal ``push(openness) -> scaled openness`` at 100 Hz (see :data:`OPEN_P90`)."""

    def __init__(self) -> None:
        self.p90 = OPEN_P90

    def push(self, openness: np.ndarray) -> np.ndarray:
        out = []
        q = self.p90
        for o in np.asarray(openness, np.float64).tolist():  # plain floats: ~10x faster than numpy scalars
            if o > _SPEAKING:
                q = max(q + _Q_STEP * (0.9 - (o <= q)), 0.05)
            out.append(min(o * min(max(OPEN_P90 / q, _SCALE_MIN), _SCALE_MAX), 1.0))
        self.p90 = q
        return np.array(out, np.float32)
