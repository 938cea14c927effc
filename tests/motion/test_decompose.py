import numpy as np
from scipy.spatial.transform import Rotation

from avatar.config import MotionConfig, SmoothingConfig
from avatar.motion.decompose import Pose, canonical_template, decompose, stable_ids
from avatar.motion.transfer import MotionTransfer, best_reference

OFF = SmoothingConfig(enabled=False)


def _face(rot_deg=(0, 0, 0), scale=80.0, shift=(250.0, 240.0, 0.0), expression=None):
    canon = canonical_template().copy()
    if expression is not None:
        canon = canon + expression
    r = Rotation.from_euler("yxz", rot_deg, degrees=True).as_matrix()
    return Pose(r, scale, np.array(shift)).apply(canon), r


def test_template_is_symmetric_and_normalised():
    tpl = canonical_template()
    assert np.isclose(np.linalg.norm(tpl[33] - tpl[263]), 1.0, atol=1e-5)
    mirror = np.load(__import__("avatar").motion.decompose._ASSETS / "face_mirror.npy")
    flipped = tpl[mirror] * [-1, 1, 1]
    assert np.abs(flipped - tpl).max() < 1e-4


def test_known_rigid_transform_and_expression_are_recovered():
    expr = np.zeros((478, 3))
    expr[14, 1] = 0.15  # lower lip drops
    expr[[159, 386], 1] = 0.05  # lids lower
    lm, r = _face((20, -10, 7), 95.0, (300, 210, 5), expression=expr)
    pose, canon = decompose(lm)
    assert np.allclose(pose.rotation, r, atol=1e-6)
    assert np.isclose(pose.scale, 95.0, rtol=1e-6)
    assert np.allclose(canon - canonical_template(), expr, atol=1e-6)
    assert 15 < pose.angles()[0] < 25 or -25 < pose.angles()[0] < -15


def test_relative_transfer_moves_source_by_driver_change_only():
    src, _ = _face((0, 0, 0), 100.0, (256, 256, 0))
    # the driver has another face shape: it must not leak into the result
    shape = np.random.default_rng(0).normal(0, 0.03, (478, 3))
    shape[stable_ids()] = 0  # the skull fits exactly; the rest of the face differs
    ref, _ = _face((5, 0, 0), 60.0, (100, 120, 0), expression=shape)
    expr = np.zeros((478, 3))
    expr[[14, 15, 16, 17], 1] = 0.2  # the lower lip drops whole, its inner rings too (see test_transfer_lips)
    drv, _ = _face((15, 0, 0), 60.0, (112, 120, 0), expression=shape + expr)
    mt = MotionTransfer(src, MotionConfig(pose_smoothing=OFF, expression_smoothing=OFF))
    mt.set_reference(ref)
    out = mt(drv)
    want_rot = Rotation.from_euler("y", 10, degrees=True).as_matrix()
    want = Pose(want_rot, 100.0, np.array([256 + 12 / 60 * 100, 256, 0])).apply(canonical_template() + expr)
    assert np.abs(out[:, :2] - want[:, :2]).max() < 1e-6
    # reference frame itself → the source unchanged
    mt2 = MotionTransfer(src, MotionConfig(pose_smoothing=OFF, expression_smoothing=OFF))
    mt2.set_reference(ref)
    assert np.abs(mt2(ref) - src).max() < 1e-6


def test_absolute_mode_copies_driver_shape():
    src, _ = _face((0, 0, 0), 100.0, (256, 256, 0))
    shape = np.zeros((478, 3))
    shape[:, 0] = 0.1 * canonical_template()[:, 0]  # a wider face
    drv, _ = _face((0, 0, 0), 100.0, (256, 256, 0), expression=shape)
    mt = MotionTransfer(src, MotionConfig(mode="absolute", pose_smoothing=OFF, expression_smoothing=OFF))
    out = mt(drv)

    def aspect(lm):
        return np.linalg.norm(lm[234, :2] - lm[454, :2]) / np.linalg.norm(lm[10, :2] - lm[152, :2])

    assert abs(aspect(out) - aspect(drv)) < 0.01 * aspect(drv)
    assert aspect(out) > 1.05 * aspect(src)


