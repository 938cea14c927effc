"""This person's audio-to-mouth amplitude, timing and mouth width, measured at clone time from
the clip's own sound.

The talk pipeline's generic audio-to-mouth network is run on the clip's audio; the spread of the
mouth opening it predicts (p90 - p10) is compared with the spread of the opening actually tracked
in the clip. Their ratio is the person's ``mouth_gain``: a speaker who barely opens the mouth gets
a gain below 1, so a talking video avatar keeps their own amplitude. The same prediction gives
``lag_s``, how late this person's mouth moves against the generic one (the lag within ±200 ms
that best correlates the two openings), and ``width_gain``, the ratio of their mouth-width spread
to the predicted one (a speaker who barely widens the mouth keeps it so). A few seconds on CPU.

That gain is then checked on the avatar's own output (:func:`render_gain`, run by the pack build
once the pack's files are written): the avatar speaks some of the clip's sound, its output is
tracked like the footage, and the gain is corrected until the rendered lip gap matches the
footage's (the open-loop one left rendered openings at 0.36-0.74x the speakers' own).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .features import face_features, lip_gap, opening
from .track import Track

if TYPE_CHECKING:
    from ..motion.audio.personal import PersonalMouth
    from .store import Pack

log = logging.getLogger(__name__)

MAX_SECONDS = 30.0          # audio used for calibration (enough for a stable percentile)
GAIN_RANGE = (0.05, 3.0)    # beyond this the track or the audio is more likely wrong than the person
WIDTH_GAIN_RANGE = (0.1, 3.0)
PREDICT_FPS = 25.0          # the prediction's rate at least (the talk default): finer than a lag step
MAX_LAG_S = 0.2             # lags searched
LAG_STEP_S = 0.01
LAG_CLIP_S = 0.15           # a person's own lag is kept within this (beyond: more likely a bad mux)
RENDER_SECONDS = 20.0       # speech rendered and tracked to check the gain (10 s: p90 ratios of 0.77-0.99 between windows of one clip)
RENDER_STEPS = 3            # renders at most (on the dev clips one to three reach the tolerance)
RENDER_TOLERANCE = 0.08     # rendered/real p90 this close to 1 needs no further step
MIN_LAG_CORR = 0.3          # a weaker peak says little about timing (talk_02: a 0.24 one moved r 0.01 to -0.16)
PERSONAL_SECONDS = 300.0    # sound used to fit the person's own mouth model (more speech, a better fit)
MODEL_FILE = "mouth_model.npz"


def spread(x: np.ndarray) -> float:
    """p90 - p10 of ``x``: its range, robust to a few tracking glitches."""
    return float(np.percentile(x, 90) - np.percentile(x, 10))


def box_mean(x: np.ndarray, k: int) -> np.ndarray:
    """``x`` averaged over a centred window of ``k`` samples (edges repeated), same length."""
    if k <= 1 or len(x) < 2:
        return x
    padded = np.pad(x, (k // 2, k - 1 - k // 2), mode="edge")
    return np.convolve(padded, np.ones(k) / k, mode="valid")


def mouth_lag(times: np.ndarray, real: np.ndarray, pred_times: np.ndarray, pred: np.ndarray,
              max_lag: float = MAX_LAG_S, step: float = LAG_STEP_S) -> tuple[float, float]:
    """(lag seconds, correlation): the shift L in ±``max_lag`` that best correlates ``real``
    (sampled at ``times``) with ``pred`` sampled at ``times - L``; positive when the real mouth
    comes later. The prediction is interpolated, so the lag is finer than the tracked frame rate."""
    lags = np.arange(-max_lag, max_lag + step / 2, step)
    # only samples every shift can reach, so each lag is judged on the same frames
    ok = (times - max_lag >= pred_times[0]) & (times + max_lag <= pred_times[-1])
    t, r = times[ok], real[ok] - real[ok].mean()
    if len(t) < 10 or float(r.std()) < 1e-9:
        return 0.0, 0.0
    shifted = np.stack([np.interp(t - lag, pred_times, pred) for lag in lags])
    shifted -= shifted.mean(1, keepdims=True)
    denom = np.sqrt((shifted ** 2).sum(1) * (r ** 2).sum()) + 1e-12
    corr = (shifted @ r) / denom
    k = int(np.argmax(corr))
    return float(lags[k]), float(corr[k])


@dataclass(frozen=True, eq=False)
class ClipSound:
    """A clip's sound decoded once for the calibration steps of one build: 16 kHz mono float32
    ``pcm`` from ``t0`` s of ``path``. Each step asks for its own span; one decode serves them all."""

    path: str
    t0: float
    pcm: np.ndarray

    @classmethod
    def decode(cls, video: str | Path, t0: float, seconds: float) -> "ClipSound":
        return cls(str(video), t0, _decode(video, t0, seconds))


def _decode(video: str | Path, t0: float, seconds: float) -> np.ndarray:
    """(n,) float32 16 kHz: up to ``seconds`` of ``video``'s sound from ``t0``."""
    from ..media.video import iter_audio

    pcm: list[np.ndarray] = []
    parts, need = 0, int(seconds * 16000)
    skip = int(t0 * 16000)
    for chunk in iter_audio(video, 16000):
        if skip >= len(chunk):
            skip -= len(chunk)
            continue
        chunk, skip = chunk[skip:], 0
        pcm.append(chunk)
        parts += len(chunk)
        if parts >= need:
            break
    return np.concatenate(pcm)[:need].astype(np.float32) if pcm else np.zeros(0, np.float32)


