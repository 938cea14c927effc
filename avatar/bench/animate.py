"""Per-stage speed of the default pipeline: ``python -m avatar.bench animate [--eval DIR] [--sizes 256,512] [--no-detail] [--no-layers]``.

Stages: decode, landmarks, motion, render (warp), paste-back, label (watermark), encode.
Then the whole process, as ``avatar animate PORTRAIT CLIP -o OUT.mp4`` runs it, in a fresh
interpreter per clip (``--startup-only`` skips the stage table): wall and CPU seconds, split into
start-up (interpreter + imports), preparing the portrait (face detector, consent, engine state),
the driver's reference pass, the frames, and finishing (encoder flush, mux, C2PA signing).
Uses ``../shared/eval`` clips when present, else the generated example clip.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..config import AvatarConfig, FaceConfig, OutputConfig, RenderConfig
from ..pipeline import Animator

_DEFAULT_EVAL = Path(__file__).resolve().parents[2].parent / "shared" / "eval"

# What `avatar animate` does, timed from inside a fresh interpreter.
_CHILD = """
import json, sys, time
t0 = time.perf_counter()
from avatar.cli import build_parser
from avatar.pipeline import Animator
from avatar.cli.animate import build_config, smoothing_configs
args = build_parser().parse_args(["animate", *sys.argv[1:3], "-o", sys.argv[3], "--quiet", "--overwrite"])
cfg = build_config(args, **smoothing_configs(args.smoothing))
imports = time.perf_counter() - t0
res = Animator(cfg).animate(args.source, args.driving, args.output, progress=False, overwrite=True)
print(json.dumps({"imports": imports, "once": res.once_s, "frames": res.frames, "write": res.seconds}))
"""


def startup(portrait: Path, clip: Path, out: Path) -> dict:
    """Run :data:`_CHILD` in a fresh interpreter; its wall and CPU seconds and its own split."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(portrait), str(clip), str(out)], capture_output=True,
                          text=True, check=False, env={**os.environ, "AVATAR_NATIVE_LOGS": "0"})
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"the animate process failed:\n{proc.stderr[-2000:]}")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    data["wall"] = wall
    data["cpu"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return data


def side_by_side_fps(animator: Animator, portrait: Path, clip: Path, max_frames: int = 150) -> float:
    """Frames per wall second of the core stages (landmarks, motion, render, paste) run as the
    webcam loop runs them (:meth:`~avatar.live.LiveAnimator.side_by_side`): each frame tracked in
    order while the previous ones render, ``RenderConfig.threads`` at once; no labelling."""
    from ..live import LiveAnimator, LiveOptions
    from ..media.video import read_frames

    frames = list(read_frames(clip, max_frames=max_frames))
    prepared = animator.prepare(portrait, use="live")
    with LiveAnimator(animator, prepared, 25.0, LiveOptions(visible_label=False, watermark=False)) as live:
        live.warmup()
        with live.side_by_side() as pipe:
            t0 = time.perf_counter()
            n = sum(1 for f in frames for _ in pipe.submit(f)) + sum(1 for _ in pipe.drain())
            return n / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m avatar.bench animate")
    ap.add_argument("--eval", type=Path, default=_DEFAULT_EVAL)
    ap.add_argument("--sizes", default="256,512")
    ap.add_argument("--no-detail", action="store_true", help="warp without the driver's optical-flow detail")
    ap.add_argument("--startup-only", action="store_true", help="only the whole-process table")
    ap.add_argument("--repeat", type=int, default=1, help="whole-process runs per clip (the table shows each)")
    ap.add_argument("--no-layers", action="store_true", help="warp the whole crop as one (no background plate, no matte)")
    ap.add_argument("--no-restore-detail", action="store_true", help="paste back without the portrait's fine detail the crop loses")
    ap.add_argument("--threads", type=int, default=0,
                    help="frames rendered at once in the stage table (0: one per core; with more than 1 the "
                         "stage columns add up the threads' time)")
    args = ap.parse_args(argv)
    os.environ.setdefault("AVATAR_CONSENT_POLICY", "research")  # benchmark outputs are labelled "research"
    tmp = Path(tempfile.mkdtemp(prefix="avatar-bench-"))
    if args.eval.is_dir():
        portrait = args.eval / "portrait_01.jpg"
        clips = sorted(args.eval.glob("driving_*.mp4"))
    else:
        from ..examples import example_portrait, write_example_driving
        from ..media.image import save_image

        portrait = save_image(tmp / "portrait.png", example_portrait())
        clips = [write_example_driving(tmp / "driving.mp4", frames=100)]
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU(s), {platform.processor() or 'unknown CPU'}")
    print("\nWhole process (`avatar animate`, default settings, fresh interpreter), seconds:")
    print("| clip | clip s | wall s | CPU s | start-up (interpreter, imports, engine) | prepare portrait | reference pass "
          "| frames | finish (flush + mux + C2PA) | of which C2PA | wall / clip |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    from ..media.video import probe_video

    for clip in clips:
        duration = probe_video(clip).duration
        for _ in range(args.repeat):
            r = startup(portrait, clip, tmp / f"{clip.stem}-process.mp4")
            once = r["once"]
            inside = r["imports"] + once.get("prepare", 0) + once.get("reference", 0) + r["write"]
            start = r["wall"] - inside + r["imports"]  # interpreter start-up + imports
            frames = r["write"] - once.get("finish", 0)
            print(f"| {clip.name} | {duration:.2f} | {r['wall']:.2f} | {r['cpu']:.2f} | {start:.2f} | "
                  f"{once.get('prepare', 0):.2f} | {once.get('reference', 0):.2f} | {frames:.2f} | "
                  f"{once.get('finish', 0):.2f} | {once.get('sign', 0):.2f} | {r['wall'] / duration:.2f} |", flush=True)
    if args.startup_only:
        return 0
    print("\nStages:")
    print("| clip | size | frames | clip s | wall s | fps | decode | landmarks | motion | render | paste | label | encode "
          "| landmarks+motion+render+paste fps | the same, side by side |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for size in (int(s) for s in args.sizes.split(",")):
        render = RenderConfig(detail=not args.no_detail, layers=not args.no_layers, threads=args.threads)
        animator = Animator(AvatarConfig(face=FaceConfig(size=size), render=render,
                                         output=OutputConfig(restore_detail=not args.no_restore_detail)))
        for clip in clips:
            info = probe_video(clip)
            out = tmp / f"{clip.stem}-{size}.mp4"
            t0 = time.perf_counter()
            res = animator.animate(portrait, clip, out, progress=False, overwrite=True)
            wall = time.perf_counter() - t0
            t = res.timings_ms
            core = sum(t.get(k, 0.0) for k in ("landmarks", "motion", "render", "paste"))
            cells = " | ".join(f"{t.get(k, 0.0):.1f}" for k in ("decode", "landmarks", "motion", "render", "paste", "label", "encode"))
            both = side_by_side_fps(animator, portrait, clip)
            print(f"| {clip.name} | {size} | {res.frames} | {info.duration:.2f} | {wall:.2f} | {res.frames / wall:.1f} | {cells} "
                  f"| {1000 / core:.1f} | {both:.1f} |")
    print("(stage columns: ms per frame; wall includes portrait preparation and signing; core fps: one frame at a "
          "time, from the stage columns; side by side: the same stages as the webcam loop runs them, frames decoded "
          "beforehand, tracked one after another and rendered and pasted RenderConfig.threads at once, frames / wall s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