def test_best_reference_picks_the_closest_frame():
    src, _ = _face((0, 0, 0))
    expr = np.zeros((478, 3))
    expr[14, 1] = 0.3
    frames = [_face((25, 0, 0), expression=expr)[0], None, _face((2, 0, 0))[0], _face((0, 0, 0), expression=expr)[0]]
    assert best_reference(src, frames) == 2


def test_best_reference_passes_over_a_frame_with_the_eyes_shut():
    """Motion is relative to the reference: a driver looking down with her eyes shut, chosen for its
    pose (driving_02 frame 111), left the portrait's eyes open through every blink and opened them
    wider in every open frame. The closest frame with open eyes is taken instead."""
    from avatar.motion import rig

    tpl = canonical_template()
    shut = np.zeros((478, 3))
    for up, lo in ((rig.LEFT_UPPER_LID, rig.LEFT_LOWER_LID), (rig.RIGHT_UPPER_LID, rig.RIGHT_LOWER_LID)):
        gap = tpl[list(lo), 1] - tpl[list(up), 1]
        shut[list(up), 1] += 0.45 * gap
        shut[list(lo), 1] -= 0.45 * gap
    src, _ = _face((0, 0, 0))
    frames = [_face((12, 0, 0))[0], _face((0, 0, 0), expression=shut)[0], _face((6, 0, 0))[0],
              _face((1, 0, 0), expression=shut)[0], _face((9, 0, 0))[0]]
    assert best_reference(src, frames) == 2  # 1 before: the pose alone
    # a clip whose eyes never open still has a reference: the closest of all
    assert best_reference(src, [frames[3], frames[1]]) == 1


def test_best_reference_takes_a_closed_mouths_frame_for_a_closed_mouth():
    """A driver mid-word (its lips 0.05 apart), chosen for its pose, drew a closed-mouthed portrait's
    mouth shut against itself whenever the driver's closed further (portrait_04 × driving_02,
    mouth correlation 0.83). A frame with the lips together and nearly the same pose is taken."""
    from avatar.motion import rig

    parted = np.zeros((478, 3))
    parted[list(rig.INNER_LOWER), 1] += 0.05 + canonical_template()[list(rig.INNER_UPPER), 1] - canonical_template()[list(rig.INNER_LOWER), 1]
    closed = parted - np.array([0.0, 0.05, 0.0]) * np.isin(np.arange(478), rig.INNER_LOWER)[:, None]
    src, _ = _face((0, 0, 0), expression=closed)
    frames = [_face((1, 0, 0), expression=parted)[0], _face((4, 0, 0), expression=closed)[0], _face((8, 0, 0), expression=closed)[0]]
    assert best_reference(src, frames) == 1  # 0 before: the pose alone


def test_a_face_mid_blink_or_mid_word_is_not_at_rest():
    """What a live session waits for before taking its neutral reference (tests/live)."""
    from avatar.motion import rig
    from avatar.motion.transfer import at_rest

    tpl = canonical_template()
    closed_lips = np.zeros((478, 3))
    closed_lips[list(rig.INNER_LOWER), 1] = tpl[list(rig.INNER_UPPER), 1] - tpl[list(rig.INNER_LOWER), 1]
    shut = closed_lips.copy()
    for up, lo in ((rig.LEFT_UPPER_LID, rig.LEFT_LOWER_LID), (rig.RIGHT_UPPER_LID, rig.RIGHT_LOWER_LID)):
        gap = tpl[list(lo), 1] - tpl[list(up), 1]
        shut[list(up), 1] += 0.4 * gap
        shut[list(lo), 1] -= 0.4 * gap
    talking = closed_lips.copy()
    talking[list(rig.INNER_LOWER), 1] += 0.08
    src = _face((0, 0, 0), expression=closed_lips)[0]
    assert at_rest(src, _face((10, 5, 0), 60.0, expression=closed_lips)[0])  # pose and size do not matter
    assert not at_rest(src, _face((0, 0, 0), expression=shut)[0])
    assert not at_rest(src, _face((0, 0, 0), expression=talking)[0])
    assert at_rest(_face((0, 0, 0), expression=talking)[0], _face((0, 0, 0), expression=talking)[0])  # as the portrait's own


