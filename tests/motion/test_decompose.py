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
    expr[[14, 17], 1] = 0.2  # the lower lip drops whole (its inner edge alone would thin it: see test_transfer_lips)
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


def test_stable_ids_exclude_mouth_and_eyes():
    ids = set(stable_ids().tolist())
    assert 13 not in ids and 14 not in ids and 159 not in ids
    assert 1 in ids or 4 in ids  # nose
