"""Video cloning on ``../shared/eval/clone/talk_0*.mp4``: clone on the first 60 %, test on the rest.

``python -m avatar.bench clone [--eval DIR] [--size 512] [--max-frames N] [--clips talk_03]``

Per clip: the first 60 % is cut and re-encoded (with its sound) and cloned under the research
policy (build time vs that part's duration); then the avatar is driven by the last 40 %'s video
(self-reenactment: the targets are the real frames' own tracked landmarks, same camera, mapped
into the source crop — relative motion would keep the anchor's framing, and the clips zoom) and
compared with the real frames: face-box L1 (landmark box of the real face), mouth-box L1 (the
lips' box + 40 % margin), landmark error / IOD (the output re-tracked); flicker = mean absolute
frame-to-frame change in the face box when driven by one still frame (re-tracked with fresh
noise of σ 2 grey levels each frame, so landmark jitter comes through as from a camera) and, for
scale, on the real driving, next to the real video's own; render fps = frames / time of motion + render +
paste-back (landmarks tracked up front). The photo engine (warp), with the clip's first frame as
its portrait, runs on the same frames beside it.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ..config import AvatarConfig, FaceConfig, OutputConfig
from ..face import topology
from ..face.crop import transform_points
from ..media.video import AudioSpec, VideoWriter, probe_video, read_audio, read_frames
from ..motion.transfer import best_reference
from ..pipeline import Animator
from .quality import track

_DEFAULT_EVAL = Path(__file__).resolve().parents[2].parent / "shared" / "eval" / "clone"


def cut(path: Path, out: Path, start: float, end: float) -> Path:
    """Re-encode the frames of [start, end) s of ``path`` to ``out``, with the sound from the
    first kept frame's time on: the cut starts at 0 s, and a clip whose video starts after its
    sound (talk_02's first frame is at 80 ms) would otherwise put the sound that late against
    the mouths, which a mouth model fitted on the cut learns as the person's timing."""
    info = probe_video(path)
    pcm = read_audio(path, 16000) if info.has_audio else None
    with read_frames(path) as reader:
        first = next((f for f in reader if reader.time >= start), None)
        t0 = reader.time
        if first is None or t0 >= end:
            raise ValueError(f"{path} has no frame in [{start}, {end}) s")
        audio = None if pcm is None else AudioSpec.from_array(sound_at(pcm, t0, end - t0), 16000)
        with VideoWriter(out, info.fps, crf=16, audio=audio) as w:
            w.write(first)
            for f in reader:
                if reader.time >= end:
                    break
                w.write(f)
    return out


def sound_at(pcm: np.ndarray, t0: float, seconds: float, rate: int = 16000) -> np.ndarray:
    """``seconds`` of ``pcm`` (decoded from the start of a clip's sound) from ``t0`` s on."""
    return pcm[int(round(t0 * rate)):int(round((t0 + seconds) * rate))]


def _box(lm: np.ndarray, ids: np.ndarray | None = None, margin: float = 0.0, shape: tuple[int, int] = (0, 0)):
    pts = lm[ids, :2] if ids is not None else lm[:, :2]
    lo, hi = pts.min(0), pts.max(0)
    pad = (hi - lo) * margin
    lo, hi = lo - pad, hi + pad
    h, w = shape
    x0, y0 = np.floor(lo).astype(int).clip(0)
    x1, y1 = np.ceil(hi).astype(int)
    return x0, y0, min(x1, w), min(y1, h)


def talk_clips(folder: Path, names: list[str] | None) -> list[Path]:
    """The ``talk_0*.mp4`` clips of ``folder`` (only ``names``, by stem, when given)."""
    clips = sorted(folder.glob("talk_0*.mp4"))
    return [c for c in clips if c.stem in names] if names else clips


def research_home(prefix: str, parent: Path | None = None) -> Path:
    """A throwaway avatar store for evaluation footage (a new folder in ``parent`` or the temp
    folder), made the current one (``AVATAR_HOME``), under the documented research consent policy."""
    from ..output.consent import POLICY_ENV

    home = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    os.environ["AVATAR_HOME"] = str(home)
    os.environ[POLICY_ENV] = "research"
    return home


def _l1(a: np.ndarray, b: np.ndarray, box) -> float:
    x0, y0, x1, y1 = box
    return float(np.abs(a[y0:y1, x0:x1].astype(np.float32) - b[y0:y1, x0:x1]).mean() / 255)


def scores(out: list[np.ndarray], real: list[np.ndarray], lm_real: list[np.ndarray | None]) -> dict[str, float]:
    """Face-box L1, mouth-box L1 and landmark error / IOD of ``out`` against ``real``."""
    lips = topology.mesh()["lips"]
    lm_out = track(out)
    face, mouth, err = [], [], []
    for o, r, a, b in zip(out, real, lm_real, lm_out):
        if a is None:
            continue
        face.append(_l1(o, r, _box(a, shape=r.shape[:2])))
        mouth.append(_l1(o, r, _box(a, lips, 0.4, r.shape[:2])))
        if b is not None:
            err.append(np.linalg.norm(a[:, :2] - b[:, :2], axis=1).mean() / np.linalg.norm(a[33, :2] - a[263, :2]))
    return {"face": float(np.mean(face)), "mouth": float(np.mean(mouth)), "lm": float(np.mean(err)) if err else float("nan")}


def flicker(frames: list[np.ndarray], lm: np.ndarray) -> float:
    """Mean absolute frame-to-frame change (0..1) inside the face box of ``lm``."""
    box = _box(lm, shape=frames[0].shape[:2])
    return float(np.mean([_l1(a, b, box) for a, b in zip(frames[:-1], frames[1:])])) if len(frames) > 1 else 0.0


def drive(animator: Animator, source, frames: list[np.ndarray], fps: float, lms: list[np.ndarray | None],
          absolute: bool = True) -> tuple[list[np.ndarray], float]:
    """Self-reenactment. ``absolute``: the targets are the real frames' own landmarks (same camera,
    mapped into the source crop), so the output can be compared with the real frames pixel for
    pixel; else as ``avatar animate`` does it (relative motion from the best reference frame)."""
    src = animator.prepare(source, name="source")
    t0 = time.perf_counter()
    if absolute:
        last = next(lm for lm in lms if lm is not None)
        targets = []
        for lm in lms:
            last = lm if lm is not None else last
            targets.append(transform_points(src.crop.crop_from_frame, last))
        out = list(animator.stream_targets(src, targets))
    else:
        idx = best_reference(src.crop.landmarks, lms)
        out = list(animator.stream(src, iter(frames), fps, reference=lms[idx], landmarks=lms, reference_frame=frames[idx]))
    return out, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--talk" in argv:  # talking from the rest's audio: its own module
        from .clone_talk import main as talk_main

        return talk_main([a for a in argv if a != "--talk"])
    ap = argparse.ArgumentParser(prog="python -m avatar.bench clone", description=__doc__.split("\n")[0])
    ap.add_argument("--eval", type=Path, default=_DEFAULT_EVAL)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--max-frames", type=int, default=150, help="test frames per clip (from the start of the last 40 %%)")
    ap.add_argument("--still-frames", type=int, default=40)
    ap.add_argument("--clips", nargs="*", default=None, help="clip names (default: every talk_0*.mp4)")
    ap.add_argument("--no-photo", action="store_true", help="skip the photo engine's rows")
    args = ap.parse_args(argv)
    clips = talk_clips(args.eval, args.clips)
    if not clips:
        print(f"no talk_0*.mp4 in {args.eval}", file=sys.stderr)
        return 2
    from ..output.consent import ConsentStore
    from ..pack.clone import clone_video

    home = research_home("avatar-bench-clone-")
    cfg = AvatarConfig(face=FaceConfig(size=args.size), output=OutputConfig(max_size=1920))
    print("| clip | part s | clone s (× part) | keyframes | test frames | engine | face-box L1 | mouth-box L1 | "
          "landmark err / IOD | flicker still | flicker driven (real) | render fps |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    with ConsentStore(home / "avatars.sqlite3") as store:
        for clip in clips:
            info = probe_video(clip)
            split = 0.6 * info.duration
            part = cut(clip, home / f"{clip.stem}-clone.mp4", 0.0, split)
            t0 = time.perf_counter()
            res = clone_video(part, subject=clip.stem, statement="evaluation", store=store)
            build = time.perf_counter() - t0
            real = []
            with read_frames(clip) as reader:
                for f in reader:
                    if reader.time >= split:
                        real.append(f)
                        if len(real) >= args.max_frames:
                            break
            lms = track(real)
            k = next(i for i, lm in enumerate(lms) if lm is not None)
            # a still driver: one real frame with fresh sensor-like noise (σ 2 levels) each frame, re-tracked,
            # so landmark jitter reaches the engine as it would from a camera pointed at someone sitting still
            rng = np.random.default_rng(0)
            still = [np.clip(real[k] + rng.normal(0, 2.0, real[k].shape), 0, 255).astype(np.uint8)
                     for _ in range(args.still_frames)]
            still_lm = track(still)
            first = next(iter(read_frames(clip)))
            engines = (("keyframes", res.avatar_id),) + (() if args.no_photo else (("photo (warp)", first),))
            for name, source in engines:
                animator = Animator(cfg, consent_store=store)
                out, secs = drive(animator, source, real, info.fps, lms)
                s = scores(out, real, lms)
                still_out, _ = drive(Animator(cfg, consent_store=store), source, still, info.fps, still_lm)
                print(f"| {clip.stem} | {split:.1f} | {build:.1f} ({build / split:.2f}) | {res.keyframes} | {len(real)} "
                      f"| {name} | {s['face']:.4f} | {s['mouth']:.4f} | {s['lm']:.4f} | {flicker(still_out, lms[k]):.4f} "
                      f"| {flicker(out, lms[k]):.4f} ({flicker(real, lms[k]):.4f}) | {len(out) / secs:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
