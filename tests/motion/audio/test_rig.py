import numpy as np
import pytest

from avatar.errors import ShapeError
from avatar.motion import rig as R
from avatar.motion.audio import MouthState, SpeechTrack, head_rotations, talk_targets


def test_neutral_state_gives_zero_offsets(canonical_face):
    rig = R.MouthRig(canonical_face)
    assert np.all(rig.offsets(MouthState()) == 0.0)


def test_open_moves_lower_lip_down_and_chin(canonical_face):
    rig = R.MouthRig(canonical_face)
    off = rig.offsets(MouthState(openness=1.0))
    assert off[14, 1] > 0.1 and off[13, 1] < 0.0  # lower lip down, upper lip up
    assert off[152, 1] > 0.05  # chin follows
    # at openness 1 the lips part by open_gap of the face height (forehead 10 → chin 152)
    assert off[14, 1] - off[13, 1] == pytest.approx(R.RigConfig().open_gap * 2.5, rel=1e-6)
    assert abs(off[33]).sum() == 0.0  # eyes untouched


def test_closed_means_closed_exactly(canonical_face):
    rig = R.MouthRig(canonical_face)
    lm = rig.landmarks(MouthState(openness=0.7, rounding=0.4, closed=1.0))
    assert np.array_equal(lm[list(R.INNER_UPPER)], lm[list(R.INNER_LOWER)])
    off = rig.offsets(MouthState(openness=0.7, closed=1.0))
    pos = canonical_face + off
    np.testing.assert_allclose(pos[list(R.INNER_UPPER)], pos[list(R.INNER_LOWER)], atol=1e-12)


def test_blink_closes_lids(canonical_face):
    rig = R.MouthRig(canonical_face)
    lm = rig.landmarks(MouthState(), blink=1.0)
    assert np.array_equal(lm[list(R.LEFT_UPPER_LID)], lm[list(R.LEFT_LOWER_LID)])
    assert np.array_equal(lm[list(R.RIGHT_UPPER_LID)], lm[list(R.RIGHT_LOWER_LID)])
    half = rig.offsets(MouthState(), blink=0.5)
    assert np.abs(half).max() > 0 and np.abs(half[list(R.INNER_UPPER)]).max() == 0


def test_rounding_narrows_mouth(canonical_face):
    rig = R.MouthRig(canonical_face)
    lm = rig.landmarks(MouthState(rounding=1.0))
    assert lm[291, 0] - lm[61, 0] < canonical_face[291, 0] - canonical_face[61, 0]


def test_bad_neutral_shape():
    with pytest.raises(ShapeError):
        R.MouthRig(np.zeros((68, 3)))


def test_talk_targets_and_head_rotations(canonical_face):
    n = 4
    tr = SpeechTrack(25.0, np.array([0, 0.5, 1, 0], np.float32), np.zeros(n, np.float32),
                     np.array([1, 0, 0, 0], np.float32), np.full(n, -1), np.array([0, 0, 1, 0], np.float32),
                     np.array([[0.1, 0, 0, 0.01, 0]] * n, np.float32), np.zeros(10, np.float32), 16000, "test")
    lm = talk_targets(canonical_face, tr)
    assert lm.shape == (n, 478, 3)
    assert np.array_equal(lm[0][list(R.INNER_UPPER)], lm[0][list(R.INNER_LOWER)])
    assert lm[2, 14, 1] > lm[1, 14, 1] > canonical_face[14, 1]
    rot, trans = head_rotations(tr)
    assert rot.shape == (n, 3, 3) and trans.shape == (n, 2)
    np.testing.assert_allclose(rot @ rot.transpose(0, 2, 1), np.broadcast_to(np.eye(3), (n, 3, 3)), atol=1e-9)
    assert rot[0, 0, 2] == pytest.approx(np.sin(0.1), abs=1e-6)


def test_the_lips_part_in_a_lens_that_closes_towards_the_corners(canonical_face):
    """Real talking mouths part next to their corners by about a third of the middle's opening
    (tracked: 0.32 / 0.58 / 0.81 / 0.96 from the corner inwards); an ellipse reaching past the
    corners parted them by two thirds there, a round "O" with blunt corners."""
    rig = R.MouthRig(canonical_face)
    off = rig.offsets(MouthState(openness=1.0))
    added = off[list(R.INNER_LOWER), 1] - off[list(R.INNER_UPPER), 1]
    share = added / added[4]
    assert share[0] < 0.5 and share[-1] < 0.5          # next to the corners
    assert share[3] > 0.85 and share[5] > 0.85         # near the middle
    assert np.all(np.diff(share[:5]) > 0) and np.all(np.diff(share[4:]) < 0)
    # the corners themselves stay shut, dropped with the jaw
    assert off[R.INNER_CORNERS[0], 1] == pytest.approx(R.CORNER_DROP * off[14, 1], rel=1e-6)


def _lip_triangle_flips(rig, neutral, mouth):
    from avatar.face import topology
    from avatar.render.triangles import signed_areas

    tris = topology.mesh()["triangles"]
    moved = rig.landmarks(mouth)[:, :2]
    return int((np.sign(signed_areas(moved, tris)) != np.sign(signed_areas(neutral[:, :2], tris))).sum())


def test_the_lips_move_as_a_whole_and_never_fold_over():
    """The face mesh has two rings of points inside each lip besides the contours. Left out of the
    rig they stayed put or followed the chin, the lips' triangles turned inside out at the corners
    and under the upper lip's edge (10-40 of them at every opening on the shipped neutral face),
    and a warp drew a torn, stair-stepped lip. Spread corners also crossed the skin beside them."""
    from avatar.motion.decompose import canonical_template

    neutral = canonical_template().copy()  # a real face's layout, lips a little apart
    rig = R.MouthRig(neutral)
    for openness in np.linspace(0.0, 1.0, 6):
        for rounding in (-1.0, -0.5, 0.0, 0.5, 1.0):
            assert _lip_triangle_flips(rig, neutral, MouthState(openness=openness, rounding=rounding)) == 0, \
                (openness, rounding)
    # the lip bodies go with their lip: the upper one's points lift with it in the middle
    off = rig.offsets(MouthState(openness=1.0))
    assert off[12, 1] < 0 and off[11, 1] < 0 and off[15, 1] > 0 and off[16, 1] > 0
    assert off[R.BODY_CORNERS[0], 1] == pytest.approx(off[R.INNER_CORNERS[0], 1])
