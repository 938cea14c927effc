"""DrivingCrop: one fixed box for a driving video, the first crop as reference, and no-face frames."""

import numpy as np
import pytest

from avatar.config import FaceConfig
from avatar.face.crop import DrivingCrop
from avatar.face.landmarks import detect_face


@pytest.fixture(scope="module")
def face(portrait):
    return detect_face(portrait).landmarks


def test_the_box_stays_where_the_first_face_put_it(portrait, face):
    crops = DrivingCrop(FaceConfig(size=256))
    first = crops(portrait, face)
    assert crops.reference is first and first.image.shape == (256, 256, 3)
    moved = np.roll(portrait, 20, axis=1)  # the head moves 20 px right in front of the camera
    second = crops(moved, face + [20, 0, 0])
    assert np.array_equal(second.crop_from_frame, first.crop_from_frame) and crops.reference is first
    shift = np.median(second.landmarks[:, 0] - first.landmarks[:, 0])
    assert shift == pytest.approx(20 * first.crop_from_frame[0, 0], abs=0.01)  # it moves inside the crop


def test_no_face_keeps_the_reference_landmarks_and_reset_starts_over(portrait, face):
    crops = DrivingCrop(FaceConfig(size=128))
    with pytest.raises(ValueError):
        crops(portrait, None)  # nothing to place the box by yet
    first = crops(portrait, face)
    blank = crops(np.zeros_like(portrait), None)
    assert np.allclose(blank.landmarks, first.landmarks, atol=1e-3) and blank.image.max() == 0
    crops.reset()
    assert crops.reference is None and crops.matrix is None
    again = crops(portrait, face * [0.5, 0.5, 0.5])
    assert not np.array_equal(again.crop_from_frame, first.crop_from_frame)