def _audio(video: "str | Path | ClipSound", t0: float, seconds: float) -> np.ndarray:
    """Up to ``seconds`` of the clip's sound from ``t0`` (16 kHz): sliced from a :class:`ClipSound`
    that starts there, else decoded."""
    if isinstance(video, ClipSound):
        if abs(video.t0 - t0) < 1e-6:
            return video.pcm[:int(seconds * 16000)]
        video = video.path
    return _decode(video, t0, seconds)


def first_sound(track: Track, start: float) -> float | str:
    """Where calibration starts (the first tracked face at or after ``start``), or why it cannot."""
    if track.audio is None or track.loudness is None or not track.info.has_audio:
        return "the clip has no audio"
    found = track.found
    if found.sum() < 10:
        return "too few tracked frames"
    return max(start, float(track.times[found][0]))


def personal_mouth(video: "str | Path | ClipSound", track: Track, start: float = 0.0) -> tuple["PersonalMouth | None", dict]:
    """This person's own audio-to-mouth model (:mod:`avatar.motion.audio.personal`), fitted on up
    to ``PERSONAL_SECONDS`` of the clip's sound and tracked mouth opening; (model, info). The
    model is None, or ``info["used"]`` false, where it cannot be fitted or does not beat the
    generic openness on held-out parts of the clip."""
    from ..motion.audio.personal import fit_personal_mouth
    from ..motion.audio.state import LEAD_S

    t0 = first_sound(track, start)
    if isinstance(t0, str):
        return None, {"used": False, "reason": t0}
    audio = _audio(video, t0, PERSONAL_SECONDS)
    sel = track.found & (track.times >= t0) & (track.times < t0 + len(audio) / 16000)
    if not len(audio) or sel.sum() < 10:
        return None, {"used": False, "reason": "too little footage with sound"}
    model, info = fit_personal_mouth(audio, track.times[sel] - t0, opening(track.features[sel]), LEAD_S)
    return model, dict(info, seconds=round(len(audio) / 16000, 2))


