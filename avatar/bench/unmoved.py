"""Each portrait rendered at its own landmarks, where nothing should change: what the engine alters.

``python -m avatar.bench unmoved [--eval DIR] [--size 512] [--out DIR]``

For every portrait in ``../shared/eval`` (or ``--eval``), the default engine renders one frame
whose target is the portrait's own landmarks and pastes it back as ``avatar animate`` does. Any
difference from the photo is the engine's own doing (a matte edge that loses its colour, a mouth
drawn over the portrait's own, a rim erased): the mean absolute error over the photo in grey
levels (max over channels), and the share of pixels off by more than 10 and 30 levels. With
``--out``, a PNG per portrait: the render beside a heat map of the error over the photo.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from ._eval import research_portraits

_DEFAULT_EVAL = Path(__file__).resolve().parents[2].parent / "shared" / "eval"


def unmoved_error(animator, image: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(render, per-pixel error): ``image`` rendered at its own landmarks, and |render - photo|
    (max over channels, int) against the frame the render is pasted into."""
    src = animator.prepare(image, name=name)
    out = next(iter(animator.stream_targets(src, [src.crop.landmarks.astype(np.float32)])))
    return out, np.abs(out.astype(np.int32) - src.frame.astype(np.int32)).max(-1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m avatar.bench unmoved", description=__doc__.split("\n")[0])
    ap.add_argument("--eval", type=Path, default=_DEFAULT_EVAL)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--out", type=Path, default=None, help="write render + heat map PNGs here")
    args = ap.parse_args(argv)

    from ..config import AvatarConfig, FaceConfig
    from ..media.image import load_image
    from ..pipeline import Animator

    portraits = research_portraits(args.eval)
    if not portraits:
        return 1
    animator = Animator(AvatarConfig(face=FaceConfig(size=args.size)))
    print("| portrait | mean abs error (grey levels) | share > 10 | share > 30 |")
    print("|---|---|---|---|")
    for path in portraits:
        image = load_image(path)
        out, err = unmoved_error(animator, image, path.name)
        print(f"| {path.name} | {err.mean():.2f} | {(err > 10).mean():.2%} | {(err > 30).mean():.2%} |")
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
            heat = cv2.applyColorMap(np.clip(err * 4, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)
            base = cv2.cvtColor(out, cv2.COLOR_RGB2BGR)
            cv2.imwrite(str(args.out / f"unmoved-{path.stem}.png"), np.concatenate([base, cv2.addWeighted(base, 0.4, heat, 0.6, 0)], 1))
    return 0
