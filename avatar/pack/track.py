"""Follow the face through a video in one streaming pass (bounded memory for any length).

Every frame is decoded (rotation applied, presentation times kept, so variable frame rate and
phone videos need nothing special); every ``stride``-th one is tracked with mediapipe in video
mode. Per tracked frame the track keeps its time, landmarks (float16), how many faces were
seen and :func:`avatar.pack.features.face_features`; where the clip has sound, 20-band log-mel
and loudness per tracked frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..face.landmarks import LandmarkDetector
from ..media.video import VideoInfo, probe_video, read_frames
from .features import FEATURE_DIMS, face_features

AUDIO_BANDS = 20


@dataclass
class Track:
    """What :func:`track_video` saw. Arrays have one row per tracked frame.

    frame_index: decode index of the frame; times: presentation time (s); landmarks: (N, 478, 3)
    float16 frame pixels, NaN where no face; faces: faces seen; features: (N, D) float32, NaN
    rows where no face; audio: (N, 20) log-mel bands (None without sound); loudness: (N,) dB.
    """

    info: VideoInfo
    frame_index: np.ndarray
    times: np.ndarray
    landmarks: np.ndarray
    faces: np.ndarray
    features: np.ndarray
    audio: np.ndarray | None = None
    loudness: np.ndarray | None = None

    @property
    def found(self) -> np.ndarray:
        return ~np.isnan(self.features[:, 0])

    def face_heights(self) -> np.ndarray:
        """(N,) landmark box height in frame pixels (NaN where no face)."""
        out = np.full(len(self.landmarks), np.nan, np.float32)
        ys = self.landmarks[self.found, :, 1].astype(np.float32)
        out[self.found] = ys.max(1) - ys.min(1) if len(ys) else 0.0
        return out


def tracking_stride(fps: float, track_fps: float) -> int:
    """Track every n-th frame so that about ``track_fps`` frames per second are tracked."""
    return max(1, int(round(fps / track_fps))) if track_fps > 0 else 1


def track_video(path: str | Path, *, track_fps: float = 15.0, start: float = 0.0, end: float | None = None,
                max_faces: int = 2, on_frame: Callable[[int], None] | None = None) -> Track:
    """Track the face of ``path`` between ``start`` and ``end`` seconds (see the module docstring)."""
    info = probe_video(path)
    stride = tracking_stride(info.fps, track_fps)
    idx, times, lms, faces, feats = [], [], [], [], []
    empty = np.full((478, 3), np.nan, np.float16)
    with LandmarkDetector(video=True, max_faces=max_faces) as det, read_frames(path) as reader:
        for i, frame in enumerate(reader):
            t = reader.time
            if end is not None and t >= end:
                break
            if t < start or i % stride:
                continue
            found = det.detect(frame)
            idx.append(i)
            times.append(t)
            faces.append(len(found))
            if found:
                lm = found[0].landmarks
                lms.append(lm.astype(np.float16))
                feats.append(face_features(lm))
            else:
                lms.append(empty)
                feats.append(np.full(FEATURE_DIMS, np.nan, np.float32))
            if on_frame:
                on_frame(i)
    track = Track(info, np.asarray(idx, np.int64), np.asarray(times, np.float64),
                  np.stack(lms) if lms else np.zeros((0, 478, 3), np.float16), np.asarray(faces, np.int8),
                  np.stack(feats) if feats else np.zeros((0, FEATURE_DIMS), np.float32))
    if info.has_audio and len(times):
        track.audio, track.loudness = audio_features(path, track.times, info.fps / stride)
    return track


def audio_features(path: str | Path, times: np.ndarray, rate: float) -> tuple[np.ndarray, np.ndarray] | tuple[None, None]:
    """(N, 20) log-mel bands and (N,) loudness in dB around each of ``times`` (window 1 / rate).

    Streamed chunk by chunk (the 80-band log-mel of a long clip would take ~1 GB at once): only
    20 bands and the mean square per 10 ms are kept."""
    from ..errors import InputError
    from ..media.video import iter_audio
    from ..motion.audio.features import FRAME_RATE, HOP, N_MELS, StreamingLogMel

    mel, bands, power, rest = StreamingLogMel(), [], [], np.zeros(0, np.float32)
    try:
        for chunk in iter_audio(path, 16000):
            m = mel.push(chunk)
            if len(m):
                bands.append(m.reshape(len(m), AUDIO_BANDS, N_MELS // AUDIO_BANDS).mean(-1))
            buf = np.concatenate([rest, chunk])
            n = len(buf) // HOP
            power.append((buf[: n * HOP].reshape(n, HOP).astype(np.float64) ** 2).mean(1))
            rest = buf[n * HOP:]
    except InputError:
        return None, None
    if not bands:
        return None, None
    bands_all = np.concatenate(bands)
    power_all = np.concatenate(power)
    half = max(1, int(round(FRAME_RATE / rate / 2)))
    centre = np.clip(np.round(np.asarray(times) * FRAME_RATE).astype(int), 0, len(bands_all) - 1)
    lo, hi = np.clip(centre - half, 0, len(bands_all)), np.clip(centre + half + 1, 0, len(bands_all))
    cs = np.concatenate([np.zeros((1, AUDIO_BANDS)), np.cumsum(bands_all, 0, dtype=np.float64)])
    feats = ((cs[hi] - cs[lo]) / np.maximum(hi - lo, 1)[:, None]).astype(np.float16)
    cp = np.concatenate([[0.0], np.cumsum(power_all)])
    lo_p, hi_p = np.clip(lo, 0, len(power_all)), np.clip(hi, 0, len(power_all))
    ms = (cp[hi_p] - cp[lo_p]) / np.maximum(hi_p - lo_p, 1)
    return feats, (10 * np.log10(ms + 1e-10)).astype(np.float32)
