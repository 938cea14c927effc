"""Lip-sync benchmark: ``python -m avatar.bench lipsync [--real DIR] [--quick]``.

Synthetic set: held-out sentences (never in training) spoken by espeak-ng voices (incl. the
held-out ``f3``/``m3`` variants) and flite voices, scored against the rule tracks from their
exact phone timing. Predictors: the audio-only network and forced alignment. Real speech
(if ``../shared/eval`` exists): driving_03.mp4's audio → network openness vs the inner-lip
gap tracked by mediapipe in its video, with two reference predictors beside it (the RMS energy
envelope, and PocketSphinx's own recognition forced-aligned and put through the viseme rules),
which show how far rule-made targets reach on real speech; speech_0*.wav through ``speech_track``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

SENTENCES = (
    "Please bring the maps back before the museum opens on Monday.",
    "My brother bought a big blue boat in the spring.",
    "We should probably meet at the bakery by the bridge at seven.",
    "The committee approved the budget after a very long debate.",
    "Every morning she walks her puppy along the empty beach.",
    "Would you mind putting the umbrella by the front door?",
    "Bright lamps flickered above the map table in the basement.",
    "Thomas imagined a small museum full of broken pianos.",
)
VOICES = (("espeak", "en-us", 160), ("espeak", "en-us+f3", 210), ("espeak", "en+m3", 150),
          ("espeak", "en-gb-scotland+f3", 180), ("flite", "slt", 1.0), ("flite", "awb", 1.1), ("flite", "kal16", 0.9))
FPS = 25.0


def _best_lag(pred: np.ndarray, gt: np.ndarray, fps: float, max_ms: float = 200) -> tuple[float, float]:
    """(lag ms, r at lag); positive lag = prediction late."""
    best = (0.0, -2.0)
    m = int(round(max_ms / 1000 * fps))
    for s in range(-m, m + 1):
        a = pred[s:] if s >= 0 else pred[:s]
        b = gt[: len(gt) - s] if s >= 0 else gt[-s:]
        if len(a) > 10 and a.std() > 0 and b.std() > 0:
            r = float(np.corrcoef(a, b)[0, 1])
            if r > best[1]:
                best = (1000.0 * s / fps, r)
    return best


def _score(pred_open: np.ndarray, gt, speech_mask: np.ndarray) -> dict:
    n = min(len(pred_open), len(gt.openness))
    p, g = pred_open[:n], gt.openness[:n]
    lag, r_lag = _best_lag(p, g, FPS)
    closed = gt.closed[:n] >= 1.0
    events = hits = 0
    k = 0
    while k < n:
        if closed[k] and (k == 0 or not closed[k - 1]):
            e = k
            while e < n and closed[e]:
                e += 1
            if k > 0 and e < n:  # bilabial closures inside speech (not the silences at the ends)
                if gt.viseme[k:e].size and np.any(gt.viseme[k:e] == 1):
                    events += 1
                    hits += bool(np.any(p[max(0, k - 1): e + 1] < 0.05))
            k = e
        k += 1
    sil = ~speech_mask[:n]
    return {"r": float(np.corrcoef(p, g)[0, 1]), "lag_ms": lag, "r_at_lag": r_lag, "events": events, "hits": hits,
            "sil_frames": int(sil.sum()), "sil_closed": int((p[sil] < 0.1).sum())}


def _speech_mask(phones, n: int) -> np.ndarray:
    """Frames at least 120 ms away from any non-silent phone are deep silence (False)."""
    t = np.arange(n) / FPS
    m = np.zeros(n, bool)
    for ph in phones:
        if ph.phone != "SIL":
            m |= (t >= ph.start - 0.12) & (t <= ph.end + 0.12)
    return m


def synthetic(quick: bool) -> dict:
    from avatar.motion.audio import speech_track
    from avatar.motion.audio.coarticulation import frame_tracks
    from avatar.motion.audio.state import LEAD_S
    from avatar.motion.audio.synthdata import espeak_utterance, flite_available, flite_utterance

    rows: dict[str, list[dict]] = {"network": [], "alignment": []}
    sents = SENTENCES[:3] if quick else SENTENCES
    for engine, voice, rate in VOICES:
        if engine == "flite" and not flite_available():
            continue
        for s in sents:
            u = espeak_utterance(s, voice, rate, 50) if engine == "espeak" else flite_utterance(s, voice, rate)
            n = int(np.ceil(len(u.audio) / 16000 * FPS - 1e-9))
            gt = frame_tracks(u.phones, FPS, n, lead_s=LEAD_S)  # the rule mouth, leading the sound as every path does
            mask = _speech_mask(u.phones, n)
            net = speech_track(u.audio, 16000, FPS, head_amplitude=0, blink_rate=0)
            rows["network"].append({"engine": engine, **_score(net.openness, gt, mask)})
            import warnings

            with warnings.catch_warnings(record=True):
                warnings.simplefilter("always")
                al = speech_track(u.audio, 16000, FPS, transcript=s, head_amplitude=0, blink_rate=0)
            rows["alignment"].append({"engine": engine, "fallback": al.source != "alignment", **_score(al.openness, gt, mask)})
    out = {}
    for name, rs in rows.items():
        for eng in ("espeak", "flite", "all"):
            sel = [r for r in rs if eng == "all" or r["engine"] == eng]
            if not sel:
                continue
            out[f"{name}/{eng}"] = {
                "n": len(sel), "r": statistics.median(r["r"] for r in sel),
                "lag_ms": statistics.median(r["lag_ms"] for r in sel),
                "closures": sum(r["hits"] for r in sel) / max(1, sum(r["events"] for r in sel)),
                "sil_closed": sum(r["sil_closed"] for r in sel) / max(1, sum(r["sil_frames"] for r in sel)),
                **({"fallbacks": sum(r["fallback"] for r in sel)} if name == "alignment" else {}),
            }
    return out


def speed() -> dict:
    import torch

    from avatar.motion.audio.stream import network_frames

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(16000 * 60) * 0.05).astype(np.float32)
    times = []
    network_frames(x[:16000], FPS)
    for _ in range(3):
        t = time.perf_counter()
        network_frames(x, FPS)
        times.append(time.perf_counter() - t)
    return {"audio_s": 60, "median_s": statistics.median(times), "x_realtime": 60 / statistics.median(times)}


def real(eval_dir: Path) -> dict:
    out: dict = {}
    video = eval_dir / "driving_03.mp4"
    if video.is_file():
        import av

        from avatar.face.landmarks import LandmarkDetector
        from avatar.motion.audio import load_audio, speech_track

        det = LandmarkDetector(video=True, max_faces=1)
        gaps, fps = [], None
        with av.open(str(video)) as c:
            st = c.streams.video[0]
            fps = float(st.average_rate)
            for fr in c.decode(st):
                faces = det.detect(fr.to_ndarray(format="rgb24"))
                if faces:
                    lm = faces[0].landmarks
                    gaps.append(np.linalg.norm(lm[14, :2] - lm[13, :2]) / np.linalg.norm(lm[152, :2] - lm[10, :2]))
                else:
                    gaps.append(np.nan)
        gap = np.array(gaps)
        gap = np.where(np.isnan(gap), np.nanmedian(gap), gap)
        a = load_audio(video)
        tr = speech_track(a, 16000, fps, head_amplitude=0, blink_rate=0)
        n = min(len(gap), len(tr))
        out["driving_03"] = {"frames": n, "fps": fps, **_against(tr.openness[:n], gap[:n], fps)}
        out["driving_03 reference: energy"] = _against(_rms_frames(a, fps, n), gap[:n], fps)
        try:
            from avatar.motion.audio.align import align, recognise
            from avatar.motion.audio.coarticulation import frame_tracks

            text = recognise(a)
            aligned = frame_tracks(align(a, text), fps, n).openness
            out["driving_03 reference: recognised + aligned + rules"] = {"text": text, **_against(aligned, gap[:n], fps)}
        except Exception as exc:  # a diagnostic: report, do not stop the benchmark
            out["driving_03 reference: recognised + aligned + rules"] = f"unavailable ({exc})"
    from avatar.motion.audio import load_audio, speech_track

    for wav in sorted(eval_dir.glob("speech_0*.wav")):
        a = load_audio(wav)
        t = time.perf_counter()
        tr = speech_track(a, 16000, 25)
        dt = time.perf_counter() - t
        out[wav.name] = {"seconds": round(len(a) / 16000, 2), "frames": len(tr), "x_realtime": round(len(a) / 16000 / dt, 1),
                         "open_share": round(float(np.mean(tr.openness > 0.1)), 3), **_whole_path(wav)}
    return out


def _against(pred: np.ndarray, gap: np.ndarray, fps: float) -> dict:
    """Correlation of a predicted openness with the tracked lip gap, at zero lag and at the best lag."""
    lag, r_lag = _best_lag(pred, gap, fps)
    return {"r": round(float(np.corrcoef(pred, gap)[0, 1]), 3), "lag_ms": lag, "r_at_lag": round(r_lag, 3)}


def _rms_frames(audio16k: np.ndarray, fps: float, n: int) -> np.ndarray:
    """RMS energy per render frame (a window of one frame centred on it)."""
    import librosa

    hop = int(round(16000 / fps))
    return librosa.feature.rms(y=audio16k, frame_length=2 * hop, hop_length=hop, center=True)[0][:n]


def _whole_path(wav: Path) -> dict:
    """``avatar talk`` on the bundled portrait: render speed and the written file's A/V durations."""
    import os
    import tempfile

    import av

    from avatar.config import AvatarConfig
    from avatar.examples import example_portrait
    from avatar.output.consent import POLICY_ENV
    from avatar.pipeline import Animator

    os.environ[POLICY_ENV] = "research"  # evaluation output, deleted below
    with tempfile.TemporaryDirectory() as tmp:
        res = Animator(AvatarConfig()).talk(example_portrait(), Path(tmp) / "talk.mp4", audio=wav, progress=False)
        with av.open(str(res.path)) as c:
            v, a = c.streams.video[0], c.streams.audio[0]
            vd, ad = float(v.duration * v.time_base), float(a.duration * a.time_base)
    return {"talk_fps": round(res.achieved_fps, 1), "video_s": round(vd, 2), "audio_s": round(ad, 2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m avatar.bench lipsync", description=__doc__.splitlines()[0])
    ap.add_argument("--eval", type=Path, default=Path(__file__).resolve().parents[2] / ".." / "shared" / "eval",
                    help="evaluation folder (driving_03.mp4, speech_0*.wav, clone/talk_*.mp4)")
    ap.add_argument("--real", action="store_true",
                    help="real-speech benchmark: each talking clip's audio drives a still frame of it (see _lipsync_real)")
    ap.add_argument("--seconds", type=float, default=30.0, help="--real: the first SECONDS of each clip")
    ap.add_argument("--no-render", action="store_true", help="--real: score the target landmarks only (fast)")
    ap.add_argument("--no-synthetic", action="store_true", help="skip the synthetic set")
    ap.add_argument("--quick", action="store_true", help="3 sentences per voice")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    print("speed:", speed(), flush=True)
    if not args.no_synthetic:
        for k, v in synthetic(args.quick).items():
            print(f"synthetic {k}: " + ", ".join(f"{a}={b:.3f}" if isinstance(b, float) else f"{a}={b}" for a, b in v.items()), flush=True)
    if not args.eval.is_dir():
        print(f"real: {args.eval} not found, skipped")
    elif args.real:
        from ._lipsync_real import run

        res = run(args.eval, args.seconds, render=not args.no_render, log=lambda s: print(s, flush=True))
        for k, v in res["mean"].items():
            print(f"real mean {k}: {v}", flush=True)
    else:
        for k, v in real(args.eval).items():
            print(f"real {k}: {v}", flush=True)
    return 0
