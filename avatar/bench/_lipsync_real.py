"""Real-speech lip-sync benchmark: each clip's own audio drives a still frame of it; the rendered mouth
is tracked and compared with the real one (``python -m avatar.bench lipsync --real``).

Clips: ``eval/clone/talk_*.mp4`` and ``eval/driving_03.mp4`` (the first ``seconds`` of each).
The portrait is the clip's first frame with its lips together (within the first 3 s; frame 0 of
driving_03 is mid-word with the mouth wide open, which would offset every rendered frame).
Mouth measures, identical for real and rendered frames (mediapipe face mesh, tracking mode):
opening = inner-lip gap 13–14 / face height 10–152; width = corners 61–291 / outer eye corners
33–263 (both shrink alike when the head turns).
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CLOSED_GAP = 0.012  # opening below this share of the face height counts as lips together


@dataclass(frozen=True, eq=False)
class MouthTrack:
    """Per-frame mouth measures on a grid t = k / fps (NaN-free)."""

    opening: np.ndarray
    width: np.ndarray


def mouth_measures(landmarks: np.ndarray) -> tuple[float, float]:
    """(opening, width) of one (478, ≥2) landmark set, normalised by the face's own size."""
    lm = np.asarray(landmarks)[:, :2]
    face_h = np.linalg.norm(lm[152] - lm[10])
    iod = np.linalg.norm(lm[263] - lm[33])
    return float(np.linalg.norm(lm[14] - lm[13]) / face_h), float(np.linalg.norm(lm[291] - lm[61]) / iod)


def _fill(x: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(x), np.nanmedian(x), x) if np.any(~np.isnan(x)) else np.zeros_like(x)


def track_frames(frames) -> MouthTrack:
    """Track mouth measures over images (any iterable); frames without a face get the median."""
    from avatar.face.landmarks import LandmarkDetector

    op, wd = [], []
    with LandmarkDetector(video=True, max_faces=1) as det:
        for img in frames:
            faces = det.detect(img)
            o, w = mouth_measures(faces[0].landmarks) if faces else (np.nan, np.nan)
            op.append(o)
            wd.append(w)
    return MouthTrack(_fill(np.array(op)), _fill(np.array(wd)))


@dataclass(frozen=True, eq=False)
class RealClip:
    """One clip: its audio (16 kHz), fps, the real mouth on the render grid and the portrait frame."""

    name: str
    fps: float
    audio: np.ndarray
    real: MouthTrack
    portrait: np.ndarray
    portrait_index: int


def load_clip(path: Path, seconds: float) -> RealClip:
    """Decode ``seconds`` of a talking video, track its mouth and pick the portrait frame."""
    import av

    from avatar.motion.audio import load_audio

    images, times = [], []
    with av.open(str(path)) as c:
        st = c.streams.video[0]
        fps = float(st.average_rate)
        for fr in c.decode(st):
            t = float(fr.time)
            if t >= seconds:
                break
            images.append(fr.to_ndarray(format="rgb24"))
            times.append(t)
    track = track_frames(images)
    audio = load_audio(path)[: int(seconds * 16000)]
    n = int(np.ceil(min(len(audio) / 16000, times[-1] + 1 / fps) * fps - 1e-9))
    grid = np.arange(n) / fps  # the render grid; a video that starts late (talk_02: 80 ms) is interpolated onto it
    real = MouthTrack(np.interp(grid, times, track.opening), np.interp(grid, times, track.width))
    early = [i for i, t in enumerate(times) if t < 3.0]
    closed = [i for i in early if track.opening[i] < CLOSED_GAP]
    k = closed[0] if closed else min(early, key=lambda i: track.opening[i])
    return RealClip(path.stem, fps, audio[: int(round(n / fps * 16000))], real, images[k], k)


def _best_lag(pred: np.ndarray, real: np.ndarray, fps: float, max_ms: float = 200.0) -> tuple[float, float]:
    """(lag ms, r at that lag) within ±max_ms; positive = the prediction is late."""
    best = (0.0, -2.0)
    m = int(round(max_ms / 1000 * fps))
    for s in range(-m, m + 1):
        a = pred[s:] if s >= 0 else pred[:s]
        b = real[: len(real) - s] if s >= 0 else real[-s:]
        if len(a) > 10 and a.std() > 0 and b.std() > 0:
            r = float(np.corrcoef(a, b)[0, 1])
            if r > best[1]:
                best = (1000.0 * s / fps, r)
    return best


