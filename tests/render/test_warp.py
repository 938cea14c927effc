import numpy as np
import pytest

from avatar.face import topology
from avatar.face.crop import crop_box, crop_matrix, make_crop
from avatar.face.landmarks import detect_face
from avatar.config import FaceConfig
from avatar.render.registry import create_engine, list_engines
from avatar.types import DriveTarget


@pytest.fixture(scope="module")
def crop(portrait):
    face = detect_face(portrait)
    m = crop_matrix(crop_box(face.landmarks, FaceConfig()), 256)
    return make_crop(portrait, face.landmarks, m, 256)


@pytest.fixture(scope="module")
def engine():
    return create_engine("warp")


def test_registry_knows_builtin_engines():
    assert {"warp", "fomm", "onnx"} <= set(list_engines())


def test_no_motion_returns_the_source(engine, crop):
    state = engine.prepare(crop)
    out = engine.render(state, [DriveTarget(crop.landmarks)])
    assert out.shape == (1, 256, 256, 3) and out.dtype == np.uint8
    assert np.abs(out[0].astype(float) - crop.image).mean() / 255 < 0.003


def test_known_displacement_moves_the_redetected_landmark(engine, crop):
    state = engine.prepare(crop)
    target = crop.landmarks.copy()
    target[:, 0] += 6.0  # the whole face shifts 6 px right
    out = engine.render_one(state, target)
    found = detect_face(out).landmarks
    before = detect_face(crop.image).landmarks
    shift = np.median(found[:, 0] - before[:, 0])
    assert 4.5 < shift < 7.5
    # background at the crop corner stays put
    assert np.abs(out[:20, :20].astype(float) - crop.image[:20, :20]).mean() < 2


def _mouth_gap(lm):
    return np.linalg.norm(lm[13, :2] - lm[14, :2])


def test_mouth_opens_with_interior_and_closes(engine, crop):
    state = engine.prepare(crop)
    lm = crop.landmarks.copy()
    loop = topology.mesh()["mouth_loop"]
    lower = [i for i in loop if lm[i, 1] > lm[topology.UPPER_LIP_INNER, 1] + 0.5] + [14]
    jaw = np.where(lm[:, 1] > lm[14, 1])[0]
    opened = lm.copy()
    opened[np.union1d(lower, jaw), 1] += 14
    out = engine.render_one(state, opened)
    assert _mouth_gap(detect_face(out).landmarks) > _mouth_gap(detect_face(crop.image).landmarks) + 6
    # the synthetic interior is darker than the lips around it
    mid = ((opened[13, :2] + opened[14, :2]) / 2).round().astype(int)
    assert out[mid[1] - 1:mid[1] + 2, mid[0] - 1:mid[0] + 2].mean() < crop.image[mid[1], mid[0]].mean()
    # closing the lips again gives back a closed mouth
    closed = opened.copy()
    closed[loop, 1] = lm[loop, 1]
    closed[jaw, 1] = lm[jaw, 1]
    out2 = engine.render_one(state, closed)
    assert abs(_mouth_gap(detect_face(out2).landmarks) - _mouth_gap(detect_face(crop.image).landmarks)) < 3


def test_blink_closes_the_eyelids(engine, crop):
    state = engine.prepare(crop)
    lm = crop.landmarks.copy()
    for loop, iris in zip(topology.mesh()["eye_loops"], (range(468, 473), range(473, 478))):
        loop = np.asarray(loop, int)
        cy = lm[loop, 1].mean()
        lower = loop[lm[loop, 1] >= cy]
        upper = loop[lm[loop, 1] < cy]
        order = np.argsort(lm[lower, 0])
        # upper lid onto the lower lid: the eye closes
        lm[upper, 1] = np.interp(lm[upper, 0], lm[lower[order], 0], lm[lower[order], 1]) - 0.3
        lm[list(iris), 1] = np.interp(lm[list(iris), 0], lm[lower[order], 0], lm[lower[order], 1]) - 0.15
    out = engine.render_one(state, lm)
    # the dark iris disappears under the eyelid skin
    for c in (468, 473):
        x, y = crop.landmarks[c, :2].round().astype(int)
        before = crop.image[y - 2:y + 3, x - 2:x + 3].astype(float).mean()
        after = out[y - 2:y + 3, x - 2:x + 3].astype(float).mean()
        assert after > before + 10, (before, after)
