"""Relative shading: only the driver's change of brightness since its reference moves onto the face."""

import dataclasses

import cv2
import numpy as np
import pytest

from avatar.config import FaceConfig, RenderConfig
from avatar.face import topology
from avatar.face.crop import crop_box, crop_matrix, make_crop
from avatar.face.landmarks import detect_face
from avatar.render.shading import GAIN_RANGE, ShadingTransfer
from avatar.render.warp import WarpEngine


@pytest.fixture(scope="module")
def crop(portrait):
    face = detect_face(portrait)
    return make_crop(portrait, face.landmarks, crop_matrix(crop_box(face.landmarks, FaceConfig()), 256), 256)


def _oval(crop, erode=0):
    mask = np.zeros(crop.image.shape[:2], np.uint8)
    cv2.fillPoly(mask, [crop.landmarks[topology.mesh()["oval"], :2].round().astype(np.int32)], 1)
    return cv2.erode(mask, np.ones((2 * erode + 1,) * 2, np.uint8)) > 0 if erode else mask > 0


def _scaled(crop, factor, where=None):
    img = crop.image.astype(np.float32)
    sel = np.ones(img.shape[:2], bool) if where is None else where
    img[sel] *= factor
    return dataclasses.replace(crop, image=np.clip(img, 0, 255).astype(np.uint8))


def test_an_unchanged_driver_changes_nothing(crop):
    out = ShadingTransfer().apply(crop.image, crop.landmarks, crop, crop)
    assert np.array_equal(out, crop.image)


def _face(crop):
    return cv2.dilate(_oval(crop).astype(np.uint8), np.ones((9, 9), np.uint8)) > 0


def test_light_on_the_drivers_face_brightens_the_face_only(crop):
    g = ShadingTransfer().gain(crop.landmarks, 256, _scaled(crop, 1.1, _face(crop)), crop)
    inner = _oval(crop, erode=30)
    assert np.median(g[inner]) == pytest.approx(1.1, abs=0.02)
    far = cv2.dilate(_oval(crop).astype(np.uint8), np.ones((65, 65), np.uint8)) == 0  # > 32 px outside the face
    assert far.any() and np.abs(g[far] - 1.0).max() < 1e-3


def test_a_whole_picture_change_is_exposure_and_does_not_transfer(crop):
    """A webcam's auto-exposure brightens face and background alike: divided out."""
    g = ShadingTransfer().gain(crop.landmarks, 256, _scaled(crop, 1.15), crop)
    assert np.abs(np.median(g[_oval(crop, erode=30)]) - 1.0) < 0.02


def test_a_shadow_on_one_cheek_darkens_that_cheek_within_the_range(crop):
    x_mid = crop.landmarks[topology.mesh()["oval"], 0].mean()
    left = np.zeros(crop.image.shape[:2], bool)
    left[:, : int(x_mid)] = True
    g = ShadingTransfer().gain(crop.landmarks, 256, _scaled(crop, 0.5, left), crop)
    inner = _oval(crop, erode=10)
    cols = np.arange(256)[None, :]
    lo = g[inner & (cols < x_mid - 25)]
    hi = g[inner & (cols > x_mid + 25)]  # the blur spreads the change ~3 sigma (24 px here) at most
    assert lo.min() >= GAIN_RANGE[0] - 1e-6 and np.median(lo) < 0.9  # darker, but never more than the range allows
    assert np.median(hi) > 0.97


def test_the_warp_engine_uses_the_driver_only_when_asked(crop):
    from avatar.types import DriveTarget

    darker = _scaled(crop, 0.8, _face(crop))  # a shadow falls on the driver's face
    on, off = WarpEngine(RenderConfig(detail=False)), WarpEngine(RenderConfig(shading=False, detail=False))
    assert on.wants_driving_image and not off.wants_driving_image
    plain = on.render(on.prepare(crop), [DriveTarget(crop.landmarks)])[0].astype(int)
    shaded = on.render(on.prepare(crop), [DriveTarget(crop.landmarks, darker, crop)])[0].astype(int)
    unshaded = off.render(off.prepare(crop), [DriveTarget(crop.landmarks, darker, crop)])[0].astype(int)
    inner = _oval(crop, erode=20)
    assert np.array_equal(unshaded, plain)
    assert (shaded[inner] - plain[inner]).mean() < -10  # the face got darker with the driver
    assert np.abs(shaded[:15, :15] - plain[:15, :15]).max() <= 1  # the background did not