def _r(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else 0.0


def score(pred: MouthTrack, real: MouthTrack, fps: float, bilabials: list[tuple[float, float]] | None) -> dict:
    """Openness r (zero and best lag), p50/p90 opening ratio, width r, p/b/m closures."""
    n = min(len(pred.opening), len(real.opening))
    p, g = pred.opening[:n], real.opening[:n]
    lag, r_lag = _best_lag(p, g, fps)
    out = {"r": round(_r(p, g), 3), "lag_ms": lag, "r_at_lag": round(r_lag, 3),
           "p50": round(float(np.percentile(p, 50) / max(np.percentile(g, 50), 1e-4)), 2),
           "p90": round(float(np.percentile(p, 90) / max(np.percentile(g, 90), 1e-4)), 2),
           "width_r": round(_r(pred.width[:n], real.width[:n]), 3)}
    if bilabials:
        hit = real_hit = 0
        for s, e in bilabials:
            a, b = max(0, int(np.floor(s * fps)) - 1), min(n, int(np.ceil(e * fps)) + 2)
            if a >= b:
                continue
            hit += bool(np.min(p[a:b]) < CLOSED_GAP)
            real_hit += bool(np.min(g[a:b]) < CLOSED_GAP)
        out.update({"pbm": len(bilabials), "pbm_closed": round(hit / len(bilabials), 2),
                    "pbm_real_closed": round(real_hit / len(bilabials), 2)})
    return out


def recognised_phones(audio16k: np.ndarray):
    """PocketSphinx's own recognition, forced-aligned: (text, phones), or (None, None) when nothing fits."""
    from avatar.motion.audio.align import AlignmentError, align, recognise

    try:
        text = recognise(audio16k)
        return text, align(audio16k, text)
    except AlignmentError:
        return None, None


def target_track(portrait_landmarks: np.ndarray, track, config) -> MouthTrack:
    """Mouth measures of the target landmarks the engine is asked to draw (no rendering)."""
    from avatar.motion.audio.drive import SpeechDriver
    from avatar.motion.rig import RigConfig

    drv = SpeechDriver(portrait_landmarks, config.motion, RigConfig(intensity=config.speech.intensity))
    m = [mouth_measures(t) for t in drv.targets(track)]
    return MouthTrack(np.array([a for a, _ in m]), np.array([b for _, b in m]))


def rendered_track(animator, prepared, track) -> MouthTrack:
    """Render the speech track on the portrait and track the rendered mouth."""
    from avatar.motion.audio.drive import SpeechDriver
    from avatar.motion.rig import RigConfig

    cfg = animator.config
    drv = SpeechDriver(prepared.crop.landmarks, cfg.motion, RigConfig(intensity=cfg.speech.intensity))
    frames = animator.stream_targets(prepared, drv.targets(track))
    return track_frames(frames)


def clips(eval_dir: Path) -> list[Path]:
    """The real talking clips of the evaluation folder."""
    out = sorted((eval_dir / "clone").glob("talk_*.mp4"))
    if (eval_dir / "driving_03.mp4").is_file():
        out.append(eval_dir / "driving_03.mp4")
    return out


def run(eval_dir: Path, seconds: float = 30.0, render: bool = True, config=None, log=print) -> dict:
    """Score every clip; returns {clip: {predictor: scores}} plus a "mean" row per predictor."""
    from avatar.config import AvatarConfig
    from avatar.motion.audio import speech_track
    from avatar.output.consent import POLICY_ENV
    from avatar.pipeline import Animator

    os.environ.setdefault(POLICY_ENV, "research")  # evaluation output, never written to disk
    config = config or AvatarConfig()
    config = dataclasses.replace(config, output=dataclasses.replace(config.output, paste_back=False))
    animator = Animator(config)
    sc = config.speech
    results: dict = {}
    for path in clips(eval_dir):
        t0 = time.perf_counter()
        clip = load_clip(path, seconds)
        text, phones = recognised_phones(clip.audio)
        bil = [(p.start, p.end) for p in phones or [] if p.phone in ("P", "B", "M")]
        prepared = animator.prepare(clip.portrait, use="audio", name=clip.name)
        kw = dict(head_amplitude=0.0, blink_rate=0.0, lead_s=sc.lead_s)
        rows = {}
        net = speech_track(clip.audio, 16000, clip.fps, **kw)
        rows["network"] = score(target_track(prepared.crop.landmarks, net, config), clip.real, clip.fps, bil)
        if render:
            rows["network, rendered"] = score(rendered_track(animator, prepared, net), clip.real, clip.fps, bil)
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rec = speech_track(clip.audio, 16000, clip.fps, recognise=True, **kw)  # `avatar talk --recognise`
        rows["recognition"] = score(target_track(prepared.crop.landmarks, rec, config), clip.real, clip.fps, bil)
        if render:
            rows["recognition, rendered"] = score(rendered_track(animator, prepared, rec), clip.real, clip.fps, bil)
        rows["_info"] = {"seconds": round(len(clip.audio) / 16000, 1), "fps": clip.fps, "portrait_frame": clip.portrait_index,
                         "real_p50": round(float(np.percentile(clip.real.opening, 50)), 4),
                         "real_p90": round(float(np.percentile(clip.real.opening, 90)), 4),
                         "recognised": (text or "")[:60], "bench_s": round(time.perf_counter() - t0, 1)}
        results[clip.name] = rows
        log(f"real {clip.name}: {rows}")
    names = {k for rows in results.values() for k in rows if not k.startswith("_")}
    for k in sorted(names):
        sel = [rows[k] for rows in results.values() if k in rows]
        results.setdefault("mean", {})[k] = {m: round(float(np.mean([s[m] for s in sel if m in s])), 3)
                                             for m in ("r", "r_at_lag", "lag_ms", "p50", "p90", "width_r", "pbm_closed")
                                             if any(m in s for s in sel)}
    return results
