"""Helpers for the media tests: synthetic frames, sounds and raw PyAV files (not made by avatar)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import pytest


def smooth_frame(i: int, w: int = 64, h: int = 48) -> np.ndarray:
    """(h, w, 3) uint8 with smooth gradients that move with i (easy for H.264)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = 128 + 100 * np.sin((xx + 2 * i) / 16.0)
    g = 128 + 100 * np.cos((yy + i) / 12.0)
    b = np.full_like(xx, 40 + 5 * (i % 30))
    return np.stack([r, g, b], axis=-1).astype(np.uint8)


def sine(freq: float, seconds: float, sr: int, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def dominant_freq(x: np.ndarray, sr: int) -> float:
    x = x[: len(x) // 2 * 2].astype(np.float64)
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spec) * sr / len(x))


def raw_video(
    path: Path,
    frames: list[np.ndarray],
    fps: int | Fraction = 25,
    rotation: float | None = None,
    pts: list[int] | None = None,
    time_base: Fraction | None = None,
    audio: tuple[np.ndarray, int] | None = None,
    audio_delay: float = 0.0,
) -> Path:
    """Write frames (and optional mono float audio starting ``audio_delay`` s late) with PyAV directly."""
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=Fraction(fps), options={"preset": "ultrafast"})
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        if time_base is not None:
            s.codec_context.time_base = time_base
        if rotation is not None:
            s.set_display_rotation(rotation)
        a = None
        if audio is not None:
            a = c.add_stream("aac", rate=audio[1], layout="mono")
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24")
            vf.pts = pts[i] if pts is not None else i
            if time_base is not None:
                vf.time_base = time_base
            c.mux(s.encode(vf))
        c.mux(s.encode())
        if a is not None:
            samples, sr = audio
            for start in range(0, len(samples), 1024):
                chunk = samples[start : start + 1024][None, :]
                af = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp", layout="mono")
                af.sample_rate, af.pts, af.time_base = sr, start + round(audio_delay * sr), Fraction(1, sr)
                c.mux(a.encode(af))
            c.mux(a.encode())
    return path


def raw_audio(path: Path, samples: np.ndarray, sr: int, codec: str) -> Path:
    """Encode mono float audio into an audio-only file (mp3, m4a, …) with PyAV."""
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=sr, layout="mono")
        fmt = "fltp" if codec != "pcm_s16le" else "s16"
        step = 1152 if codec in ("libmp3lame", "mp3") else 1024
        for start in range(0, len(samples), step):
            chunk = samples[start : start + step][None, :]
            if fmt == "s16":
                chunk = (chunk * 32767).astype(np.int16)
            af = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format=fmt, layout="mono")
            af.sample_rate, af.pts, af.time_base = sr, start, Fraction(1, sr)
            c.mux(s.encode(af))
        c.mux(s.encode())
    return path


@pytest.fixture
def media():
    """The helpers above, as a namespace (test files import nothing from conftest)."""

    return SimpleNamespace(
        smooth_frame=smooth_frame, sine=sine, dominant_freq=dominant_freq, raw_video=raw_video, raw_audio=raw_audio
    )
