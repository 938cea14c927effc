"""Paste-back: unchanged crops keep the original pixels, changes blend in without a box edge."""

import numpy as np
import pytest

from avatar.face.blend import PasteBack
from avatar.face.crop import crop_matrix, make_crop


@pytest.fixture(scope="module")
def scene(portrait):
    frame = np.ascontiguousarray(portrait[:, :, :3])
    m = crop_matrix((256.0, 220.0, 300.0), 256)  # a 300 px box, rendered at 256: resampled both ways
    crop = make_crop(frame, np.zeros((478, 3), np.float32), m, 256).image
    return frame, m, crop


def test_an_unchanged_crop_gives_back_the_original_pixels(scene):
    frame, m, crop = scene
    out = PasteBack(frame, m, 256, source_crop=crop)(crop)
    assert out.shape == frame.shape and out.dtype == np.uint8
    assert np.array_equal(out, frame)  # no resampling blur on anything that did not move


def test_a_change_blends_in_locally_without_a_box_edge(scene):
    frame, m, crop = scene
    changed = crop.copy()
    changed[96:160, 96:160] = 255 - changed[96:160, 96:160]  # a block in the middle of the crop
    paste = PasteBack(frame, m, 256, source_crop=crop)
    out = paste(changed).astype(int)
    # the change shows where it was made (crop px 96..160 ↔ frame ≈ 218..293, 182..257)
    centre = np.abs(out[225:250, 260:285] - frame[225:250, 260:285].astype(int)).mean()
    assert centre > 60
    # far from it, and along the crop's border in the frame, the portrait is untouched
    x0, y0, x1, y1 = paste.roi
    assert np.array_equal(out[:y0], frame[:y0]) and np.array_equal(out[y1:], frame[y1:])
    border = np.concatenate([out[y0:y1, x0 + 1], out[y0:y1, x1 - 2], out[y0 + 1, x0:x1], out[y1 - 2, x0:x1]])
    ref = np.concatenate([frame[y0:y1, x0 + 1], frame[y0:y1, x1 - 2], frame[y0 + 1, x0:x1], frame[y1 - 2, x0:x1]]).astype(int)
    assert np.abs(border - ref).max() <= 1
    assert np.array_equal(out[y0 + 5:y0 + 40, x0 + 5:x0 + 40], frame[y0 + 5:y0 + 40, x0 + 5:x0 + 40])


def test_without_a_source_crop_the_feather_hides_the_box(scene):
    frame, m, crop = scene
    out = PasteBack(frame, m, 256)(np.zeros_like(crop)).astype(int)  # a black crop
    x0, y0, x1, y1 = PasteBack(frame, m, 256).roi
    mid = (y0 + y1) // 2
    assert out[mid, (x0 + x1) // 2].max() <= 1  # fully replaced in the middle
    edge = np.abs(out[mid, x0 + 1] - frame[mid, x0 + 1].astype(int)).max()
    assert edge <= 2  # ... and not at all at the box edge
