"""This person's own audio-to-mouth opening, fitted at clone time from the clip's sound and tracked mouth.

The generic network hears any voice, but its openness follows a real speaker's mouth poorly
(r 0.1-0.3 at zero lag on the dev clips): it learnt from synthetic speech, and people open their
mouths differently for the same sounds. A clone holds this person's speech with their mouth in
view, so a ridge regression from the network's last hidden layer (the current 10 ms frame and a
few earlier ones: no look-ahead beyond the network's own, so the live path gains no latency) to
their tracked opening is fitted there. On held-out parts of the dev clips it reaches r 0.4-0.65
where the generic openness gives 0.1-0.3. A fit takes well under a second; the model (a few
kilobytes) is stored in the avatar pack and runs inside :class:`~avatar.motion.audio.stream.MouthStreamer`.

It is used only where it beats the generic openness, measured on parts of the clip it was not
fitted on (contiguous cross-validation folds).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .effort import GAIN_NORMAL, OPEN_P90

OFFSETS = (-20, -10, -5, 0)   # hidden-state frames (100 Hz) read per output frame: 200 ms of past
RIDGE_PER_SAMPLE = 3.0        # ridge penalty per training sample, on standardised features
# the person's 90th-percentile predicted opening maps to the generic path's typical open vowel
# (its normalised p90 times the ordinary-speech effort factor), so the rig and the calibrated
# gains see the same scale either way
OPEN_SCALE = GAIN_NORMAL * OPEN_P90
FOLDS = 5
MIN_SAMPLES = 60              # tracked frames with sound needed for a fit
MIN_GAIN_R = 0.05             # cross-validated r must beat the generic openness's by this to be used


@dataclass(frozen=True, eq=False)
class PersonalMouth:
    """Linear map from stacked hidden states to openness (0 closed .. 1 wide).

    offsets: hidden-state frames read, relative to the frame's own (all <= 0); mean, scale:
    (D,) feature standardisation; weights: (D,); bias: openness at the mean features.
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
            raise ValueError(f"personal mouth model: bad offsets {self.offsets} for {d} features")
        for name in ("scale", "weights"):
            v = getattr(self, name)
            if v.shape != (d,):
                raise ValueError(f"personal mouth model: {name} has shape {v.shape}, expected ({d},)")
        if not all(np.isfinite(v).all() for v in (self.mean, self.scale, self.weights)) or not np.isfinite(self.bias):
            raise ValueError("personal mouth model holds non-finite numbers")

    @property
    def hidden(self) -> int:
        return len(self.mean) // len(self.offsets)

    @property
    def history(self) -> int:
        """Past hidden frames needed besides the current one."""
        return -min(self.offsets)

    def openness(self, padded: np.ndarray) -> np.ndarray:
        """(T + history, hidden) hidden states, the first ``history`` rows the frames before →
        (T,) float32 openness in [0, 1], one per frame after the padding."""
        h = self.history
        t = len(padded) - h
        if t <= 0:
            return np.zeros(0, np.float32)
        x = np.concatenate([padded[h + o: h + o + t] for o in self.offsets], axis=1)
        y = ((x - self.mean) / self.scale) @ self.weights + self.bias
        return np.clip(y, 0.0, 1.0).astype(np.float32)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"offsets": np.asarray(self.offsets, np.int64), "mean": self.mean.astype(np.float32),
                "scale": self.scale.astype(np.float32), "weights": self.weights.astype(np.float32),
                "bias": np.asarray([self.bias], np.float32), "network": np.asarray(self.network)}

    @classmethod
    def from_arrays(cls, z) -> "PersonalMouth":
        """From :meth:`to_arrays` (or an ``np.load`` of them); ValueError when they do not fit together."""
        try:
            return cls(tuple(int(o) for o in np.asarray(z["offsets"]).reshape(-1)),
                       np.asarray(z["mean"], np.float32), np.asarray(z["scale"], np.float32),
                       np.asarray(z["weights"], np.float32), float(np.asarray(z["bias"]).reshape(-1)[0]),
                       str(np.asarray(z["network"])) if "network" in z else "")
        except (KeyError, IndexError, TypeError) as exc:
            raise ValueError(f"personal mouth model: {exc}") from exc


class PersonalStream:
    """Incremental :meth:`PersonalMouth.openness`: push the network's hidden states as they come;
    before the first one the history is zero (the network's own initial state)."""

    def __init__(self, model: PersonalMouth) -> None:
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


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 3 or a.std() < 1e-12 or b.std() < 1e-12:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def fit_personal_mouth(audio16k: np.ndarray, times: np.ndarray, opening: np.ndarray, lead_s: float,
                       weights: str | None = None) -> tuple[PersonalMouth | None, dict]:
    """Fit this person's mouth model on ``opening`` (N,) tracked at ``times`` (N,) seconds from
    the start of ``audio16k``, for a speech path whose lips lead the sound by ``lead_s``.

    Returns (model or None, info): info holds ``samples``, ``r_cv`` (the model's correlation with
    the tracked opening on held-out folds), ``r_generic`` (the generic openness's on the same
    frames) and ``used``; without a model it also says why (``reason``)."""
    hidden, generic, lookahead, network = hidden_states(audio16k, weights)
    times, opening = np.asarray(times, np.float64), np.asarray(opening, np.float64)
    idx = np.round((times + lead_s) * 100.0).astype(np.int64) + lookahead
    ok = np.isfinite(opening) & (idx >= 0) & (idx < len(hidden))
    idx, y = idx[ok], opening[ok]
    info: dict = {"samples": int(len(y)), "used": False}
    if len(y) < MIN_SAMPLES or y.std() < 1e-6:
        return None, dict(info, reason=f"too little tracked speech ({len(y)} frames; {MIN_SAMPLES} needed)")
    pad = -min(OFFSETS)
    padded = np.concatenate([np.zeros((pad, hidden.shape[1]), np.float32), hidden])
    x = np.concatenate([padded[idx + pad + o] for o in OFFSETS], axis=1).astype(np.float64)
    # out-of-fold predictions: an honest correlation, and the amplitude new speech will get
    oof = np.zeros_like(y)
    folds = np.array_split(np.arange(len(y)), FOLDS)
    for test in folds:
        train = np.setdiff1d(np.arange(len(y)), test)
        mean, scale, w, b = _ridge(x[train], y[train])
        oof[test] = ((x[test] - mean) / scale) @ w + b
    # within-fold correlation: how well the mouth's movements are followed (a fold's mean is the
    # intercept of a fit on little data, not what a viewer sees)
    g = generic[idx].astype(np.float64)
    centred = [np.concatenate([v[f] - v[f].mean() for f in folds]) for v in (oof, g, y)]
    r_cv, r_generic = _corr(centred[0], centred[2]), _corr(centred[1], centred[2])
    info.update(r_cv=round(r_cv, 3), r_generic=round(r_generic, 3))
    lo, hi = np.percentile(oof, [10, 90])
    if hi - lo < 1e-9:
        return None, dict(info, reason="the fitted opening does not vary")
    mean, scale, w, b = _ridge(x, y)
    k = OPEN_SCALE / (hi - lo)
    model = PersonalMouth(OFFSETS, mean.astype(np.float32), scale.astype(np.float32), (w * k).astype(np.float32),
                          float((b - lo) * k), network)
    if r_cv < r_generic + MIN_GAIN_R:
        return model, dict(info, reason=f"held-out r {r_cv:.2f} does not beat the generic openness's {r_generic:.2f}")
    return model, dict(info, used=True)
