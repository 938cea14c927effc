"""Temporal smoothing: the One-Euro filter (Casiez, Roussel and Vogel, CHI 2012).

It adapts its cut-off to the signal's speed: strong smoothing at rest (no jitter), little
lag on fast moves. Works on arrays of any shape, one sample at a time, so the streaming
and the file paths give identical results.
"""

from __future__ import annotations

import math

import numpy as np

from ..config import SmoothingConfig


def _alpha(cutoff: float, dt: float) -> float:
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """Streaming One-Euro filter over arrays of a fixed shape.

    Args:
        config: cut-offs and speed coefficient.
        fps: sample rate of the signal (frames per second).
    """

    def __init__(self, config: SmoothingConfig, fps: float) -> None:
        self.config = config
        self.dt = 1.0 / fps
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None

    def reset(self) -> None:
        self._x = None
        self._dx = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if not self.config.enabled:
            return x
        if self._x is None:
            self._x, self._dx = x.copy(), np.zeros_like(x)
            return x
        cfg = self.config
        dx = (x - self._x) / self.dt
        a_d = _alpha(cfg.d_cutoff, self.dt)
        self._dx = a_d * dx + (1 - a_d) * self._dx
        # one cut-off per array, driven by its fastest element: keeps a rigid shape rigid
        speed = float(np.abs(self._dx).max())
        a = _alpha(cfg.min_cutoff + cfg.beta * speed, self.dt)
        self._x = a * x + (1 - a) * self._x
        return self._x.copy()


def smooth_sequence(values: np.ndarray, config: SmoothingConfig, fps: float) -> np.ndarray:
    """Filter a (T, ...) sequence; equals feeding the frames one by one to :class:`OneEuroFilter`."""
    f = OneEuroFilter(config, fps)
    return np.stack([f(v) for v in values]) if len(values) else np.asarray(values, dtype=np.float64)
