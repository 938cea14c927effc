"""Self-reenactment from an open-mouthed frame: ``python -m avatar.bench own_mouth [--eval DIR] [--frames 250]``.

Each talking clip of ``../shared/eval/clone`` (``talk_0*.mp4``, frames at 512 px) is animated
from its own frame 0, with frame 0 as the reference, by its own first ``--frames`` frames: where
frame 0's mouth is open, the portrait's own open mouth is what the jaw opens further (see
:func:`avatar.render.mouth.own_lower_part`). Printed per clip: frame 0's lip gap over face height,
the mouth-box L1 against the real frames (0..1, lips' box with a 40 % margin) over all frames and
over those opened past 1.5 × frame 0.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

_DEFAULT_EVAL = Path(__file__).resolve().parents[2].parent / "shared" / "eval"


def _frames(path: Path, count: int, side: int = 512) -> list[np.ndarray]:
    from ..media.video import read_frames
    from ._eval import to_side

    return [to_side(im, side) for im in read_frames(path, max_frames=count)]


def main(argv: list[str] | None = None) -> int:
    import os

    from ..output.consent import POLICY_ENV
    from ..pipeline import Animator
    from .quality import mouth_box, mouth_opening, track

    ap = argparse.ArgumentParser(prog="python -m avatar.bench own_mouth")
    ap.add_argument("--eval", type=Path, default=_DEFAULT_EVAL)
    ap.add_argument("--frames", type=int, default=250)
    args = ap.parse_args(argv)
    os.environ[POLICY_ENV] = "research"
    clips = sorted((args.eval / "clone").glob("talk_0*.mp4"))
    if not clips:
        print(f"no clone/talk_0*.mp4 in {args.eval}")
        return 1
    print("| clip | frame 0 opening | mouth-box L1, all frames | opened past 1.5 × frame 0: L1 (frames) |")
    print("|---|---|---|---|")
    for clip in clips:
        frames = _frames(clip, args.frames)
        landmarks = track(frames)
        animator = Animator()
        source = animator.prepare(frames[0], name=clip.name)
        out = animator.stream(source, iter(frames), 25.0, reference=landmarks[0], landmarks=landmarks,
                              reference_frame=frames[0])
        own = mouth_opening(landmarks[0])
        every, wide = [], []
        for real, rendered, lm in zip(frames, out, landmarks):
            if lm is None:
                continue
            x0, y0, x1, y1 = mouth_box(lm, real.shape)
            err = float(np.abs(rendered[y0:y1, x0:x1].astype(np.float32) - real[y0:y1, x0:x1]).mean() / 255)
            every.append(err)
            if mouth_opening(lm) > 1.5 * own:
                wide.append(err)
        wide_l1 = f"{np.mean(wide):.4f} ({len(wide)})" if wide else "– (0)"
        print(f"| {clip.name} | {own:.3f} | {np.mean(every):.4f} | {wide_l1} |", flush=True)
    return 0
