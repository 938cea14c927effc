"""Fine motion from the driver's optical flow: what the landmarks miss inside the face moves too."""

import dataclasses

import cv2
import numpy as np
import pytest

from avatar.config import FaceConfig, RenderConfig
from avatar.face import topology
from avatar.face.crop import crop_box, crop_matrix, make_crop
from avatar.face.landmarks import detect_face
from avatar.motion.flow import DriverFlow
from avatar.render.detail import CAP
from avatar.render.warp import WarpEngine
from avatar.types import DriveTarget

SIZE = 512


@pytest.fixture(scope="module")
def crop(portrait):
    face = detect_face(portrait)
    return make_crop(portrait, face.landmarks, crop_matrix(crop_box(face.landmarks, FaceConfig()), SIZE), SIZE)


def _moved(crop, dx, dy, where=None):
    """The crop's image with its content moved by (dx, dy) pixels (smoothly, only ``where`` > 0);
    the landmarks stay: the tracker missed the motion."""
    weight = np.ones(crop.image.shape[:2], np.float32) if where is None else where.astype(np.float32)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    img = cv2.remap(crop.image, xx - dx * weight, yy - dy * weight, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return dataclasses.replace(crop, image=img)


def _region(crop, ids, grow=0):
    mask = np.zeros((SIZE, SIZE), np.uint8)
    cv2.fillPoly(mask, [cv2.convexHull(crop.landmarks[ids, :2].astype(np.float32)).round().astype(np.int32)], 1)
    return cv2.dilate(mask, np.ones((2 * grow + 1,) * 2, np.uint8)) > 0 if grow else mask > 0


def _cheek(crop):
    """A smooth bump over the image-left cheek, 1 at its middle, about 0 beyond 35 px."""
    centre = crop.landmarks[[50, 205, 187], :2].mean(0)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    return np.exp(-((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2) / (2 * 14.0**2))


def test_flow_measures_a_known_shift(crop):
    flow = DriverFlow()(_moved(crop, 1.5, -1.0), crop)
    fx, fy = flow.at(*(c.astype(np.float32) for c in crop.landmarks[:468, :2].T))
    # backward flow: current(q) = reference(q + flow), so a content shift of +d reads as -d
    assert np.median(fx) == pytest.approx(-1.5, abs=0.2)
    assert np.median(fy) == pytest.approx(1.0, abs=0.2)


def test_skin_motion_the_landmarks_missed_reaches_the_portrait(crop):
    """The driver's cheek moves 2 px, its landmarks do not: with detail the portrait's cheek
    follows; without, the portrait stays as it was."""
    bump = _cheek(crop)
    driver = _moved(crop, 2.0, 0.0, bump)
    on, off = WarpEngine(RenderConfig(shading=False)), WarpEngine(RenderConfig(shading=False, detail=False))
    target = [DriveTarget(crop.landmarks, driver, crop)]
    with_detail = on.render(on.prepare(crop), target)[0].astype(np.float32)
    without = off.render(off.prepare(crop), target)[0].astype(np.float32)
    cheek = bump > 0.5
    err_on = np.abs(with_detail - driver.image)[cheek].mean()
    err_off = np.abs(without - driver.image)[cheek].mean()
    assert err_off > 2.0  # the move is visible
    assert err_on < 0.5 * err_off


def test_lips_and_eyes_take_no_correction_and_no_correction_exceeds_the_cap(crop):
    engine = WarpEngine(RenderConfig(shading=False))
    state = engine.prepare(crop)
    driver = _moved(crop, 10.0, 0.0)  # far beyond the cap
    shift = engine.backward_map(state, crop.landmarks, driver, crop) - engine.backward_map(state, crop.landmarks)
    size = np.hypot(shift[..., 0], shift[..., 1])
    m = topology.mesh()
    assert size.max() <= CAP * SIZE * 1.05 + 0.05  # bilinear upsampling of the capped map
    for ids in (m["lips"], *m["eye_loops"]):
        # the map is rasterised at half resolution: its edge pixels blend over a crop pixel or two
        part = cv2.erode(_region(crop, ids).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        assert size[part].max() < 0.05
    cheeks = _cheek(crop) > 0.5
    assert np.median(size[cheeks]) > 0.9 * CAP * SIZE  # the rest of the face moved, as far as the cap lets it
    outside = ~_region(crop, m["oval"], grow=2)
    # beyond the face only a trace, from the smoothing of the motion around it
    assert size[outside].max() < 0.1 * CAP * SIZE


def test_detail_off_or_an_unchanged_driver_leaves_the_map_alone(crop):
    on, off = WarpEngine(RenderConfig()), WarpEngine(RenderConfig(detail=False, shading=False))
    assert on.wants_driving_image and not off.wants_driving_image
    driver = _moved(crop, 2.0, 1.0)
    s_off = off.prepare(crop)
    assert np.array_equal(off.backward_map(s_off, crop.landmarks, driver, crop), off.backward_map(s_off, crop.landmarks))
    s_on = on.prepare(crop)
    still = on.backward_map(s_on, crop.landmarks, crop, crop) - on.backward_map(s_on, crop.landmarks)
    assert np.abs(still).max() < 1e-3
