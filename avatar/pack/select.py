"""Pick keyframes that cover the person's poses × mouth shapes × eye states.

The first keyframe is the *anchor*: the most neutral frame (the clip's usual pose, mouth
closed, eyes open); it is what the avatar shows at rest and the base that outputs are pasted
into. The rest are chosen by farthest-point sampling in the weighted feature distance of
:func:`avatar.pack.features.distances` (the same distance the keyframe engine matches with), so
each new keyframe is the frame least like any chosen so far, until ``max_keyframes`` or until
every frame has a keyframe within ``min_gap`` (landmark jitter alone puts consecutive frames
about 1.3 apart, so a smaller gap only adds near-duplicates).
"""

from __future__ import annotations

import numpy as np

from .features import distances, eye_part, eyes_open, opening, pose_part


def anchor_index(features: np.ndarray, usable: np.ndarray) -> int:
    """Index of the most neutral usable frame."""
    f = features[usable]
    rest = np.median(pose_part(f), axis=0)
    eyes = np.median(eyes_open(f))
    cost = (np.abs(pose_part(f) - rest) / 6.0).sum(1) + np.maximum(opening(f), 0) / 0.02 \
        + np.abs(eye_part(f) - eyes).mean(1) / 0.08
    return int(np.flatnonzero(usable)[int(np.argmin(cost))])


def select_keyframes(features: np.ndarray, usable: np.ndarray, max_keyframes: int = 300,
                     min_gap: float = 1.5) -> np.ndarray:
    """Indices (into ``features``) of the keyframes, the anchor first.

    Args:
        features: (N, D) per tracked frame (NaN rows where no face).
        usable: (N,) bool, frames that may become keyframes (one face, large enough).
        max_keyframes: cap on the count (bounded pack size for any clip length).
        min_gap: stop once every usable frame is closer than this to a keyframe.
    """
    ids = np.flatnonzero(usable)
    if not len(ids):
        return np.zeros(0, np.int64)
    f = features[ids]
    first = int(np.searchsorted(ids, anchor_index(features, usable)))
    chosen = [first]
    near = distances(f, f[first])
    while len(chosen) < max_keyframes:
        k = int(np.argmax(near))
        if near[k] < min_gap:
            break
        chosen.append(k)
        near = np.minimum(near, distances(f, f[k]))
    return ids[np.asarray(chosen, np.int64)]
