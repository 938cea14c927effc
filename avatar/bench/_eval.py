"""The evaluation folder's files, as the benchmarks read them (``../shared/eval`` or ``--eval``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def portraits(eval_dir: Path) -> list[Path]:
    """The folder's ``portrait_*.jpg`` and ``portrait_*.png``, sorted."""
    return sorted(list(eval_dir.glob("portrait_*.jpg")) + list(eval_dir.glob("portrait_*.png")))


def research_portraits(eval_dir: Path) -> list[Path]:
    """:func:`portraits`, with renders labelled "research" (benchmark material, not a person's
    avatar); says so when the folder has none."""
    import os

    from ..output.consent import POLICY_ENV

    os.environ[POLICY_ENV] = "research"
    found = portraits(eval_dir)
    if not found:
        print(f"no portrait_*.jpg/png in {eval_dir}")
    return found


def to_side(image: np.ndarray, side: int = 512) -> np.ndarray:
    """``image`` resized (up or down, INTER_AREA) so that its longer side is about ``side``, each
    side an even number of pixels (what the video encoder takes)."""
    import cv2

    s = side / max(image.shape[:2])
    size = (round(image.shape[1] * s) // 2 * 2, round(image.shape[0] * s) // 2 * 2)
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)
