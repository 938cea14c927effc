"""Log-mel features at 100 frames/s, computed identically offline and incrementally.

16 kHz audio, 25 ms Hann window, 10 ms hop, FFT 512, 80 mel bands over 40..7600 Hz,
natural log of power + 1e-6. The signal is preceded by half a window of zeros, so frame
j is centred on t = j * 10 ms. Offline and streaming share :func:`logmel_frames`; the
streamer only keeps the last 240 samples between calls, so both give the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

SAMPLE_RATE = 16000
HOP = 160
WIN = 400
N_FFT = 512
N_MELS = 80
FMIN, FMAX = 40.0, 7600.0
FRAME_RATE = SAMPLE_RATE / HOP  # 100 frames per second
_LOG_FLOOR = 1e-6


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa's default, ``htk=False``): linear below 1 kHz, log above."""
    f = np.asarray(f, np.float64)
    lin = f / (200.0 / 3)
    return np.where(f >= 1000.0, 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (np.log(6.4) / 27.0), lin)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, np.float64)
    return np.where(m >= 15.0, 1000.0 * np.exp(np.log(6.4) / 27.0 * (m - 15.0)), m * (200.0 / 3))


@lru_cache(maxsize=1)
def _mel_basis() -> np.ndarray:
    """(80, 257) Slaney-normalised triangular mel filters, equal to ``librosa.filters.mel(sr=16000,
    n_fft=512, n_mels=80, fmin=40, fmax=7600)`` (tested); written out because importing librosa
    (and numba with it) costs about a second of every ``avatar talk``."""
    fft_hz = np.fft.rfftfreq(N_FFT, 1.0 / SAMPLE_RATE)
    mel_hz = _mel_to_hz(np.linspace(_hz_to_mel(FMIN), _hz_to_mel(FMAX), N_MELS + 2))
    gaps = np.diff(mel_hz)
    ramps = mel_hz[:, None] - fft_hz[None, :]
    lower = -ramps[:-2] / gaps[:-1, None]
    upper = ramps[2:] / gaps[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_hz[2:] - mel_hz[:-2]))[:, None]
    return weights.astype(np.float32)


@lru_cache(maxsize=1)
def _window() -> np.ndarray:
    """Periodic Hann window (``scipy.signal.get_window("hann", 400)``)."""
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(WIN) / WIN)).astype(np.float32)


def logmel_frames(frames: np.ndarray, floor: float = _LOG_FLOOR) -> np.ndarray:
    """(F, 400) windows of 16 kHz audio → (F, 80) float32 log-mel (natural log of power + ``floor``)."""
    spec = np.fft.rfft(frames.astype(np.float32) * _window(), n=N_FFT, axis=1)
    power = (spec.real**2 + spec.imag**2).astype(np.float32)
    return np.log(power @ _mel_basis().T + floor).astype(np.float32)


def num_frames(num_samples: int) -> int:
    """Feature frames for ``num_samples`` of audio (frame j needs samples up to 160 j + 200)."""
    return max(0, (num_samples - WIN // 2) // HOP + 1) if num_samples >= WIN // 2 else 0


def logmel(audio: np.ndarray, floor: float = _LOG_FLOOR) -> np.ndarray:
    """(N,) float32 16 kHz mono → (F, 80) log-mel, F = :func:`num_frames` (N)."""
    x = np.concatenate([np.zeros(WIN // 2, np.float32), np.asarray(audio, np.float32)])
    f = num_frames(len(audio))
    if f == 0:
        return np.zeros((0, N_MELS), np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(x[: (f - 1) * HOP + WIN], WIN)[::HOP]
    return logmel_frames(np.ascontiguousarray(frames), floor)


@dataclass
class StreamingLogMel:
    """Incremental :func:`logmel`: ``push(chunk) -> (F, 80)`` new frames; memory is O(window)."""

    floor: float = _LOG_FLOOR

    def __post_init__(self) -> None:
        self._buf = np.zeros(WIN // 2, np.float32)

    def push(self, chunk: np.ndarray) -> np.ndarray:
        self._buf = np.concatenate([self._buf, np.asarray(chunk, np.float32)])
        f = (len(self._buf) - WIN) // HOP + 1 if len(self._buf) >= WIN else 0
        if f <= 0:
            return np.zeros((0, N_MELS), np.float32)
        idx = np.arange(WIN)[None, :] + HOP * np.arange(f)[:, None]
        out = logmel_frames(self._buf[idx], self.floor)
        self._buf = self._buf[f * HOP :]
        return out
