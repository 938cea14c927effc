"""Motion transfer keeps a full lip a lip: a driver whose mouth closes from a wide-open reference
(or a thin-lipped driver pressing its lips) must not flatten the portrait's lips to a line."""

from __future__ import annotations

import numpy as np
import pytest

from avatar.config import MotionConfig, SmoothingConfig
from avatar.motion import rig
from avatar.motion.decompose import decompose
from avatar.motion.transfer import LIP_FLOOR, MotionTransfer, keep_lip_thickness, uncross


@pytest.fixture(scope="module")
def source() -> np.ndarray:
    from avatar.examples import example_portrait
    from avatar.face.landmarks import detect_face

    return detect_face(example_portrait()).landmarks.astype(np.float64)


def _thickness(canon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    iu, ou, il, ol = (np.array(x) for x in (rig.INNER_UPPER, rig.OUTER_UPPER, rig.INNER_LOWER, rig.OUTER_LOWER))
    return canon[iu, 1] - canon[ou, 1], canon[ol, 1] - canon[il, 1]


def test_closing_from_a_wide_open_reference_keeps_the_lower_lip(source):
    # the driver's reference: this face with the mouth wide open (lower lip and chin far down);
    # driving it back to the closed face asks the lower lip to rise past the upper one
    _, canon = decompose(source)
    height = np.ptp(source[:, 1])
    reference = source.copy()
    lower = canon[:, 1] > canon[list(rig.INNER_LOWER), 1].min() - 1e-6
    reference[lower, 1] += 0.12 * height
    still = SmoothingConfig(enabled=False)
    transfer = MotionTransfer(source, MotionConfig(pose_smoothing=still, expression_smoothing=still))
    transfer.set_reference(reference)
    _, target = decompose(transfer(source))
    rest_up, rest_lo = _thickness(canon)
    up, lo = _thickness(target)
    middle = slice(2, 7)  # away from the corners, where a lip is thick
    assert np.all(lo[middle] >= LIP_FLOOR * rest_lo[middle] - 1e-6), (lo, rest_lo)
    assert np.all(up[middle] >= LIP_FLOOR * rest_up[middle] - 1e-6)
    # the lips closed: the lower inner lip does not pass the upper one
    assert np.all(target[list(rig.INNER_LOWER), 1] >= target[list(rig.INNER_UPPER), 1] - 1e-6)
    # without the floor the same offsets squash the lower lip well below it
    bare = uncross(canon + (decompose(source)[1] - decompose(reference)[1]))
    assert np.min(_thickness(bare)[1][middle] / rest_lo[middle]) < 0.5 * LIP_FLOOR


def test_lip_floor_moves_only_outer_edges_and_only_when_thinner():
    rng = np.random.default_rng(0)
    rest = rng.normal(0, 0.3, (478, 3))
    xs = np.linspace(-0.4, 0.4, 9)
    rest[list(rig.OUTER_UPPER)] = np.c_[xs, np.full(9, 0.50), np.zeros(9)]
    rest[list(rig.INNER_UPPER)] = np.c_[xs, np.full(9, 0.60), np.zeros(9)]
    rest[list(rig.INNER_LOWER)] = np.c_[xs, np.full(9, 0.62), np.zeros(9)]
    rest[list(rig.OUTER_LOWER)] = np.c_[xs, np.full(9, 0.75), np.zeros(9)]
    thin = rest.copy()
    thin[list(rig.OUTER_LOWER), 1] = 0.65   # lower lip 0.03 thick against 0.13 at rest
    thin[list(rig.OUTER_UPPER), 1] = 0.57   # upper lip 0.03 against 0.10
    out = keep_lip_thickness(thin.copy(), rest)
    np.testing.assert_allclose(out[list(rig.OUTER_LOWER), 1], 0.62 + LIP_FLOOR * 0.13)
    np.testing.assert_allclose(out[list(rig.OUTER_UPPER), 1], 0.60 - LIP_FLOOR * 0.10)
    others = np.setdiff1d(np.arange(478), list(rig.OUTER_LOWER) + list(rig.OUTER_UPPER))
    np.testing.assert_array_equal(out[others], thin[others])
    full = rest.copy()
    np.testing.assert_array_equal(keep_lip_thickness(full.copy(), rest), full)  # thick enough: untouched


def test_the_rings_inside_a_lip_stay_between_its_outline_and_edge():
    """A driver's offsets move a thin lip's inner edge past the rings inside it (Mona Lisa × a
    wide-mouthed driver folded up to 38 lip triangles in canonical space); those rings go back
    between outline and edge, and a column still in order is left as it was."""
    from avatar.motion.transfer import keep_lip_rings

    xs = np.linspace(-0.4, 0.4, 9)
    rest = np.zeros((478, 3))
    for ids, y in ((rig.OUTER_UPPER, 0.50), (rig.BODY_UPPER[:9], 0.53), (rig.BODY_UPPER[9:], 0.56),
                   (rig.INNER_UPPER, 0.60), (rig.INNER_LOWER, 0.62), (rig.BODY_LOWER[9:], 0.66),
                   (rig.BODY_LOWER[:9], 0.70), (rig.OUTER_LOWER, 0.75)):
        rest[list(ids)] = np.c_[xs, np.full(9, y), np.zeros(9)]
    moved = rest.copy()
    moved[list(rig.INNER_UPPER[2:5]), 1] = 0.54        # the upper edge lifted past the inner ring
    moved[list(rig.INNER_LOWER[6:]), 1] = 0.72         # the lower edge dropped past both rings
    out = keep_lip_rings(moved.copy(), rest)
    for rings, sign in (((rig.OUTER_UPPER, rig.BODY_UPPER[:9], rig.BODY_UPPER[9:], rig.INNER_UPPER), 1),
                        ((rig.OUTER_LOWER, rig.BODY_LOWER[:9], rig.BODY_LOWER[9:], rig.INNER_LOWER), -1)):
        ys = np.stack([out[list(r), 1] for r in rings]) * sign
        assert np.all(np.diff(ys, axis=0) >= 0), ys
        assert np.any(np.diff(np.stack([moved[list(r), 1] for r in rings]) * sign, axis=0) < 0)  # it was not
    # the ring went back to its share of the way: the upper inner ring 0.6 of the way to the edge
    assert out[rig.BODY_UPPER[9 + 3], 1] == pytest.approx(0.50 + 0.6 * (0.54 - 0.50))
    # columns in order keep every point; only y moves
    keep = [0, 1, 5]
    for ring in (rig.BODY_UPPER[:9], rig.BODY_UPPER[9:], rig.BODY_LOWER[:9], rig.BODY_LOWER[9:]):
        np.testing.assert_array_equal(out[[ring[k] for k in keep]], moved[[ring[k] for k in keep]])
    np.testing.assert_array_equal(out[:, [0, 2]], moved[:, [0, 2]])
