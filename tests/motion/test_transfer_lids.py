"""Motion transfer closes the portrait's eyes when the driver's close: a portrait whose eyes are
open wider than the driver's reference must not stay half open through the driver's blinks."""

from __future__ import annotations

import numpy as np
import pytest

from avatar.config import MotionConfig, SmoothingConfig
from avatar.motion import rig
from avatar.motion.decompose import decompose
from avatar.motion.transfer import LID_CLOSED, MotionTransfer, close_lids, lid_depths

_UP = np.array(rig.LEFT_UPPER_LID + rig.RIGHT_UPPER_LID)
_LO = np.array(rig.LEFT_LOWER_LID + rig.RIGHT_LOWER_LID)
_MIDDLE = np.array([3, 10])  # 159 and 386, each eye's middle pair


@pytest.fixture(scope="module")
def source() -> np.ndarray:
    from avatar.examples import example_portrait
    from avatar.face.landmarks import detect_face

    return detect_face(example_portrait()).landmarks.astype(np.float64)


def _with_lids(face: np.ndarray, share: float) -> np.ndarray:
    """``face`` with each upper lid lowered so the lid gap is ``share`` of its own (pixel frame)."""
    out = face.copy()
    gap = out[_LO, 1] - out[_UP, 1]
    out[_UP, 1] += (1.0 - share) * gap
    return out


def _gaps(canon: np.ndarray) -> np.ndarray:
    return canon[_LO, 1] - canon[_UP, 1]


def test_a_driver_blink_closes_eyes_open_wider_than_the_drivers(source):
    # the driver: this face with its eyes half as open; it blinks to a gap under the one a
    # tracker reads on a closed eye (LID_CLOSED of its open gap)
    reference = _with_lids(source, 0.5)
    blink = _with_lids(source, 0.25 * LID_CLOSED)
    still = SmoothingConfig(enabled=False)
    transfer = MotionTransfer(source, MotionConfig(pose_smoothing=still, expression_smoothing=still))
    transfer.set_reference(reference)
    _, rest = decompose(source)
    _, closed = decompose(transfer(blink))
    assert np.all(_gaps(closed)[_MIDDLE] < 0.05 * _gaps(rest)[_MIDDLE]), (_gaps(closed), _gaps(rest))
    # half way through the blink, half the driver's gap: about half of the portrait's own
    _, half = decompose(transfer(_with_lids(source, 0.25 + 0.25 * LID_CLOSED)))
    share = _gaps(half)[_MIDDLE] / _gaps(rest)[_MIDDLE]
    assert np.all((share > 0.35) & (share < 0.65)), share
    # the driver's offsets alone (pixels, not shares) leave the wider eyes about half open
    _, ref_canon = decompose(reference)
    _, blink_canon = decompose(blink)
    additive = rest + (blink_canon - ref_canon)
    assert np.all(_gaps(additive)[_MIDDLE] > 0.4 * _gaps(rest)[_MIDDLE])
    # opening wider than the reference stays the driver's offsets
    wide = rest + 0.01 * np.eye(3)[1][None, :] * np.isin(np.arange(478), _LO)[:, None]
    np.testing.assert_array_equal(close_lids(wide.copy(), rest, ref_canon, wide - rest), wide)


def test_closed_lids_meet_in_depth_too():
    rest = np.zeros((478, 3))
    rest[_UP] = np.c_[np.zeros(len(_UP)), np.full(len(_UP), 0.40), np.full(len(_UP), 0.02)]
    rest[_LO] = np.c_[np.zeros(len(_LO)), np.full(len(_LO), 0.46), np.full(len(_LO), 0.06)]
    closed = rest.copy()
    closed[_UP, 1] = 0.46  # the lids met in the face's own frame, still 0.04 apart in depth
    out = lid_depths(closed.copy(), rest)
    np.testing.assert_allclose(out[_UP, 2], out[_LO, 2])
    np.testing.assert_allclose(out[_UP, 2], 0.04)
    # a tilted head no longer turns that depth into a gap in the picture
    tilt = np.deg2rad(20.0)
    pitch = np.array([[1, 0, 0], [0, np.cos(tilt), -np.sin(tilt)], [0, np.sin(tilt), np.cos(tilt)]])
    assert np.abs((closed @ pitch.T)[_LO, 1] - (closed @ pitch.T)[_UP, 1]).max() > 0.01
    assert np.abs((out @ pitch.T)[_LO, 1] - (out @ pitch.T)[_UP, 1]).max() < 1e-9
    # open lids keep their depths
    np.testing.assert_array_equal(lid_depths(rest.copy(), rest), rest)