def test_stable_ids_exclude_mouth_and_eyes():
    ids = set(stable_ids().tolist())
    assert 13 not in ids and 14 not in ids and 159 not in ids
    assert 1 in ids or 4 in ids  # nose


def test_a_turn_past_the_limit_is_softened_but_roll_and_small_turns_pass():
    """A 45° driver turn from a 3/4-view portrait would show the side the photo never had."""
    src, src_rot = _face((25, 0, 0), 100.0, (256, 256, 0))
    ref, _ = _face((25, 0, 0), 60.0, (100, 120, 0))

    def turned(yaw, roll=0.0, max_turn=28.0):
        mt = MotionTransfer(src, MotionConfig(max_turn=max_turn, pose_smoothing=OFF, expression_smoothing=OFF))
        mt.set_reference(ref)
        out, _ = _face((25 - yaw, 0, roll), 60.0, (100, 120, 0))
        pose, _ = decompose(mt(out))
        return Rotation.from_matrix(pose.rotation @ src_rot.T)

    small = turned(15.0)
    assert np.isclose(np.degrees(small.magnitude()), 15.0, atol=1e-4)  # below the knee: exact
    big = [np.degrees(turned(y).magnitude()) for y in (25.0, 35.0, 45.0, 60.0)]
    assert all(b < a for a, b in zip(big[1:], big[:-1]))  # still monotonic
    assert big[0] < 25.0 and 27.0 < big[-1] <= 28.0 + 1e-6
    assert np.isclose(np.degrees(turned(45.0, max_turn=0.0).magnitude()), 45.0, atol=1e-4)
    # in-plane roll is a rotation a 2-D warp renders exactly: never limited
    roll = turned(0.0, roll=50.0)
    assert np.isclose(np.degrees(roll.magnitude()), 50.0, atol=1e-4)


def test_a_known_clip_moves_the_reference_so_its_turns_keep_their_size():
    """Matched to a three-quarter portrait, a mostly frontal driver's reference is its most
    turned frame: its turns the other way reached 40° from the portrait. Knowing the clip, the
    reference moves instead, so each turn keeps its size and timing (a constant offset)."""
    src, src_rot = _face((25, 0, 0), 100.0, (256, 256, 0))
    yaws = np.r_[np.linspace(-23.0, 19.0, 60), np.zeros(120)]
    clip = [_face((y, 0, 0), 60.0, (100, 120, 0))[0] for y in yaws]
    matched = clip[int(np.argmin(np.abs(yaws - 17.5)))]

    def turns(known):
        mt = MotionTransfer(src, MotionConfig(max_turn=30.0, pose_smoothing=OFF, expression_smoothing=OFF))
        mt.set_reference(matched, clip=clip if known else None)
        return np.array([Rotation.from_matrix(decompose(mt(lm))[0].rotation @ src_rot.T).as_euler("yxz", degrees=True)[0]
                         for lm in clip])

    blind, known = turns(False), turns(True)
    assert np.abs(blind).max() > 29.0  # the per-frame limit alone flattens the far end
    within = np.abs(known) <= 0.8 * 30.0
    assert within.mean() >= 0.98 and np.abs(known).max() < 27.0  # a 2 % tail may reach past the knee
    shift = (known - yaws)[within]
    assert np.ptp(shift) < 1e-3 and abs(shift[0]) < 5.0  # every turn kept exactly, offset by far less than 17.5°
