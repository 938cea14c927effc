"""This person's audio-to-mouth amplitude, measured at clone time from the clip's own sound.

The talk pipeline's generic audio-to-mouth network is run on the clip's audio; the spread of the
mouth opening it predicts (p90 - p10) is compared with the spread of the opening actually tracked
in the clip. Their ratio is the person's ``mouth_gain``: a speaker who barely opens the mouth gets
a gain below 1, so a talking video avatar keeps their own amplitude. A few seconds on CPU.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .features import face_features, opening
from .track import Track

log = logging.getLogger(__name__)

MAX_SECONDS = 30.0          # audio used for calibration (enough for a stable percentile)
GAIN_RANGE = (0.05, 3.0)    # beyond this the track or the audio is more likely wrong than the person


def calibrate_mouth(video: str | Path, track: Track, start: float = 0.0) -> dict:
    """``{"mouth_gain": g, "seconds": s}``, or ``{"skipped": reason}`` when it cannot be measured
    (no audio, too little speech, no face)."""
    from ..media.video import iter_audio
    from ..motion.audio.drive import LiveSpeech

    if track.audio is None or track.loudness is None or not track.info.has_audio:
        return {"skipped": "the clip has no audio"}
    found = track.found
    if found.sum() < 10:
        return {"skipped": "too few tracked frames"}
    first = float(track.times[found][0])
    t0 = max(start, first)
    pcm: list[np.ndarray] = []
    parts, need = 0, int(MAX_SECONDS * 16000)
    skip = int(t0 * 16000)
    for chunk in iter_audio(video, 16000):
        if skip >= len(chunk):
            skip -= len(chunk)
            continue
        chunk, skip = chunk[skip:], 0
        pcm.append(chunk)
        parts += len(chunk)
        if parts >= need:
            break
    if not pcm:
        return {"skipped": "the clip's audio is empty"}
    audio = np.concatenate(pcm)[:need].astype(np.float32)
    dt = np.diff(track.times[found])
    fps = float(1.0 / np.median(dt)) if len(dt) else 15.0
    lm = track.landmarks[np.flatnonzero(found)[0]].astype(np.float32)
    speech = LiveSpeech(lm, fps=fps, seed=0, head_amplitude=0.0, blink_rate=0.0)
    targets = list(speech.push(audio)) + list(speech.flush())
    pred = np.array([face_features(t)[3] for t in targets], np.float32)
    sel = found & (track.times >= t0) & (track.times < t0 + len(audio) / 16000)
    idx = np.round((track.times[sel] - t0) * fps).astype(int)
    ok = idx < len(pred)
    real = opening(track.features[sel][ok])
    pred = pred[idx[ok]]
    if len(real) < 10:
        return {"skipped": "too little footage with sound"}
    real_amp = float(np.percentile(real, 90) - np.percentile(real, 10))
    pred_amp = float(np.percentile(pred, 90) - np.percentile(pred, 10))
    if pred_amp < 1e-3:
        return {"skipped": "the clip's audio holds no speech"}
    gain = float(np.clip(real_amp / pred_amp, *GAIN_RANGE))
    return {"mouth_gain": round(gain, 4), "seconds": round(len(audio) / 16000, 2),
            "real_spread": round(real_amp, 4), "predicted_spread": round(pred_amp, 4)}
