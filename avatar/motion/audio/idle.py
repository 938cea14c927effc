"""Blinks with natural timing, and idle head motion that follows speech energy (both seeded)."""

from __future__ import annotations

import numpy as np


def blinks(num_frames: int, fps: float, seed: int = 0, rate_per_min: float = 17.0) -> np.ndarray:
    """(T,) eyelid closure 0..1: blinks ~``rate_per_min`` per minute, gamma-distributed gaps (≥ 1.2 s),
    each 80 ms closing, 40 ms shut, 160 ms opening."""
    out = np.zeros(num_frames, np.float32)
    if num_frames == 0 or rate_per_min <= 0:
        return out
    rng = np.random.default_rng([seed, 1])
    mean_gap = 60.0 / rate_per_min
    t = float(rng.uniform(0.3, mean_gap))
    times = np.arange(num_frames) / fps
    dur = num_frames / fps
    close, hold, open_ = 0.08, 0.04, 0.16
    while t < dur:
        d = times - t
        shape = np.where((d >= 0) & (d < close), d / close, 0.0)
        shape = np.where((d >= close) & (d < close + hold), 1.0, shape)
        shape = np.where((d >= close + hold) & (d < close + hold + open_), 1.0 - (d - close - hold) / open_, shape)
        out = np.maximum(out, shape.astype(np.float32))
        # A frame near the shut phase is fully shut, so even 25 fps shows the closed lids.
        k = int(round((t + close + 0.5 * hold) * fps))
        if 0 <= k < num_frames:
            out[k] = 1.0
        t += max(1.2, float(rng.gamma(3.0, mean_gap / 3.0)))
    return out


def frame_energy(audio16k: np.ndarray, fps: float, num_frames: int) -> np.ndarray:
    """(T,) speech energy 0..1 per render frame (RMS in dB, -50..-10 dBFS mapped to 0..1)."""
    hop = 16000.0 / fps
    out = np.zeros(num_frames, np.float32)
    for k in range(num_frames):
        a, b = int(k * hop), int((k + 1) * hop)
        seg = audio16k[a:b]
        if len(seg):
            db = 10 * np.log10(float(np.mean(seg.astype(np.float64) ** 2)) + 1e-10)
            out[k] = np.clip((db + 50.0) / 40.0, 0.0, 1.0)
    return out


def _smooth_noise(n: int, fps: float, rng: np.random.Generator, cutoff_hz: float) -> np.ndarray:
    """Unit-variance low-pass noise (sum of random sinusoids below ``cutoff_hz``)."""
    t = np.arange(n) / fps
    x = np.zeros(n)
    for _ in range(6):
        f = rng.uniform(0.05, cutoff_hz)
        x += np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) * rng.uniform(0.5, 1.0)
    return x / (np.sqrt(np.mean(x**2)) + 1e-9) if n else x


def head_motion(energy: np.ndarray, fps: float, seed: int = 0, amplitude: float = 1.0) -> np.ndarray:
    """(T, 5) yaw, pitch, roll (radians), dx, dy (canonical units) per frame.

    Slow drift (about ±2° yaw, ±1.5° pitch, ±1° roll at amplitude 1) grows with the smoothed
    speech energy, and energy onsets add small nods (pitch down), as speakers emphasise.
    """
    n = len(energy)
    rng = np.random.default_rng([seed, 2])
    out = np.zeros((n, 5), np.float32)
    if n == 0 or amplitude <= 0:
        return out
    k = max(1, int(0.4 * fps))
    env = np.convolve(np.pad(energy, (k - 1, 0), mode="edge"), np.ones(k) / k, mode="valid")  # causal 0.4 s mean
    gain = 0.5 + env
    deg = np.pi / 180.0
    out[:, 0] = 2.0 * deg * _smooth_noise(n, fps, rng, 0.3) * gain
    out[:, 1] = 1.5 * deg * _smooth_noise(n, fps, rng, 0.4) * gain
    out[:, 2] = 1.0 * deg * _smooth_noise(n, fps, rng, 0.25) * gain
    onset = np.clip(np.diff(env, prepend=env[0]) * fps, 0.0, None)
    kern = np.exp(-np.arange(int(0.5 * fps)) / (0.15 * fps))
    nod = np.convolve(onset, kern)[:n]
    out[:, 1] += (1.5 * deg * nod / (nod.max() + 1e-9)).astype(np.float32) if nod.max() > 0 else 0.0
    out[:, 3] = 0.01 * _smooth_noise(n, fps, rng, 0.2)
    out[:, 4] = 0.008 * _smooth_noise(n, fps, rng, 0.2)
    return (out * amplitude).astype(np.float32)
