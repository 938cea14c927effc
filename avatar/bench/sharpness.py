"""How much of the portrait's fine detail a moved face keeps: ``python -m avatar.bench sharpness [--eval DIR] [--max-size 1920]``.

For every portrait in ``../shared/eval`` (or ``--eval``), the default engine moves the whole
face rigidly (2 % of the crop right, 1 % down, turned 3° in the picture's plane) and pastes it
back as ``avatar animate`` does, with paste-back's detail restoration off and on
(``OutputConfig.restore_detail``). The truth is the photo moved by the same similarity. Inside
the moved face's box (its inner 80 %):

* high-pass kept: the mean absolute high-pass (grey levels minus a Gaussian of σ 1.5 px) of the
  output over that of the truth; 1 is the photo's own sharpness;
* face L1: mean absolute error against the truth (grey levels);
* paste ms: paste-back alone, median of 15, for the same rendered crop.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from ._eval import research_portraits

_DEFAULT_EVAL = Path(__file__).resolve().parents[2].parent / "shared" / "eval"


def _high_pass(image: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return np.abs(grey - cv2.GaussianBlur(grey, (0, 0), 1.5))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m avatar.bench sharpness", description=__doc__.split("\n")[0])
    ap.add_argument("--eval", type=Path, default=_DEFAULT_EVAL)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--max-size", type=int, default=1920)
    args = ap.parse_args(argv)

    from ..config import AvatarConfig, FaceConfig, OutputConfig
    from ..face.crop import invert_affine
    from ..media.image import load_image
    from ..pipeline import Animator
    from ..render.base import DriveTarget

    portraits = research_portraits(args.eval)
    if not portraits:
        return 1
    print("| portrait | frame | frame px per crop px | high-pass kept: off | on | face L1 vs the moved photo: off | on "
          "| paste ms: off | on |")
    print("|---|---|---|---|---|---|---|---|---|")
    for path in portraits:
        cells = {}
        for restore in (False, True):
            animator = Animator(AvatarConfig(face=FaceConfig(size=args.size),
                                             output=OutputConfig(max_size=args.max_size, restore_detail=restore)))
            src = animator.prepare(load_image(path), name=path.name)
            lm = src.crop.landmarks.astype(np.float64)
            centre = lm[:, :2].mean(0)
            a = np.radians(3.0)
            rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
            shift = np.array([0.02, 0.01]) * args.size
            moved = lm.copy()
            moved[:, :2] = (lm[:, :2] - centre) @ rot.T + centre + shift
            crop = animator.engine.render(src.state, [DriveTarget(moved.astype(np.float32))])[0]
            out = src.paste(crop)
            ts = []
            for _ in range(15):
                t0 = time.perf_counter()
                src.paste(crop)
                ts.append(time.perf_counter() - t0)
            # the same similarity in frame pixels: frame → crop, move, crop → frame
            frame_from_crop = invert_affine(src.crop.crop_from_frame)
            m = np.vstack([src.crop.crop_from_frame, [0, 0, 1]])
            move = np.vstack([np.column_stack([rot, centre + shift - rot @ centre]), [0, 0, 1]])
            frame_move = (np.vstack([frame_from_crop, [0, 0, 1]]) @ move @ m)[:2]
            truth = cv2.warpAffine(src.frame, frame_move, src.frame.shape[1::-1], flags=cv2.INTER_LANCZOS4,
                                   borderMode=cv2.BORDER_REFLECT)
            pts = moved[:, :2] @ frame_from_crop[:, :2].T + frame_from_crop[:, 2]
            (x0, y0), (x1, y1) = pts.min(0), pts.max(0)
            dx, dy = 0.1 * (x1 - x0), 0.1 * (y1 - y0)
            box = (slice(int(y0 + dy), int(y1 - dy)), slice(int(x0 + dx), int(x1 - dx)))
            kept = _high_pass(out)[box].mean() / max(_high_pass(truth)[box].mean(), 1e-6)
            l1 = np.abs(out[box].astype(np.float32) - truth[box]).mean()
            scale = float(np.sqrt(abs(np.linalg.det(frame_from_crop[:, :2]))))
            cells[restore] = (kept, l1, 1000 * float(np.median(ts)), src.frame.shape, scale)
        (k0, l0, t0, shape, scale), (k1, l1, t1, _, _) = cells[False], cells[True]
        print(f"| {path.name} | {shape[1]}×{shape[0]} | {scale:.2f} | {k0:.2f} | {k1:.2f} | {l0:.2f} | {l1:.2f} "
              f"| {t0:.1f} | {t1:.1f} |")
    return 0
