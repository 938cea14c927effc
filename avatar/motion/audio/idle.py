"""Blinks with natural timing, and idle head motion that follows speech energy (both seeded)."""

from __future__ import annotations

import numpy as np


def blinks(num_frames: int, fps: float, seed: int = 0, rate_per_min: float = 17.0) -> np.ndarray:
    """(T,) eyelid closure 0..1: blinks ~``rate_per_min`` per minute, gamma-distributed gaps (≥ 1.2 s),
    each 80 ms closing, 40 ms shut, 160 ms opening (:class:`BlinkStream` run for T frames)."""
    stream = BlinkStream(fps, seed, rate_per_min)
    return np.array([stream.step() for _ in range(num_frames)], np.float32)


def frame_energy(audio16k: np.ndarray, fps: float, num_frames: int) -> np.ndarray:
    """(T,) speech energy 0..1 per render frame (RMS in dB, -50..-10 dBFS mapped to 0..1)."""
    hop = 16000.0 / fps
    return np.array([energy_of(audio16k[int(k * hop):int((k + 1) * hop)]) for k in range(num_frames)], np.float32)


def head_motion(energy: np.ndarray, fps: float, seed: int = 0, amplitude: float = 1.0) -> np.ndarray:
    """(T, 5) yaw, pitch, roll (radians), dx, dy (canonical units) per frame.

    Slow drift (about ±2° yaw, ±1.5° pitch, ±1° roll at amplitude 1) grows with the smoothed
    speech energy, and energy onsets add small nods (pitch down), as speakers emphasise.
    :class:`HeadStream` run over the frames, so offline and streamed motion are the same.
    """
    stream = HeadStream(fps, seed, amplitude)
    return np.array([stream.step(float(e)) for e in energy], np.float32).reshape(len(energy), 5)


class BlinkStream:
    """Streaming :func:`blinks`: one eyelid value per call, same timing model, bounded state."""

    def __init__(self, fps: float, seed: int = 0, rate_per_min: float = 17.0) -> None:
        self.fps = float(fps)
        self.rate = float(rate_per_min)
        self._rng = np.random.default_rng([seed, 1])
        self._mean_gap = 60.0 / self.rate if self.rate > 0 else float("inf")
        self._next = float(self._rng.uniform(0.3, self._mean_gap)) if self.rate > 0 else float("inf")
        self._active: list[float] = []
        self._k = 0

    def step(self) -> float:
        """Eyelid closure 0..1 for the next frame."""
        t = self._k / self.fps
        self._k += 1
        while self._next <= t + 1.0 / self.fps:
            self._active.append(self._next)
            self._next += max(1.2, float(self._rng.gamma(3.0, self._mean_gap / 3.0)))
        close, hold, open_ = 0.08, 0.04, 0.16
        value = 0.0
        for start in self._active:
            d = t - start
            if 0 <= d < close:
                value = max(value, d / close)
            elif close <= d < close + hold:
                value = 1.0
            elif close + hold <= d < close + hold + open_:
                value = max(value, 1.0 - (d - close - hold) / open_)
            if int(round((start + close + 0.5 * hold) * self.fps)) == self._k - 1:
                value = 1.0  # as offline: the frame nearest the shut phase is fully shut
        self._active = [s for s in self._active if t - s < close + hold + open_ + 1.0 / self.fps]
        return value


class HeadStream:
    """Idle head motion evaluated causally, frame by frame (what :func:`head_motion` runs).

    Each axis is a sum of six slow random sinusoids normalised by their expected RMS; energy is
    smoothed over the last 0.4 s, and nods decay from energy onsets, scaled by the largest so far.
    """

    def __init__(self, fps: float, seed: int = 0, amplitude: float = 1.0) -> None:
        self.fps = float(fps)
        self.amplitude = float(amplitude)
        rng = np.random.default_rng([seed, 2])
        self._waves = [self._draw(rng, c) for c in (0.3, 0.4, 0.25, 0.2, 0.2)]
        self._win = max(1, int(0.4 * fps))
        self._energies: list[float] = []
        self._env_prev: float | None = None
        self._nod = 0.0
        self._nod_peak = 1e-9
        self._decay = float(np.exp(-1.0 / (0.15 * fps)))
        self._k = 0

    @staticmethod
    def _draw(rng: np.random.Generator, cutoff: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        f, ph, a = [], [], []
        for _ in range(6):
            f.append(rng.uniform(0.05, cutoff))
            ph.append(rng.uniform(0, 2 * np.pi))
            a.append(rng.uniform(0.5, 1.0))
        amp = np.array(a)
        return np.array(f), np.array(ph), amp / np.sqrt(0.5 * np.sum(amp**2))

    def _noise(self, i: int, t: float) -> float:
        f, ph, a = self._waves[i]
        return float(np.sum(a * np.sin(2 * np.pi * f * t + ph)))

    def step(self, energy: float) -> np.ndarray:
        """(5,) yaw, pitch, roll (rad), dx, dy (canonical) for the next frame, given its speech energy 0..1."""
        t = self._k / self.fps
        self._k += 1
        self._energies = (self._energies + [float(energy)])[-self._win:]
        env = float(np.mean(self._energies))
        onset = max(0.0, (env - (self._env_prev if self._env_prev is not None else env)) * self.fps)
        self._env_prev = env
        self._nod = self._nod * self._decay + onset
        self._nod_peak = max(self._nod_peak, self._nod)
        gain = 0.5 + env
        deg = np.pi / 180.0
        out = np.array([2.0 * deg * self._noise(0, t) * gain,
                        1.5 * deg * self._noise(1, t) * gain + 1.5 * deg * self._nod / self._nod_peak,
                        1.0 * deg * self._noise(2, t) * gain,
                        0.01 * self._noise(3, t),
                        0.008 * self._noise(4, t)])
        return (out * self.amplitude).astype(np.float32) if self.amplitude > 0 else np.zeros(5, np.float32)


def energy_of(samples16k: np.ndarray) -> float:
    """Speech energy 0..1 of one frame's samples (as :func:`frame_energy`)."""
    if len(samples16k) == 0:
        return 0.0
    db = 10 * np.log10(float(np.mean(np.asarray(samples16k, np.float64) ** 2)) + 1e-10)
    return float(np.clip((db + 50.0) / 40.0, 0.0, 1.0))
