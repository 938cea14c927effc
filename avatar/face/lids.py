"""Drawn eyes' lids where the picture draws them, not where the face mesh guessed.

On photographs the tracker puts the lid landmarks on the lid margins. On large drawn eyes (a 3-D
cartoon) it puts them inside the eye: the lower lid a few pixels above the drawn lid's dark rim,
the upper lid's outer half under the outline, with eye white between. That white was lid to the
warp, so a closing eye kept it in view, a white and blue slit along the shut lids, and a blink
read as a half-open eye (``portrait_04`` × ``driving_02``: the output's eyes closed to 0.72 of
their opening while the driver's closed to 0.17). Here a dark rim is looked for below each
lower-lid point: darker than the eye's white and than the cheek below it, with lighter pixels
between it and the point. Where both eyes show one, at about the same distance below most of
their points, the eyes are taken as drawn: those points move onto the rim's upper edge, and the
upper-lid points and the outer corner move out across any eye white beyond them to the outline.
A photograph's lid margin, where the tracker already is, shows no such rim, and nothing moves.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..motion import rig

# per eye: the corners (outer, inner) and the lids' facing points, outer corner first
EYES = (((33, 133), rig.LEFT_UPPER_LID, rig.LEFT_LOWER_LID),
        ((263, 362), rig.RIGHT_UPPER_LID, rig.RIGHT_LOWER_LID))
REACH = 0.12         # the rim is looked for this far below each point, × the eye's width
WHITE_SHARE = 0.2    # the eye's white: the brightest share of the pixels inside the lids
SKIN_BAND = (0.3, 0.45)  # the cheek's lightness is read this far below the lower lid, × the eye's width
DARKER = 15.0        # Lab lightness the rim has under the white, the cheek, and the pixels above it
AGREE = 2.0          # px: the points' rims lie this near their median...
MIN_POINTS = 3       # ... at this many of the five middle points of each eye
MIN_MOVE = 1.5       # px: a median rim nearer than this is the tracker's own margin (a photograph)
MIN_WIDTH = 16.0     # px: smaller eyes are left as they are


def _lightness(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)[..., 0]


def _sample(plane: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N,) bilinear samples of the (H, W) float32 ``plane`` at (N, 2) pixel positions."""
    xy = points.astype(np.float32).reshape(-1, 1, 2)
    return cv2.remap(plane, xy[..., 0], xy[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).reshape(-1)


def _along(light: np.ndarray, starts: np.ndarray, directions: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """(P, S) lightness at ``steps`` px from each of the (P, 2) ``starts`` along its (P, 2) unit ``directions``."""
    seen = _sample(light, (starts[:, None, :] + steps[None, :, None] * directions[:, None, :]).reshape(-1, 2))
    return seen.reshape(len(starts), len(steps))


def _rims(light: np.ndarray, lm: np.ndarray, corners: tuple[int, int], upper: tuple[int, ...],
          lower: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, float, float] | None:
    """Distance (px, NaN where none) of the dark rim below each of ``lower``'s five middle points,
    the unit direction down, the eye white's lightness and the eye's width (px); None for an eye
    too small to tell."""
    outer, inner = lm[corners[0], :2], lm[corners[1], :2]
    width = float(np.hypot(*(inner - outer)))
    if width < MIN_WIDTH:
        return None
    axis = (inner - outer) / width
    down = np.array([-axis[1], axis[0]])
    if float(np.dot(lm[list(lower), :2].mean(0) - lm[list(upper), :2].mean(0), down)) < 0:
        down = -down
    loop = np.concatenate([lm[[corners[0]], :2], lm[list(upper), :2], lm[[corners[1]], :2], lm[list(lower)[::-1], :2]])
    mask = np.zeros(light.shape, np.uint8)
    cv2.fillPoly(mask, [np.round(loop).astype(np.int32)], 1)
    inside = light[mask > 0]
    if len(inside) < 20:
        return None
    white = float(np.percentile(inside, 100 * (1 - WHITE_SHARE / 2)))
    points = lm[list(lower), :2][1:-1]
    cheek = float(np.median(_sample(light, np.concatenate([points + down * width * f for f in np.linspace(*SKIN_BAND, 4)]))))
    steps = np.arange(1, int(np.ceil(REACH * width)) + 1, dtype=np.float64)
    seen = _along(light, points, np.repeat(down[None, :], len(points), axis=0), steps)
    found = np.full(len(points), np.nan)
    for k, row in enumerate(seen):
        at = int(np.argmin(row))
        above = row[:at]
        if (at > 0 and row[at] < min(white, cheek) - DARKER and above.max() > row[at] + DARKER
                and above[-1] > row[at]):
            found[k] = steps[at]
    return found, down, white, width


def _outline_walk(light: np.ndarray, starts: np.ndarray, directions: np.ndarray, reach: float, white: float) -> np.ndarray:
    """(P,) px each of the (P, 2) ``starts`` moves along its unit ``directions`` to lie a pixel
    short of the drawn outline: the darkest pixel within ``reach``, :data:`DARKER` under the
    eye's ``white``, with eye white between (0 where there is none: the point is on the outline
    already, or on the lashes or the iris)."""
    steps = np.arange(0, int(np.ceil(reach)) + 1, dtype=np.float64)
    seen = _along(light, starts, directions, steps)
    moved = np.zeros(len(starts))
    for k, row in enumerate(seen):
        at = int(np.argmin(row))
        between = row[:at]
        if at >= 2 and row[at] < white - DARKER and between.max() >= white - 2 * DARKER and between.max() > row[at] + DARKER:
            moved[k] = steps[at] - 1.0
    return moved


def fit_eye_outlines(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """(N, 2+) ``landmarks`` of the face in (H, W, 3) uint8 RGB ``image``, fitted to drawn eyes'
    outlines where both eyes show a dark rim under their lower lids (a copy; unchanged otherwise,
    as on photographs): the lower-lid points onto the rim, and the upper-lid points and outer
    corner that lie on eye white out to the outline beyond it."""
    out = np.array(landmarks, dtype=np.float64, copy=True)
    if image.ndim != 3 or image.shape[2] != 3 or out.shape[0] < 468:
        return out
    light = _lightness(image)
    moves = []
    for corners, upper, lower in EYES:
        found = _rims(light, out, corners, upper, lower)
        if found is None:
            return out
        rims, down, white, width = found
        mid = float(np.nanmedian(rims)) if np.isfinite(rims).any() else np.nan
        agree = np.abs(rims - mid) <= AGREE
        if not (np.isfinite(mid) and agree.sum() >= MIN_POINTS and mid - 1.0 >= MIN_MOVE):
            return out
        # the lid margin is the rim's upper edge, a pixel above its darkest line; the corner
        # points move half as far, the corners themselves not at all
        shift = mid - 1.0
        moves.append((corners, upper, lower, down, np.array([0.5, 1, 1, 1, 1, 1, 0.5]) * shift, white, width))
    for corners, upper, lower, down, shift, white, width in moves:
        # the upper lid (straight up), the point next to the outer corner (up and out) and the
        # outer corner (out): where eye white lies beyond them, the drawn outline is further out
        # (along its lashes the tracker is on it already)
        outwards = (out[corners[0], :2] - out[corners[1], :2]) / max(width, 1e-9)
        ids = list(upper) + [corners[0]]
        rays = np.repeat(-down[None, :], len(ids), axis=0)
        rays[0] = (rays[0] + outwards) / np.sqrt(2.0)
        rays[-1] = outwards
        walked = _outline_walk(light, out[ids, :2], rays, REACH * width, white)
        out[ids, :2] += walked[:, None] * rays
        out[list(lower), :2] += shift[:, None] * down[None, :]
    return out
