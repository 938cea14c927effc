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


@lru_cache(maxsize=1)
def _mel_basis() -> np.ndarray:
    import librosa  # noqa: PLC0415

    return librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=FMIN, fmax=FMAX).astype(np.float32)


@lru_cache(maxsize=1)
def _window() -> np.ndarray:
    import scipy.signal  # noqa: PLC0415

    return scipy.signal.get_window("hann", WIN, fftbins=True).astype(np.float32)


def logmel_frames(frames: np.ndarray) -> np.ndarray:
    """(F, 400) windows of 16 kHz audio → (F, 80) float32 log-mel."""
    spec = np.fft.rfft(frames.astype(np.float32) * _window(), n=N_FFT, axis=1)
    power = (spec.real**2 + spec.imag**2).astype(np.float32)
    return np.log(power @ _mel_basis().T + _LOG_FLOOR).astype(np.float32)


def num_frames(num_samples: int) -> int:
    """Feature frames for ``num_samples`` of audio (frame j needs samples up to 160 j + 200)."""
    return max(0, (num_samples - WIN // 2) // HOP + 1) if num_samples >= WIN // 2 else 0


def logmel(audio: np.ndarray) -> np.ndarray:
    """(N,) float32 16 kHz mono → (F, 80) log-mel, F = :func:`num_frames` (N)."""
    import librosa  # noqa: PLC0415

    x = np.concatenate([np.zeros(WIN // 2, np.float32), np.asarray(audio, np.float32)])
    f = num_frames(len(audio))
    if f == 0:
        return np.zeros((0, N_MELS), np.float32)
    frames = librosa.util.frame(x[: (f - 1) * HOP + WIN], frame_length=WIN, hop_length=HOP, axis=0)
    return logmel_frames(np.ascontiguousarray(frames))


@dataclass
class StreamingLogMel:
    """Incremental :func:`logmel`: ``push(chunk) -> (F, 80)`` new frames; memory is O(window)."""

    def __post_init__(self) -> None:
        self._buf = np.zeros(WIN // 2, np.float32)

    def push(self, chunk: np.ndarray) -> np.ndarray:
        self._buf = np.concatenate([self._buf, np.asarray(chunk, np.float32)])
        f = (len(self._buf) - WIN) // HOP + 1 if len(self._buf) >= WIN else 0
        if f <= 0:
            return np.zeros((0, N_MELS), np.float32)
        idx = np.arange(WIN)[None, :] + HOP * np.arange(f)[:, None]
        out = logmel_frames(self._buf[idx])
        self._buf = self._buf[f * HOP :]
        return out
