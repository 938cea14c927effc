"""Mouth rig: mouth state (+ blink) → offsets of the portrait's own 478 face-mesh landmarks.

Works in the pose-free canonical frame of the motion-transfer module: inter-ocular distance
(33↔263) = 1, x to image right, y down, z away from the camera. A two-parameter blendshape:
openness drops the jaw and lower lip (with the chin and jaw line following, weights falling
off sideways) and lifts the upper lip a little, parting them in a lens that closes towards the
corners (real talkers' profile, see :data:`LENS`); rounding narrows the mouth and pushes the
lips forward (negative rounding spreads). Amplitudes are relative to the portrait's own face:
at openness 1 the lips part by ``open_gap`` of its face height (forehead 10 → chin 152), so a
small face in a wide photo and a close-up open alike, as real speakers' mouths do (talking
people part their lips by 0.02–0.07 of their face height, p50–p90, in the dev clips). Closed
means closed: at ``closed >= 0.5`` each inner upper-lip point and its lower partner are moved to
their common mean, exactly. Blink moves upper and lower lids to a common line (exactly shut at blink = 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, ShapeError
from .audio.state import MouthState

# Inner lip, left corner → right corner; each upper point faces the lower point below it.
INNER_UPPER = (191, 80, 81, 82, 13, 312, 311, 310, 415)
INNER_LOWER = (95, 88, 178, 87, 14, 317, 402, 318, 324)
INNER_CORNERS = (78, 308)
OUTER_UPPER = (185, 40, 39, 37, 0, 267, 269, 270, 409)
OUTER_LOWER = (146, 91, 181, 84, 17, 314, 405, 321, 375)
OUTER_CORNERS = (61, 291)
# The lip bodies between those rings: two more rings of the face mesh on each lip, outer to inner,
# left to right, with their own corners. They move with their lip: left out, they stayed put (the
# upper's, above the mouth line) or followed the chin (the lower's, and the upper's corner points),
# so the lips' triangles folded over at the corners and under the upper lip's edge (on real faces
# 4–38 of them at half to full openness), which a warp draws as a torn, stair-stepped lip edge.
BODY_UPPER = (184, 74, 73, 72, 11, 302, 303, 304, 408, 183, 42, 41, 38, 12, 268, 271, 272, 407)
BODY_LOWER = (77, 90, 180, 85, 16, 315, 404, 320, 307, 96, 89, 179, 86, 15, 316, 403, 319, 325)
BODY_CORNERS = (76, 306, 62, 292)
# Lids, outer corner → inner corner (upper i faces lower i).
LEFT_UPPER_LID = (246, 161, 160, 159, 158, 157, 173)
LEFT_LOWER_LID = (7, 163, 144, 145, 153, 154, 155)
RIGHT_UPPER_LID = (466, 388, 387, 386, 385, 384, 398)
RIGHT_LOWER_LID = (249, 390, 373, 374, 380, 381, 382)
CHIN = 152
FOREHEAD = 10
# The mouth's corners drop with the jaw by this share of the lower lip's middle.
CORNER_DROP = 0.45
# Between them the lips part in a lens, (1 - (x / corner)^2)^LENS of the middle's opening. Tracked
# open mouths of seven real talking clips (every 3rd frame opened past 0.05 of the face height,
# inner-lip pairs from the corner inwards) part by 0.32 / 0.58 / 0.81 / 0.96 of the middle, alike
# for every speaker (0.30–0.39 next to the corners). An ellipse reaching past the corners (as
# wide as 1.15 × the outer mouth) parted them by 0.63 / 0.76 / 0.88 / 0.97: a round, boxy "O"
# with a dark rim at blunt corners.
LENS = 0.8
# The cheeks beside a corner follow its sideways move (rounding), fading over this share of the
# mouth's half-width: left still, a spread corner crossed the skin points next to it.
CHEEK_REACH = 0.5


def _lip_sets() -> tuple[frozenset[int], frozenset[int]]:
    """Upper-lip and lower-lip landmark sets: each lip's outline and inner edge (all of the face
    mesh's FACEMESH_LIPS but the corners) and the rings inside it (``BODY_*``)."""
    return (frozenset(INNER_UPPER + OUTER_UPPER + BODY_UPPER),
            frozenset(INNER_LOWER + OUTER_LOWER + BODY_LOWER))


@dataclass(frozen=True, slots=True)
class RigConfig:
    """Amplitudes, relative to the portrait's face.

    open_gap: inner-lip gap at openness 1, as a share of the face height; upper_lift: the
    upper lip's share of the opening; chin_follow: share of the drop the chin follows;
    rounding_narrow: mouth-width change at rounding ±1 (share of half the width); protrusion:
    lip push towards the camera at rounding 1 (canonical units, IOD = 1); intensity:
    multiplies openness and rounding (1 = a typical speaker, 0 = still).
    """

    open_gap: float = 0.11
    upper_lift: float = 0.15
    chin_follow: float = 0.8
    rounding_narrow: float = 0.18
    protrusion: float = 0.06
    intensity: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.intensity <= 3.0:
            raise ConfigError(f"intensity must be in [0, 3], got {self.intensity}")
        if not 0.0 <= self.open_gap <= 0.5:
            raise ConfigError(f"open_gap must be in [0, 0.5] of the face height, got {self.open_gap}")


