"""One half of a person's own mouth model: a ridge regression from the audio network's last hidden
layer to their tracked opening (sessions 10-20 it was the whole model).

It reads the current 10 ms frame's hidden state and those 50, 100 and 200 ms before it (no
look-ahead beyond the network's own). It follows some speakers better than the sound-based kernel
model of :mod:`avatar.motion.audio.personal` and others worse (held-out r on the dev clips 0.58 /
0.50 / 0.47 against 0.52 / 0.56 / 0.44 on talk_01 / 02 / 04), and needs more speech (talk_03's 12 s
gave no usable fit): the two are averaged where both pass the held-out check.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

OFFSETS = (-20, -10, -5, 0)   # hidden-state frames (100 Hz) read per output frame: 200 ms of past
RIDGE_PER_SAMPLE = 3.0        # ridge penalty per training sample, on standardised features


@dataclass(frozen=True, eq=False)
class HiddenRidge:
    """Linear map from stacked hidden states to openness (0 closed .. 1 wide).

    offsets: hidden-state frames read, relative to the frame's own (all <= 0); mean, scale: (D,)
    feature standardisation; weights: (D,); bias: openness at the mean features.
    D = len(offsets) * hidden. network: the fingerprint of the audio network whose hidden states
    it reads (:attr:`NumpyAudio2Mouth.fingerprint`).
    """

    offsets: tuple[int, ...]
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float
    network: str = ""

    def __post_init__(self) -> None:
        d = len(self.mean)
        if not self.offsets or max(self.offsets) > 0 or d % len(self.offsets):
            raise ValueError(f"hidden-state mouth model: bad offsets {self.offsets} for {d} features")
        for name in ("scale", "weights"):
            v = getattr(self, name)
            if v.shape != (d,):
                raise ValueError(f"hidden-state mouth model: {name} has shape {v.shape}, expected ({d},)")
        if not all(np.isfinite(v).all() for v in (self.mean, self.scale, self.weights)) or not np.isfinite(self.bias):
            raise ValueError("hidden-state mouth model holds non-finite numbers")

    @property
    def hidden(self) -> int:
        return len(self.mean) // len(self.offsets)

    @property
    def history(self) -> int:
        return -min(self.offsets)

    def openness(self, padded: np.ndarray) -> np.ndarray:
        """(T + history, hidden) hidden states, the first ``history`` rows the frames before →
        (T,) float32 openness in [0, 1]."""
        h = self.history
        t = len(padded) - h
        if t <= 0:
            return np.zeros(0, np.float32)
        x = np.concatenate([padded[h + o: h + o + t] for o in self.offsets], axis=1)
        return np.clip(((x - self.mean) / self.scale) @ self.weights + self.bias, 0.0, 1.0).astype(np.float32)

    def to_arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        return {f"{prefix}offsets": np.asarray(self.offsets, np.int64), f"{prefix}mean": self.mean.astype(np.float32),
                f"{prefix}scale": self.scale.astype(np.float32), f"{prefix}weights": self.weights.astype(np.float32),
                f"{prefix}bias": np.asarray([self.bias], np.float32), f"{prefix}network": np.asarray(self.network)}

    @classmethod
    def from_arrays(cls, z, prefix: str = "") -> "HiddenRidge":
        try:
            return cls(tuple(int(o) for o in np.asarray(z[f"{prefix}offsets"]).reshape(-1)),
                       np.asarray(z[f"{prefix}mean"], np.float32), np.asarray(z[f"{prefix}scale"], np.float32),
                       np.asarray(z[f"{prefix}weights"], np.float32), float(np.asarray(z[f"{prefix}bias"]).reshape(-1)[0]),
                       str(np.asarray(z[f"{prefix}network"])) if f"{prefix}network" in z else "")
        except (KeyError, IndexError, TypeError) as exc:
            raise ValueError(f"hidden-state mouth model: missing or bad {exc}") from exc


class HiddenStream:
    """Incremental :meth:`HiddenRidge.openness`: push the network's hidden states as they come;
    before the first one the history is zero (the network's own initial state)."""

    def __init__(self, model: HiddenRidge) -> None:
        self.model = model
        self._past = np.zeros((model.history, model.hidden), np.float32)

    def push(self, hidden: np.ndarray) -> np.ndarray:
        if not len(hidden):
            return np.zeros(0, np.float32)
        padded = np.concatenate([self._past, np.asarray(hidden, np.float32)])
        self._past = padded[len(padded) - self.model.history:]
        return self.model.openness(padded)


def hidden_states(audio16k: np.ndarray, weights: str | None = None) -> tuple[np.ndarray, np.ndarray, int, str]:
    """The network run over a whole signal: ((F, hidden) last-layer states, (F,) raw openness
    probability, look-ahead frames, the network's fingerprint). Output row j describes 10 ms
    frame j - look-ahead."""
    from . import features as feat
    from .model_io import load_numpy_model
    from .numpy_net import _sigmoid

    model, info = load_numpy_model(weights)
    o, hidden, _ = model.step_hidden(feat.logmel(audio16k), model.initial_state())
    return hidden, _sigmoid(o[:, 0]), int(info["lookahead_frames"]), model.fingerprint


def _ridge(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(mean, scale, weights, intercept) of a ridge fit on standardised ``x``."""
    mean, scale = x.mean(0), x.std(0) + 1e-6
    xs = (x - mean) / scale
    lam = RIDGE_PER_SAMPLE * len(x)
    w = np.linalg.solve(xs.T @ xs + lam * np.eye(xs.shape[1]), xs.T @ (y - y.mean()))
    return mean, scale, w, float(y.mean())


def fit_hidden_ridge(hidden: np.ndarray, rows: np.ndarray, y: np.ndarray, folds: list[np.ndarray], open_scale: float,
                     network: str) -> tuple[HiddenRidge | None, np.ndarray]:
    """(model, (N,) out-of-fold predictions) for openings ``y`` at network output ``rows`` of
    (F, hidden) ``hidden``; the model's output maps its held-out p10..p90 to 0..``open_scale``.
    None when the predictions do not vary."""
    pad = -min(OFFSETS)
    padded = np.concatenate([np.zeros((pad, hidden.shape[1]), np.float32), hidden])
    x = np.concatenate([padded[np.clip(rows, 0, len(hidden) - 1) + pad + o] for o in OFFSETS], axis=1).astype(np.float64)
    oof = np.zeros_like(y)
    for test in folds:
        train = np.setdiff1d(np.arange(len(y)), test)
        mean, scale, w, b = _ridge(x[train], y[train])
        oof[test] = ((x[test] - mean) / scale) @ w + b
    lo, hi = np.percentile(oof, [10, 90])
    if hi - lo < 1e-9:
        return None, oof
    mean, scale, w, b = _ridge(x, y)
    k = open_scale / (hi - lo)
    return HiddenRidge(OFFSETS, mean.astype(np.float32), scale.astype(np.float32), (w * k).astype(np.float32),
                       float((b - lo) * k), network), oof
