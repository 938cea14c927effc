"""Thin structures followed piece by piece: which connected pieces a seed reaches across small gaps."""

from __future__ import annotations

import cv2
import numpy as np

_GAP = np.ones((5, 5), np.uint8)  # pieces up to 2 px apart touch


def reached(labels: np.ndarray, usable: np.ndarray, seed: np.ndarray, hops: int) -> np.ndarray:
    """(n,) bool: the ``usable`` pieces ((n,) bool, 0 the unlabelled) of ``labels`` ((H, W)
    connected-component labels) reached from ``seed`` ((H, W) bool) through at most ``hops``
    pieces, each within 2 px of the last."""
    taken = np.zeros(len(usable), bool)
    front = cv2.dilate(seed.astype(np.uint8), _GAP) > 0
    for _ in range(hops):
        near = np.unique(labels[front])
        new = near[usable[near] & ~taken[near]]
        if not len(new):
            break
        taken[new] = True
        front = cv2.dilate(taken[labels].astype(np.uint8), _GAP) > 0
    return taken