def calibrate_mouth(video: "str | Path | ClipSound", track: Track, start: float = 0.0, personal: "PersonalMouth | None" = None) -> dict:
    """``{"mouth_gain": g, "lag_s": l, "width_gain": w, "seconds": s, ...}``, or ``{"skipped":
    reason}`` when it cannot be measured (no audio, too little speech, no face).

    With ``personal`` (this person's own mouth model) the speech path is the one talking will
    use with it; its timing was learnt with the model, so the lag is 0."""
    from ..motion.audio.drive import LiveSpeech

    t0 = first_sound(track, start)
    if isinstance(t0, str):
        return {"skipped": t0}
    found = track.found
    audio = _audio(video, t0, MAX_SECONDS)
    if not len(audio):
        return {"skipped": "the clip's audio is empty"}
    dt = np.diff(track.times[found])
    fps = float(1.0 / np.median(dt)) if len(dt) else 15.0
    pred_fps = max(min(fps, 240.0), PREDICT_FPS)
    lm = track.landmarks[np.flatnonzero(found)[0]].astype(np.float32)
    speech = LiveSpeech(lm, fps=pred_fps, seed=0, head_amplitude=0.0, blink_rate=0.0, personal=personal)
    targets = list(speech.push(audio)) + list(speech.flush())
    if len(targets) < 2:
        return {"skipped": "the clip's audio is too short"}
    feats = np.stack([face_features(t) for t in targets])
    pred_t = np.arange(len(feats)) / pred_fps
    sel = found & (track.times >= t0) & (track.times < t0 + len(audio) / 16000)
    times = track.times[sel] - t0
    ok = times <= pred_t[-1]
    times, real_f = times[ok], track.features[sel][ok]
    if len(times) < 10:
        return {"skipped": "too little footage with sound"}
    real = opening(real_f)
    pred = np.interp(times, pred_t, feats[:, 3])
    real_amp, pred_amp = spread(real), spread(pred)
    if pred_amp < 1e-3:
        return {"skipped": "the clip's audio holds no speech"}
    gain = float(np.clip(real_amp / pred_amp, *GAIN_RANGE))
    # compared at the tracked frames' resolution: the finer prediction averaged over one tracked
    # frame interval (centred, so it shifts nothing), else a lip closure between two tracked frames
    # pulls the peak by tens of milliseconds
    lag, corr = mouth_lag(times, real, pred_t, box_mean(feats[:, 3], int(round(pred_fps / fps))))
    lag = float(np.clip(lag, -LAG_CLIP_S, LAG_CLIP_S)) if corr >= MIN_LAG_CORR and personal is None else 0.0
    # the predicted width shifted by the lag just found, as talking will show it
    real_w, pred_w = spread(real_f[:, 4]), spread(np.interp(times - lag, pred_t, feats[:, 4]))
    width_gain = float(np.clip(real_w / pred_w, *WIDTH_GAIN_RANGE)) if pred_w > 1e-4 else 1.0
    return {"mouth_gain": round(gain, 4), "lag_s": round(lag, 3), "width_gain": round(width_gain, 4),
            "from_s": round(t0, 3), "seconds": round(len(audio) / 16000, 2), "real_spread": round(real_amp, 4),
            "predicted_spread": round(pred_amp, 4), "lag_correlation": round(corr, 3),
            "real_width_spread": round(real_w, 4), "predicted_width_spread": round(pred_w, 4)}


def _next_gain(tried: list[tuple[float, float]], real: float) -> float:
    """The gain to try next after ``tried`` (gain, rendered p90) pairs, in log-log terms: the
    rendered p90 grows like a power of the gain, the power ranging from about 1 (the dev clips)
    to about 0.35 (a talker whose lips rest apart, so small gains still show a gap). Between the
    nearest gains known to render too little and too much: interpolation. Otherwise the power
    through the last two readings (kept within a factor of 3 of the last gain, in the direction the
    last reading asks for), or from one reading the ratio to the footage's."""
    g1, p1 = tried[-1]
    low = [(g, p) for g, p in tried if p < real]
    high = [(g, p) for g, p in tried if p >= real]
    log = lambda v: math.log(max(v, 1e-9))  # noqa: E731
    if low and high:
        (ga, pa), (gb, pb) = max(low), min(high)
        w = (log(real) - log(pa)) / max(log(pb) - log(pa), 1e-9)
        gain = math.exp(log(ga) + w * (log(gb) - log(ga)))
    else:
        gain = g1 * real / max(p1, 1e-6)
        if len(tried) >= 2:
            g0, p0 = tried[-2]
            power = (log(p1) - log(p0)) / (log(g1) - log(g0)) if abs(log(g1) - log(g0)) > 1e-6 else 0.0
            if power > 0.05:
                gain = float(np.clip(g1 * (real / max(p1, 1e-6)) ** (1.0 / power), g1 / 3, 3 * g1))
    return float(np.clip(gain, *GAIN_RANGE))