class MouthRig:
    """Per-portrait rig built once from the neutral canonical landmarks.

    Args:
        neutral: (478, 3) canonical landmarks of the portrait at rest.
        config: amplitudes (see :class:`RigConfig`).
    """

    def __init__(self, neutral: np.ndarray, config: RigConfig = RigConfig()) -> None:
        neutral = np.asarray(neutral, dtype=np.float64)
        if neutral.shape != (478, 3) or not np.all(np.isfinite(neutral)):
            raise ShapeError(f"neutral landmarks must be a finite (478, 3) array, got {neutral.shape}")
        self.neutral = neutral
        self.config = config
        p = neutral
        face_h = float(np.linalg.norm(p[CHIN, :2] - p[FOREHEAD, :2]))
        self._jaw_drop = config.open_gap * face_h / (1.0 + config.upper_lift)  # canonical units at openness 1
        c = 0.5 * (p[OUTER_CORNERS[0]] + p[OUTER_CORNERS[1]])
        half_w = max(0.5 * abs(p[OUTER_CORNERS[1], 0] - p[OUTER_CORNERS[0], 0]), 1e-3)
        dx = (p[:, 0] - c[0]) / half_w
        upper, lower = _lip_sets()
        mouth_line = 0.5 * (p[14, 1] + p[13, 1])  # the lips part here: beside a parted lower lip is lower face
        # Open: the corners drop with the jaw (CORNER_DROP of the lower lip's middle) and the lips
        # part between them in a lens (see LENS); chin and jaw below the mouth follow with a
        # sideways falloff.
        inner_corner = max(float(np.mean(np.abs(dx[list(INNER_CORNERS)]))), 1e-3)
        lens = np.clip(1.0 - (dx / inner_corner) ** 2, 0.0, 1.0) ** LENS
        side = 0.5 * (1.0 + np.cos(np.pi * np.clip((np.abs(dx) - 0.6) / 1.6, 0.0, 1.0)))
        below = (p[:, 1] > mouth_line) & ~np.isin(np.arange(478), list(upper | lower))
        move = np.zeros(478)
        move[below] = config.chin_follow * side[below]
        lower_idx = np.array(sorted(lower))
        upper_idx = np.array(sorted(upper))
        move[lower_idx] = CORNER_DROP + lens[lower_idx] * (1.0 - CORNER_DROP)
        move[upper_idx] = CORNER_DROP + lens[upper_idx] * (-config.upper_lift - CORNER_DROP)
        corners = list(INNER_CORNERS + OUTER_CORNERS + BODY_CORNERS)
        move[corners] = CORNER_DROP
        self._open = np.zeros((478, 3))
        self._open[:, 1] = move
        # Rounding: lip points scale towards the mouth centre horizontally and move forward.
        lips = np.array(sorted(upper | lower | set(corners)))
        self._round = np.zeros((478, 3))
        self._round[lips, 0] = -(p[lips, 0] - c[0]) * config.rounding_narrow
        # the cheeks beside the corners go with them sideways (CHEEK_REACH)
        others = np.setdiff1d(np.arange(478), lips)
        for k in OUTER_CORNERS:
            d = np.linalg.norm(p[others, :2] - p[k, :2], axis=1) / (CHEEK_REACH * half_w)
            near = (np.sign(p[others, 0] - c[0]) == np.sign(p[k, 0] - c[0])) & (d < 3.0)  # the rest stays exactly
            self._round[others[near], 0] = self._round[k, 0] * np.exp(-d[near] ** 2)
        self._round[lips, 2] = -config.protrusion * np.sqrt(np.clip(1.0 - (dx[lips] / 1.3) ** 2, 0.0, 1.0))
        self._seal_u = np.array(INNER_UPPER)
        self._seal_l = np.array(INNER_LOWER)
        self._lids = [(np.array(LEFT_UPPER_LID), np.array(LEFT_LOWER_LID)),
                      (np.array(RIGHT_UPPER_LID), np.array(RIGHT_LOWER_LID))]

    def offsets(self, mouth: MouthState, blink: float = 0.0) -> np.ndarray:
        """(478, 3) float64 canonical offsets to add to ``neutral`` for one frame.

        A neutral state (openness 0, rounding 0, closed < 0.3, blink 0) gives exactly zero.
        """
        cfg = self.config
        o = float(np.clip(mouth.openness, 0.0, 1.0)) * cfg.intensity
        r = float(np.clip(mouth.rounding * cfg.intensity, -1.0, 1.0))
        off = self._open * (o * self._jaw_drop) + self._round * r
        seal = float(np.clip((mouth.closed - 0.3) / 0.2, 0.0, 1.0))
        if seal > 0.0:
            pos = self.neutral + off
            mid = 0.5 * (pos[self._seal_u] + pos[self._seal_l])
            # Assign, don't add, at full seal: the two points then coincide bit for bit.
            new_u = mid if seal >= 1.0 else pos[self._seal_u] + seal * (mid - pos[self._seal_u])
            new_l = mid if seal >= 1.0 else pos[self._seal_l] + seal * (mid - pos[self._seal_l])
            off[self._seal_u] = new_u - self.neutral[self._seal_u]
            off[self._seal_l] = new_l - self.neutral[self._seal_l]
        b = float(np.clip(blink, 0.0, 1.0))
        if b > 0.0:
            for up, lo in self._lids:
                pu, pl = self.neutral[up], self.neutral[lo]
                meet = pl + 0.25 * (pu - pl)  # lids meet low: the upper lid does most of the work
                if b >= 1.0:
                    off[up] = meet - pu
                    off[lo] = meet - pl
                else:
                    off[up] = b * (meet - pu)
                    off[lo] = b * (meet - pl)
        return off

    def landmarks(self, mouth: MouthState, blink: float = 0.0) -> np.ndarray:
        """(478, 3) canonical landmarks for one frame: ``neutral + offsets(...)``.

        At full seal/blink the paired points coincide exactly in this result.
        """
        out = self.neutral + self.offsets(mouth, blink)
        if mouth.closed >= 0.5:
            out[self._seal_l] = out[self._seal_u]
        if blink >= 1.0:
            for up, lo in self._lids:
                out[lo] = out[up]
        return out
