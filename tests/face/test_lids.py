from __future__ import annotations

import cv2
import numpy as np

from avatar.face.lids import EYES, fit_eye_outlines

SKIN = (225, 170, 140)
WHITE = (235, 232, 225)
RIM = (150, 60, 40)


def _eyes(band: tuple[float, float], rim: bool = True) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """A 256 px face with two almond eyes 56 px wide, and landmarks whose lower lids lie ``band``
    px (left eye, right eye) above the drawn lower lid's dark rim, inside the white (0: on it).
    Returns the image, the (478, 3) landmarks and each eye's rim line y at its middle."""
    img = np.full((256, 256, 3), SKIN, np.uint8)
    lm = np.zeros((478, 3), np.float64)
    rims = []
    for (corners, upper, lower), cx, gap in zip(EYES, (80.0, 176.0), band):
        cy, half = 120.0, 28.0
        xs = cx - half + 2 * half * np.linspace(0.08, 0.92, 7)
        arch = np.sqrt(np.clip(1 - ((xs - cx) / half) ** 2, 0, 1))
        top, bottom = cy - 16 * arch, cy + 10 * arch          # the drawn eye: white between these
        u = np.linspace(-1, 1, 64)
        outline = np.column_stack([cx + half * u, cy - 16 * np.sqrt(1 - u**2)])
        below = np.column_stack([cx + half * u[::-1], cy + 10 * np.sqrt(1 - u[::-1] ** 2)])
        cv2.fillPoly(img, [np.round(np.concatenate([outline, below]) * 4).astype(np.int32)], WHITE, shift=2)
        if rim:
            cv2.polylines(img, [np.round(below * 4).astype(np.int32)], False, RIM, 3, cv2.LINE_AA, shift=2)
        cv2.circle(img, (int(cx), int(cy - 4)), 11, (70, 110, 170), -1, cv2.LINE_AA)
        lm[corners[0], :2], lm[corners[1], :2] = (cx - half, cy), (cx + half, cy)
        lm[list(upper), 0], lm[list(upper), 1] = xs, top + 2
        lm[list(lower), 0], lm[list(lower), 1] = xs, bottom - 1.5 - gap
        rims.append(cy + 10 - 1.5)
    return img, lm, rims


def test_a_drawn_eyes_lids_move_onto_its_outline():
    """Both eyes' tracked lids inside the drawn eye, the lower 4 px above the rim, the upper 2 px
    under the white's top edge: the lower move onto the rim's upper edge, the upper (where the
    iris is not in the way) out to the white's edge, and no other point moves."""
    img, lm, rims = _eyes((4.0, 4.0))
    out = fit_eye_outlines(img, lm)
    for (corners, upper, lower), rim in zip(EYES, rims):
        mid = out[list(lower)[3], 1]
        assert abs(mid - rim) < 1.5, (mid, rim)
        assert out[list(lower)[3], 1] - lm[list(lower)[3], 1] > 2.5
        rise = lm[list(upper), 1] - out[list(upper), 1]
        assert rise[3] == 0.0                                          # on the iris: stays
        assert (rise[[1, 2, 4, 5]] > 1.0).all() and (rise < 3.5).all(), rise  # to the white's edge, 2 px up
    eyes = set(EYES[0][1]) | set(EYES[0][2]) | set(EYES[1][1]) | set(EYES[1][2]) | {EYES[0][0][0], EYES[1][0][0]}
    moved = np.abs(out - lm).max(1) > 0
    assert set(np.flatnonzero(moved)) <= eyes


def test_lids_already_on_their_margin_stay():
    """A photograph: the tracker's lower lids on the margin; and a drawn eye with no rim."""
    img, lm, _ = _eyes((0.0, 0.0))
    assert np.abs(fit_eye_outlines(img, lm) - lm).max() < 0.51
    img, lm, _ = _eyes((4.0, 4.0), rim=False)
    assert np.array_equal(fit_eye_outlines(img, lm), lm)


def test_one_eye_alone_is_not_enough():
    """A rim below one eye's points only (an eye patch, a shadow, a glasses rim) moves neither."""
    img, lm, _ = _eyes((4.0, 0.0))
    assert np.abs(fit_eye_outlines(img, lm) - lm).max() < 0.51
