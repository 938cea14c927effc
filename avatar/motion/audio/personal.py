"""This person's own audio-to-mouth opening, fitted at clone time from the clip's sound and tracked mouth.

The generic network hears any voice, but its openness follows a real speaker's mouth poorly
(r 0.1-0.3 at zero lag on the dev clips): it learnt from synthetic speech, and people open their
mouths differently for the same sounds. A clone holds this person's speech with their mouth in
view, so a kernel ridge regression from the sound around each frame to their tracked opening is
fitted there: 20 mel bands and the level, both relative to the speaker's running speech level
(so a louder or quieter recording of new speech reads the same), at nine times from 200 ms
before to 200 ms after the frame. Lips move ahead of and after the sound they shape, and the
sound on either side says which way they are going.

Where the network's hidden states also follow this person (:mod:`avatar.motion.audio.hidden_ridge`,
the model of sessions 10-20), the openness is the mean of the two halves. Measured with
``python -m avatar.bench mouth_model`` (fit on the first 60 % of each dev clip, the rest's sound
streamed as talking does, r at zero lag against the tracked opening, talk_01..04): 0.52 / 0.56 /
0.57 / 0.44 for this half alone, 0.58 / 0.50 / (no usable fit on talk_03's 12 s) / 0.47 for the
hidden-state half alone, 0.58 / 0.56 / 0.57 / 0.50 mixed (0.585 / 0.574 / 0.624 / 0.537 since
session 53's lighter ridge penalty, :data:`ALPHA`); the generic openness 0.14-0.30. A fit
takes a few seconds; the model (the fitted frames' features, at most ``MAX_SUPPORT`` of them) is
stored in the avatar pack and runs inside :class:`~avatar.motion.audio.stream.MouthStreamer`,
240 ms behind the sound (the 200 ms it reads ahead and a ±40 ms average). Live streaming uses a
variant fitted beside it that reads 60 ms ahead (80 ms behind the sound), where that one fits too.

It is used only where it beats the generic openness, measured on parts of the clip it was not
fitted on (contiguous cross-validation folds).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .effort import DB_PER_NEPER, GAIN_NORMAL, OPEN_P90
from .hidden_ridge import HiddenRidge, fit_hidden_ridge, hidden_states

FEATURES = "logmel20-level-v2"            # what the model reads; a model of other features is refused
BANDS = 20                                # the 80 mel bands pooled in fours
OFFSETS = (-20, -12, -6, -3, 0, 3, 6, 12, 20)   # 100 Hz frames read around each frame's own
ALPHA = 0.1                               # kernel ridge penalty, against the RBF kernel's unit diagonal (1.0 fitted the dev clips less well, see docs/clone.md "Session 53")
GAMMA_PER_FEATURE = 0.25                  # RBF width: gamma = this / features, on standardised features
SMOOTH = 4                                # the openness is averaged over this many 100 Hz frames either side
# The variant for live streaming reads 60 ms ahead, not 200 (its latency is the stream's): held-out
# r 0.57 / 0.57 / 0.51 on talk_01 / 02 / 04, as the offline model's; on talk_03's 12 s it does not
# fit (and the offline model streams, later)
LIVE_OFFSETS = (-20, -12, -6, -3, 0, 3, 6)
LIVE_SMOOTH = 2
QUANTILES = np.linspace(0.0, 100.0, 21)   # the output's distribution is mapped onto the person's own at these
MAX_SUPPORT = 3000                        # fitted frames kept (evenly spaced beyond): 200 s at 15 fps
# the person's 90th-percentile predicted opening maps to the generic path's typical open vowel
# (its normalised p90 times the ordinary-speech effort factor), so the rig and the calibrated
# gains see the same scale either way
OPEN_SCALE = GAIN_NORMAL * OPEN_P90
FOLDS = 5
MIN_SAMPLES = 60              # tracked frames with sound needed for a fit
MIN_GAIN_R = 0.05             # cross-validated r must beat the generic openness's by this to be used
MIN_R = 0.2                   # ... and reach this (a mouth unrelated to the sound reaches about ±0.1 by chance)
LOG_FLOOR = 1e-10             # log-mel floor of the features (see FrameFeatures)
# Silence, on these features' own scale: digital silence reads -81 dB here (80 bands at the floor),
# so a frame under -70 dB is nothing; the network path's gate (-35 dB on its 1e-6 floor) also shut
# quiet syllables of a recording 12 dB down (held-out r 0.44 → 0.34 on talk_04). Far below the
# speaker's running level is a pause whatever the recording's level.
SILENT_DB = -70.0
QUIET_DB = 45.0
_BLOCK = 2048                 # frames per kernel block (bounds memory on long audio)


class FrameFeatures:
    """What the model reads, one row per 10 ms frame: ``push(pcm) -> (F, BANDS + 1)`` float32.

    The 80 log-mel bands pooled in fours, less the speaker's running speech level
    (:class:`~avatar.motion.audio.effort.SpeechLevel`), then the frame's level relative to it,
    all in nepers. The log-mel floor is far below the network's: the network's floor sits about
    60 dB under ordinary speech, so quiet bands (and a quieter recording's whole upper spectrum)
    would flatten onto it and the same speech 12 dB quieter would read differently (held-out r
    0.46 → 0.11 on talk_02). Offline (:func:`signal_features`) and streaming give the same rows.
    """

    def __init__(self) -> None:
        from . import features as feat
        from .effort import SpeechLevel

        self._mel = feat.StreamingLogMel(floor=LOG_FLOOR)
        self._level = SpeechLevel()

    def push(self, pcm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(F, BANDS + 1) features of the new frames, and (F,) bool: which are silent (near
        digital silence, or far below the speaker's level: there the mouth is shut whatever
        the model says)."""
        from .effort import frame_db

        mel = self._mel.push(pcm)
        db = frame_db(mel)
        rel = self._level.push_db(db).astype(np.float32)
        running = (db - rel).astype(np.float32) / DB_PER_NEPER
        # explicit band width: a push shorter than a hop gives no frames, and -1 cannot be inferred from 0
        pooled = mel.reshape(len(mel), BANDS, mel.shape[1] // BANDS).mean(axis=2) - running[:, None]
        silent = (db < SILENT_DB) | (rel < -QUIET_DB)
        return np.concatenate([pooled, rel[:, None] / DB_PER_NEPER], axis=1).astype(np.float32), silent


def signal_features(audio16k: np.ndarray) -> np.ndarray:
    """:class:`FrameFeatures` of a whole signal."""
    return FrameFeatures().push(np.asarray(audio16k, np.float32))[0]


def _stack(frames: np.ndarray, at: np.ndarray, offsets: tuple[int, ...]) -> np.ndarray:
    """(N, len(offsets) * C): rows ``at + o`` of (F, C) ``frames`` side by side, edges repeated."""
    last = len(frames) - 1
    return np.concatenate([frames[np.clip(at + o, 0, last)] for o in offsets], axis=1)


def _rbf(x: np.ndarray, support: np.ndarray, sq_support: np.ndarray, gamma: float) -> np.ndarray:
    d = (x * x).sum(1)[:, None] + sq_support[None, :] - 2.0 * (x @ support.T)
    return np.exp(-gamma * np.maximum(d, 0.0))


def _check_features(features: str) -> None:
    """ValueError unless a model reads :data:`FEATURES` (one fitted before a change to them cannot be used)."""
    if features != FEATURES:
        raise ValueError(f"personal mouth model reads {features or 'other features'!r}, not {FEATURES!r}: "
                         "re-clone the avatar to fit it again")


@dataclass(frozen=True, eq=False)
class PersonalMouth:
    """Kernel ridge map from the sound around a frame to its openness (0 closed .. 1 wide).

    offsets: 100 Hz frames read, relative to the frame's own; mean, scale: (D,) feature
    standardisation; support: (N, D) standardised fitted features; coef: (N,) their weights;
    bias: the fitted opening far from every fitted sound; gamma: RBF width. D = len(offsets) * (BANDS + 1).
    map_in, map_out: (Q,) a monotone piecewise-linear map from the fitted opening to the openness
    (0 closed .. 1 wide). features: the frame features it reads (:data:`FEATURES`).
    hidden: the network-hidden-state half (:mod:`avatar.motion.audio.hidden_ridge`), or None;
    sound_weight: this sound-based half's share of the openness (1: it alone, 0: ``hidden`` alone).
    smooth: the openness is averaged over this many 100 Hz frames either side.
    live: the variant that reads less far ahead, for live streaming (:meth:`for_streaming`), or None.
    """

    offsets: tuple[int, ...]
    mean: np.ndarray
    scale: np.ndarray
    support: np.ndarray
    coef: np.ndarray
    bias: float
    gamma: float
    map_in: np.ndarray
    map_out: np.ndarray
    features: str = FEATURES
    hidden: HiddenRidge | None = None
    sound_weight: float = 1.0
    smooth: int = SMOOTH
    live: "PersonalMouth | None" = None

    def __post_init__(self) -> None:
        _check_features(self.features)
        d = len(self.offsets) * (BANDS + 1)
        if not self.offsets or min(self.offsets) > 0 or max(self.offsets) < 0:
            raise ValueError(f"personal mouth model: bad offsets {self.offsets}")
        for name, shape in (("mean", (d,)), ("scale", (d,)), ("support", (len(self.coef), d))):
            v = getattr(self, name)
            if v.shape != shape:
                raise ValueError(f"personal mouth model: {name} has shape {v.shape}, expected {shape}")
        if self.coef.ndim != 1 or not len(self.coef):
            raise ValueError("personal mouth model holds no fitted frames")
        if self.map_in.ndim != 1 or self.map_in.shape != self.map_out.shape or len(self.map_in) < 2 \
                or np.any(np.diff(self.map_in) <= 0):
            raise ValueError("personal mouth model: its opening map is not increasing")
        if not 0.0 <= self.sound_weight <= 1.0 or (self.hidden is None and self.sound_weight < 1.0):
            raise ValueError(f"personal mouth model: bad share {self.sound_weight} of its sound-based half")
        if not 0 <= self.smooth <= 50:
            raise ValueError(f"personal mouth model: bad smoothing {self.smooth}")
        arrays = (self.mean, self.scale, self.support, self.coef, self.map_in, self.map_out)
        if not all(np.isfinite(v).all() for v in arrays) or not np.isfinite(self.bias) or not self.gamma > 0:
            raise ValueError("personal mouth model holds non-finite numbers")
        object.__setattr__(self, "_sq", (self.support.astype(np.float32) ** 2).sum(1))

    @property
    def history(self) -> int:
        """Past 100 Hz frames read besides the current one (none when only the hidden-state half is used)."""
        return 0 if self.sound_weight == 0.0 else -min(self.offsets) + self.smooth

    @property
    def lookahead(self) -> int:
        """Future 100 Hz frames read: how far it runs behind the sound (none when only the
        hidden-state half is used: it runs with the network)."""
        return 0 if self.sound_weight == 0.0 else max(self.offsets) + self.smooth

    def for_streaming(self) -> "PersonalMouth":
        """The variant to stream live with: :attr:`live` where it was fitted, else this model."""
        return self.live if self.live is not None else self

    def openness(self, padded: np.ndarray) -> np.ndarray:
        """(T + history + lookahead, BANDS + 1) frame features (:class:`FrameFeatures`), the
        first ``history`` rows before the first frame described → (T,) float32 openness in [0, 1]
        (zeros when only the hidden-state half is used)."""
        t = len(padded) - self.history - self.lookahead
        if t <= 0:
            return np.zeros(0, np.float32)
        if self.sound_weight == 0.0:
            return np.zeros(t, np.float32)
        sm = self.smooth
        raw = np.empty(t + 2 * sm, np.float32)  # the frames and ``smooth`` either side
        for a in range(0, len(raw), _BLOCK):
            at = np.arange(a, min(a + _BLOCK, len(raw))) + self.history - sm
            x = (_stack(np.asarray(padded, np.float32), at, self.offsets) - self.mean) / self.scale
            raw[a:a + len(at)] = _rbf(x, self.support, self._sq, self.gamma) @ self.coef + self.bias
        # a box average: the fitted map jitters from one 10 ms frame to the next more than lips do
        # (held-out r +0.01 on the dev clips, frame-to-frame change a quarter less)
        c = np.concatenate([[0.0], np.cumsum(raw, dtype=np.float64)])
        fitted = (c[2 * sm + 1:] - c[:t]) / (2 * sm + 1)
        return np.clip(np.interp(fitted, self.map_in, self.map_out), 0.0, 1.0).astype(np.float32)

    def to_arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        own = {"offsets": np.asarray(self.offsets, np.int64), "mean": self.mean.astype(np.float32),
               "scale": self.scale.astype(np.float32), "support": self.support.astype(np.float32),
               "coef": self.coef.astype(np.float32), "bias": np.asarray([self.bias], np.float32),
               "gamma": np.asarray([self.gamma], np.float32), "map_in": self.map_in.astype(np.float64),
               "map_out": self.map_out.astype(np.float64), "features": np.asarray(self.features),
               "sound_weight": np.asarray([self.sound_weight], np.float32),
               "smooth": np.asarray([self.smooth], np.int64)}
        out = {prefix + k: v for k, v in own.items()}
        # one hidden-state half, shared by the live variant (stored once, whichever of the two uses it)
        shared = self.hidden if self.hidden is not None else None if self.live is None else self.live.hidden
        if shared is not None and not prefix:
            out.update(shared.to_arrays("hidden_"))
        if self.live is not None:
            out.update(self.live.to_arrays(prefix + "live_"))
        return out

    @classmethod
    def from_arrays(cls, z, prefix: str = "", hidden: HiddenRidge | None = None) -> "PersonalMouth":
        """From :meth:`to_arrays` (or an ``np.load`` of them); ValueError when they do not fit together."""
        def one(key: str) -> np.ndarray:
            return np.asarray(z[prefix + key])

        features = str(one("features")) if prefix + "features" in z else ""
        _check_features(features)  # before the arrays: an older model's arrays differ too
        try:
            if not prefix and "hidden_weights" in z:
                hidden = HiddenRidge.from_arrays(z, "hidden_")
            weight = float(one("sound_weight").reshape(-1)[0]) if prefix + "sound_weight" in z else 1.0
            return cls(tuple(int(o) for o in one("offsets").reshape(-1)),
                       one("mean").astype(np.float32), one("scale").astype(np.float32),
                       one("support").astype(np.float32), one("coef").astype(np.float32),
                       float(one("bias").reshape(-1)[0]), float(one("gamma").reshape(-1)[0]),
                       one("map_in").astype(np.float64), one("map_out").astype(np.float64), features,
                       hidden if weight < 1.0 else None, weight,
                       int(one("smooth").reshape(-1)[0]) if prefix + "smooth" in z else SMOOTH,
                       cls.from_arrays(z, prefix + "live_", hidden) if prefix + "live_offsets" in z else None)
        except (KeyError, IndexError, TypeError) as exc:
            raise ValueError(f"personal mouth model: missing or bad {exc}") from exc


class PersonalStream:
    """Incremental :meth:`PersonalMouth.openness`: push frame features as they come, get the
    openness of each frame once ``lookahead`` later ones have arrived. Before the first frame
    the history repeats it; :meth:`PersonalMouth.openness` over a whole padded signal is the same."""

    def __init__(self, model: PersonalMouth) -> None:
        self.model = model
        self._past: np.ndarray | None = None  # the last history + lookahead frames

    def push(self, frames: np.ndarray) -> np.ndarray:
        frames = np.asarray(frames, np.float32)
        if not len(frames):
            return np.zeros(0, np.float32)
        m = self.model
        if self._past is None:
            self._past = np.repeat(frames[:1], m.history, axis=0)
        padded = np.concatenate([self._past, frames])
        self._past = padded[max(0, len(padded) - m.history - m.lookahead):]
        return m.openness(padded)


def _kernel_fit(x: np.ndarray, y: np.ndarray, gamma: float) -> tuple[np.ndarray, float]:
    """(coef, bias) of kernel ridge on (N, D) ``x``: predictions are K(x', x) @ coef + bias."""
    sq = (x * x).sum(1)
    k = _rbf(x, x, sq, gamma)
    k[np.diag_indices_from(k)] += ALPHA
    bias = float(y.mean())
    return np.linalg.solve(k, y - bias), bias


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 3 or a.std() < 1e-12 or b.std() < 1e-12:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def fit_personal_mouth(audio16k: np.ndarray, times: np.ndarray, opening: np.ndarray, lead_s: float,
                       weights: str | None = None) -> tuple[PersonalMouth | None, dict]:
    """Fit this person's mouth model on ``opening`` (N,) tracked at ``times`` (N,) seconds from
    the start of ``audio16k``, for a speech path whose lips lead the sound by ``lead_s``.
    ``weights``: the generic network it is compared with.

    The model holds a variant for live streaming (:attr:`PersonalMouth.live`, reading
    :data:`LIVE_OFFSETS`) where that one also beats the generic openness.

    Returns (model or None, info): info holds ``samples``, ``r_cv`` (the model's correlation with
    the tracked opening on held-out folds), ``r_generic`` (the generic openness's on the same
    frames), ``used`` and ``live`` (the live variant's figures); without a model it also says why
    (``reason``)."""
    frames = signal_features(audio16k)
    times, opening = np.asarray(times, np.float64), np.asarray(opening, np.float64)
    idx = np.round((times + lead_s) * 100.0).astype(np.int64)
    ok = np.isfinite(opening) & (idx >= 0) & (idx < len(frames))
    idx, y = idx[ok], opening[ok]
    info: dict = {"samples": int(len(y)), "used": False}
    if len(y) < MIN_SAMPLES or y.std() < 1e-6:
        return None, dict(info, reason=f"too little tracked speech ({len(y)} frames; {MIN_SAMPLES} needed)")
    if len(y) > MAX_SUPPORT:
        keep = np.round(np.linspace(0, len(y) - 1, MAX_SUPPORT)).astype(np.int64)
        idx, y = idx[keep], y[keep]
    folds = np.array_split(np.arange(len(y)), FOLDS)
    hidden, generic, lookahead, network = hidden_states(audio16k, weights)
    rows = idx + lookahead
    ridge, oof_h = fit_hidden_ridge(hidden, rows, y, folds, OPEN_SCALE, network)
    g = generic[np.clip(rows, 0, len(generic) - 1)].astype(np.float64)

    # within-fold correlation: how well the mouth's movements are followed (a fold's mean is the
    # intercept of a fit on little data, not what a viewer sees)
    def centred(v: np.ndarray) -> np.ndarray:
        return np.concatenate([v[f] - v[f].mean() for f in folds])

    y_c, h_c = centred(y), centred(oof_h)
    r_h, r_generic = _corr(h_c, y_c), _corr(centred(g), y_c)
    # each half is used where it beats the generic openness on held-out folds; both: their mean
    # (held-out r on the dev clips 0.57 / 0.59 / 0.50 where the halves give 0.52 / 0.56 / 0.44 and
    # 0.58 / 0.50 / 0.47, talk_01 / 02 / 04)
    bar = max(r_generic + MIN_GAIN_R, MIN_R)
    good_h = ridge is not None and r_h >= bar
    info.update(r_cv_hidden=round(r_h, 3), r_generic=round(r_generic, 3))

    def variant(offsets: tuple[int, ...], smooth: int, live: "PersonalMouth | None" = None):
        """(model or None, whether it beats the bar, its figures) reading ``offsets``."""
        model, oof = _sound_half(frames, idx, y, folds, offsets, smooth)
        s_c = centred(oof)
        r_s = _corr(s_c, y_c)
        good_s = model is not None and r_s >= bar
        weight = 0.5 if good_s and good_h else (0.0 if good_h else 1.0)
        z = [(c - c.mean()) / (c.std() + 1e-12) for c in (s_c, h_c)]
        r_cv = _corr(weight * z[0] + (1 - weight) * z[1], y_c)
        if model is not None:
            model = replace(model, hidden=ridge if weight < 1.0 else None, sound_weight=weight, live=live)
        return model, good_s or good_h, dict(r_cv=round(r_cv, 3), r_cv_sound=round(r_s, 3), sound_weight=weight)

    live, live_good, live_stats = variant(LIVE_OFFSETS, LIVE_SMOOTH)
    live = live if live_good else None
    offline, good, stats = variant(OFFSETS, SMOOTH, live)
    info.update(stats, live=dict(live_stats, used=live is not None, lookahead_ms=10 * (max(LIVE_OFFSETS) + LIVE_SMOOTH)))
    if offline is None:
        return None, dict(info, reason="the fitted opening does not vary")
    if not good:
        return offline, dict(info, reason=f"held-out r {max(info['r_cv_sound'], r_h):.2f} does not beat the generic "
                                          f"openness's {r_generic:.2f} by {MIN_GAIN_R} or falls short of {MIN_R}")
    return offline, dict(info, used=True)


def _sound_half(frames: np.ndarray, idx: np.ndarray, y: np.ndarray, folds: list[np.ndarray],
                offsets: tuple[int, ...], smooth: int) -> tuple["PersonalMouth | None", np.ndarray]:
    """The sound-based half reading ``offsets`` of (F, C) ``frames`` around rows ``idx``, fitted to
    (N,) ``y``, and its (N,) out-of-fold predictions; the model is None where those do not vary."""
    x = _stack(frames, idx, offsets).astype(np.float64)
    mean, scale = x.mean(0), x.std(0) + 1e-6
    xs = (x - mean) / scale
    gamma = GAMMA_PER_FEATURE / xs.shape[1]
    # out-of-fold predictions: an honest correlation, and the amplitude new speech will get
    oof = np.zeros_like(y)
    for test in folds:
        train = np.setdiff1d(np.arange(len(y)), test)
        coef, bias = _kernel_fit(xs[train], y[train], gamma)
        oof[test] = _rbf(xs[test], xs[train], (xs[train] ** 2).sum(1), gamma) @ coef + bias
    lo, hi = np.percentile(oof, [10, 90])
    if hi - lo < 1e-9:
        return None, oof
    coef, bias = _kernel_fit(xs, y, gamma)
    # The fit regresses to the mean (held-out predictions span about half the tracked openings'
    # range and rarely reach a closed mouth), and the renderer then picks among look-alike real
    # mouths for most frames. Its held-out predictions' quantiles are mapped onto the tracked
    # openings' own (monotone: no change in rank), then the person's p10 to closed and p90 to the
    # generic path's open vowel.
    map_in = np.percentile(oof, QUANTILES) + 1e-9 * np.arange(len(QUANTILES))  # strictly increasing
    y_lo, y_hi = np.percentile(y, [10, 90])
    map_out = (np.percentile(y, QUANTILES) - y_lo) * OPEN_SCALE / max(y_hi - y_lo, 1e-9)
    model = PersonalMouth(offsets, mean.astype(np.float32), scale.astype(np.float32), xs.astype(np.float32),
                          coef.astype(np.float32), float(bias), float(gamma), map_in, map_out, smooth=smooth)
    return model, oof
