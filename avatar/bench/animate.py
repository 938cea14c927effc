"""Per-stage speed of the default pipeline: ``python -m avatar.bench animate [--eval DIR] [--sizes 256,512] [--no-detail] [--no-layers]``.

Stages: decode, landmarks, motion, render (warp), paste-back, label (watermark), encode.
Uses ``../shared/eval`` clips when present, else the generated example clip.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from ..config import AvatarConfig, FaceConfig, RenderConfig
from ..pipeline import Animator

_DEFAULT_EVAL = Path(__file__).resolve().parents[2].parent / "shared" / "eval"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m avatar.bench animate")
    ap.add_argument("--eval", type=Path, default=_DEFAULT_EVAL)
    ap.add_argument("--sizes", default="256,512")
    ap.add_argument("--no-detail", action="store_true", help="warp without the driver's optical-flow detail")
    ap.add_argument("--no-layers", action="store_true", help="warp the whole crop as one (no background plate, no matte)")
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
    print("| clip | size | frames | clip s | wall s | fps | decode | landmarks | motion | render | paste | label | encode | landmarks+motion+render+paste fps |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for size in (int(s) for s in args.sizes.split(",")):
        animator = Animator(AvatarConfig(face=FaceConfig(size=size), render=RenderConfig(detail=not args.no_detail, layers=not args.no_layers)))
        for clip in clips:
            from ..media.video import probe_video

            info = probe_video(clip)
            out = tmp / f"{clip.stem}-{size}.mp4"
            t0 = time.perf_counter()
            res = animator.animate(portrait, clip, out, progress=False, overwrite=True)
            wall = time.perf_counter() - t0
            t = res.timings_ms
            core = sum(t.get(k, 0.0) for k in ("landmarks", "motion", "render", "paste"))
            cells = " | ".join(f"{t.get(k, 0.0):.1f}" for k in ("decode", "landmarks", "motion", "render", "paste", "label", "encode"))
            print(f"| {clip.name} | {size} | {res.frames} | {info.duration:.2f} | {wall:.2f} | {res.frames / wall:.1f} | {cells} | {1000 / core:.1f} |")
    print("(stage columns: ms per frame; wall includes portrait preparation and signing)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