def render_gain(pack: "Pack", anchor_frame: np.ndarray, anchor_landmarks: np.ndarray, video: "str | Path | ClipSound",
                track: Track, talk: dict, size: int = 512) -> dict:
    """``talk`` with its ``mouth_gain`` checked on the avatar's own output (closed loop).

    The open-loop gain compares tracked features with the generic prediction, but what a viewer
    sees is a real mouth warped to that target, composited and tracked again: a mediapipe reading
    of a warped, narrowed mouth comes out smaller (0.6-0.8x on talk_04), so the open-loop gain
    left rendered openings at 0.36-0.74x the speaker's own. Here the first ``RENDER_SECONDS`` of
    the calibration sound are spoken by the avatar itself (the talking path, at ``size``), the
    output is tracked like the footage, and the gain is corrected (:func:`_next_gain`) until the
    rendered 90th-percentile lip gap (:func:`~avatar.pack.features.lip_gap`) is within
    ``RENDER_TOLERANCE`` of the footage's over the same seconds, in at most ``RENDER_STEPS``
    renders. ``pack`` may be the uncommitted one of a build. Unchanged when the pack cannot talk
    from its footage."""
    from ..config import FaceConfig
    from ..face.crop import crop_box, crop_matrix, make_crop
    from ..face.landmarks import LandmarkDetector
    from ..motion.audio.drive import LiveSpeech
    from ..render.keyframes import KeyframeEngine
    from ..render.talking import DEFAULT_FPS, TalkState

    if "mouth_gain" not in talk:
        return talk
    t0 = float(talk.get("from_s", 0.0))
    audio = _audio(video, t0, RENDER_SECONDS)
    sel = track.found & (track.times >= t0) & (track.times < t0 + len(audio) / 16000)
    if sel.sum() < 10:
        return talk
    real = float(np.percentile(lip_gap(track.landmarks[sel]), 90))
    engine = KeyframeEngine(pack=pack)
    face = FaceConfig(size=size, crop_scale=engine.crop_scale(FaceConfig().crop_scale, "audio"))  # as talking crops
    lm = np.asarray(anchor_landmarks, np.float32)
    crop = make_crop(anchor_frame, lm, crop_matrix(crop_box(lm, face), size), size)
    keys = engine.prepare(crop)
    state = engine.for_use(keys, "audio")
    if not isinstance(state, TalkState) or state.fallback:
        return talk
    speech = LiveSpeech(crop.landmarks, fps=DEFAULT_FPS, seed=0, head_amplitude=0.0, blink_rate=0.0,
                        personal=state.personal)
    targets = list(speech.push(audio)) + list(speech.flush())
    gain, open_loop, rendered = float(talk["mouth_gain"]), float(talk["mouth_gain"]), float("nan")
    tried: list[tuple[float, float]] = []
    steps = 0
    for steps in range(1, RENDER_STEPS + 1):
        state.restart()  # each gain from the same first frame (the graph is rewound, not rebuilt: 0.4 s each)
        state.gain = gain
        gaps = []
        with LandmarkDetector(video=True, max_faces=1) as det:
            for t in targets:
                faces = det.detect(engine.render_one(state, t))
                if faces:
                    gaps.append(float(lip_gap(faces[0].landmarks)))
        if len(gaps) < 10:
            return talk
        rendered = float(np.percentile(gaps, 90))
        tried.append((gain, rendered))
        log.debug("mouth gain %.3f renders p90 lip gap %.4f (footage %.4f)", gain, rendered, real)
        if abs(real / max(rendered, 1e-6) - 1.0) <= RENDER_TOLERANCE:
            break
        if steps == RENDER_STEPS:
            # out of renders: the gain whose output came closest, not an untried guess (the output
            # moves in steps as real mouths take over from each other, so a guess can overshoot)
            gain, rendered = min(tried, key=lambda gp: abs(math.log(max(gp[1], 1e-9) / real)))
            break
        gain = _next_gain(tried, real)
    log.info("mouth gain %.3f (open loop %.3f): rendered/real p90 lip gap %.3f/%.3f", gain, open_loop, rendered, real)
    return dict(talk, mouth_gain=round(gain, 4), open_loop_gain=round(open_loop, 4), real_gap_p90=round(real, 4),
                rendered_gap_p90=round(rendered, 4), render_steps=steps)
