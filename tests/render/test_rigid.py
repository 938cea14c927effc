"""Glasses frames move rigidly with the head: straight rims stay straight under expressions and turns."""

import dataclasses

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from avatar.config import FaceConfig
from avatar.face import topology
from avatar.face.crop import crop_box, crop_matrix, make_crop
from avatar.face.landmarks import detect_face
from avatar.render import rigid
from avatar.render.warp import WarpEngine


@pytest.fixture(scope="module")
def crop(portrait):
    face = detect_face(portrait)
    return make_crop(portrait, face.landmarks, crop_matrix(crop_box(face.landmarks, FaceConfig()), 256), 256)


def _rims(lm: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Synthetic rectangular lenses around each eye: (top-left, bottom-right) corners."""
    iod = np.linalg.norm(lm[263, :2] - lm[33, :2])
    out = []
    for loop in topology.mesh()["eye_loops"]:
        c = lm[np.asarray(loop, int), :2].mean(0)
        out.append((c - [0.27 * iod, 0.15 * iod], c + [0.27 * iod, 0.18 * iod]))
    return out


def _with_glasses(crop):
    img = crop.image.copy()
    rims = _rims(crop.landmarks)
    for a, b in rims:
        cv2.rectangle(img, tuple(np.round(a).astype(int)), tuple(np.round(b).astype(int)), (25, 25, 30), 2)
    (a0, b0), (a1, b1) = sorted(rims, key=lambda r: r[0][0])
    y = int(round(a0[1] + 0.3 * (b0[1] - a0[1])))
    cv2.line(img, (int(round(b0[0])), y), (int(round(a1[0])), y), (25, 25, 30), 2)  # the bridge
    return dataclasses.replace(crop, image=img), rims


def _smile_and_turn(lm: np.ndarray) -> np.ndarray:
    """Cheeks pushed up under the middle of each eye (a squinting smile) and the head turned 12°."""
    out = lm.astype(np.float64).copy()
    iod = np.linalg.norm(lm[263, :2] - lm[33, :2])
    eye_y = lm[list(topology.EYE_OUTER), 1].mean()
    band = (lm[:, 1] > eye_y + 0.05 * iod) & (lm[:, 1] < lm[topology.NOSE_TIP, 1])
    for loop in topology.mesh()["eye_loops"]:
        cx = lm[np.asarray(loop, int), 0].mean()
        out[band, 1] -= 6.0 * np.exp(-(((lm[band, 0] - cx) / (0.14 * iod)) ** 2))
    c = out[:468].mean(0)
    return (out - c) @ Rotation.from_euler("y", 12, degrees=True).as_matrix().T + c


def test_glasses_are_found_only_where_there_are_glasses(crop):
    assert rigid.detect_frames(crop.image, crop.landmarks) is None
    glasses, rims = _with_glasses(crop)
    parts = rigid.detect_frames(glasses.image, glasses.landmarks)
    assert parts is not None
    for a, b in rims:  # the bottom rim of each lens is rigid
        y = int(round(b[1]))
        xs = np.arange(int(a[0]) + 3, int(b[0]) - 3)
        assert parts.weight[y, xs].mean() > 0.9


def _rim_residual(out: np.ndarray, a: np.ndarray, b: np.ndarray, forward: np.ndarray) -> float:
    """RMS distance (px) of the darkest pixels along the moved bottom rim from their best line."""
    grey = cv2.cvtColor(out, cv2.COLOR_RGB2GRAY).astype(np.float32)
    p0 = forward @ [a[0] + 4, b[1], 1]
    p1 = forward @ [b[0] - 4, b[1], 1]
    xs, ys = [], []
    for x in np.arange(int(np.ceil(p0[0])), int(p1[0])):
        y_expect = p0[1] + (x - p0[0]) * (p1[1] - p0[1]) / (p1[0] - p0[0])
        col = np.arange(int(y_expect) - 6, int(y_expect) + 7)
        prof = grey[col, x]
        k = int(np.argmin(prof))
        if 0 < k < len(col) - 1:  # sub-pixel: parabola through the minimum
            d = prof[k - 1] - 2 * prof[k] + prof[k + 1]
            off = 0.5 * (prof[k - 1] - prof[k + 1]) / d if d > 1e-3 else 0.0
        else:
            off = 0.0
        xs.append(x)
        ys.append(col[k] + off)
    xs, ys = np.array(xs, float), np.array(ys)
    fit = np.polyfit(xs, ys, 1)
    return float(np.sqrt(np.mean((ys - np.polyval(fit, xs)) ** 2)))


def test_glasses_lines_stay_straight_under_an_expression_and_a_turn(crop):
    """Without rigid frames the mesh bends the lower rims with the cheeks under them."""
    glasses, rims = _with_glasses(crop)
    target = _smile_and_turn(glasses.landmarks)
    residuals = {}
    for on in (True, False):
        engine = WarpEngine(rigid_parts=on)
        state = engine.prepare(glasses)
        out = engine.render_one(state, target.astype(np.float32))
        s, r, t = engine._head_motion(state, target)
        forward = rigid.plane_affine(state.rigid.plane if on else rigid.detect_frames(glasses.image, glasses.landmarks).plane, s, r, t)
        residuals[on] = max(_rim_residual(out, a, b, forward) for a, b in rims)
    assert residuals[True] < 0.6, residuals
    assert residuals[False] > 2 * residuals[True], residuals


def test_what_a_lens_shows_moves_with_the_face(crop):
    """Only the frame lines move rigidly: inside a lens (away from its rim and the eye) the output
    is the face's own mesh warp, as for the same face without glasses (a lens moved as one piece
    showed a flat patch of skin beside the warped cheek on a turned portrait)."""
    # a textured face, so skin moved another way than the mesh moves it shows
    noise = np.random.default_rng(0).integers(-40, 41, crop.image.shape[:2])[..., None]
    crop = dataclasses.replace(crop, image=np.clip(crop.image.astype(int) + noise, 0, 255).astype(np.uint8))
    glasses, rims = _with_glasses(crop)
    target = _smile_and_turn(glasses.landmarks).astype(np.float32)
    engine = WarpEngine()
    with_glasses = engine.render_one(engine.prepare(glasses), target).astype(np.float32)
    face = engine.render_one(engine.prepare(crop), target).astype(np.float32)  # the same face, no glasses
    s, r, t = engine._head_motion(engine.prepare(glasses), target)
    forward = rigid.plane_affine(rigid.detect_frames(glasses.image, glasses.landmarks).plane, s, r, t)
    inner = np.zeros(crop.image.shape[:2], np.uint8)
    for a, b in rims:  # each lens, shrunk inside its rim, where it lands in the output
        corners = np.array([[a[0], a[1]], [b[0], a[1]], [b[0], b[1]], [a[0], b[1]]], np.float64)
        moved = np.column_stack([corners, np.ones(4)]) @ forward.T
        c = moved.mean(0)
        cv2.fillPoly(inner, [np.round(c + 0.7 * (moved - c)).astype(np.int32)], 1)
    eye = np.zeros_like(inner)
    for loop in topology.mesh()["eye_loops"]:
        cv2.fillPoly(eye, [np.round(cv2.convexHull(target[np.asarray(loop, int), :2])).astype(np.int32)], 1)
    sel = (inner > 0) & (cv2.dilate(eye, np.ones((5, 5), np.uint8)) == 0)
    assert sel.sum() > 100
    diff = np.abs(with_glasses - face).mean(-1)[sel]
    # near the rims the rigid frame's feather still differs; the lens as a whole is the face's
    # (median 2.3 grey levels here; 5.7 with each lens moved as one piece)
    assert np.median(diff) < 3.5, np.median(diff)


def test_texture_lent_to_the_far_side_has_no_glasses_frame(crop):
    """A side that turns into view borrows its mirror side's texture; the frame there is drawn
    rigidly where it is, so a borrowed copy of the near rim and temple arm would be a second pair."""
    from avatar.render import facing

    glasses, _ = _with_glasses(crop)
    engine = WarpEngine()
    state = engine.prepare(glasses)
    frame = state.rigid.weight > 0.5
    plain = engine.prepare(crop).mirror_image.astype(np.float32)[frame]  # the same face, no glasses
    lm = np.column_stack([state.vertices[:478], state.depth[:478]])
    kept = facing.mirror_texture(glasses.image, lm).astype(np.float32)[frame]  # frame left in
    lent = state.mirror_image.astype(np.float32)[frame]
    assert np.abs(lent - plain).mean() < 0.7 * np.abs(kept - plain).mean()
    dark = lambda a: float((a.mean(1) < 50).mean())  # noqa: E731 - share of frame-dark pixels
    assert dark(lent) < dark(plain) + 0.04 < dark(kept) - 0.15  # no frame line left, only the face's own dark


def test_temple_arms_run_back_to_the_ears(crop):
    """A temple arm leaves the lens plane at the hinge and ends at the ear, far behind it: on a
    turn its end moves as the face's outline there does, not with the plane of the eyes (which
    drew it as two diverging strokes and dragged the ear into a wedge)."""
    glasses, rims = _with_glasses(crop)
    img = glasses.image.copy()
    lm = glasses.landmarks.astype(np.float64)
    iod = np.linalg.norm(lm[263, :2] - lm[33, :2])
    oval = lm[topology.mesh()["oval"]]
    nose_x = lm[topology.NOSE_TIP, 0]
    ends = []
    for a, b in rims:
        side = -1.0 if a[0] < nose_x else 1.0
        hinge = np.array([a[0] if side < 0 else b[0], a[1] + 0.3 * (b[1] - a[1])])
        half = oval[np.sign(oval[:, 0] - nose_x) == side]
        outline = half[np.argmin(np.abs(half[:, 1] - hinge[1]))]
        end = outline[:2] + [side * 0.2 * iod, 0.0]  # over the ear, just beyond the outline
        # a silver arm: the astronaut's hair there is as dark as the rims
        cv2.line(img, tuple(np.round(hinge).astype(int)), tuple(np.round(end).astype(int)), (215, 215, 220), 2)
        ends.append((end, outline))
    glasses = dataclasses.replace(glasses, image=img)
    parts = rigid.detect_frames(glasses.image, glasses.landmarks)
    assert parts is not None and len(parts.arms) == 2
    target = _smile_and_turn(lm)
    engine = WarpEngine()
    s, r, t = engine._head_motion(engine.prepare(glasses), target)
    for end, outline in ends:
        weight, plane, box = min(parts.arms, key=lambda arm: abs((arm[2][0] + arm[2][2]) / 2 - end[0]))
        assert weight[int(round(end[1])), int(round(end[0])) - 3: int(round(end[0])) + 1].max() > 0.5
        assert abs(plane @ [end[0], end[1], 1.0] - outline[2]) < 0.1 * iod  # as deep as the outline
        like_outline = (s * r @ [end[0], end[1], outline[2]] + t)[:2]
        on_arm = rigid.plane_affine(plane, s, r, t) @ [end[0], end[1], 1.0]
        on_lens = rigid.plane_affine(parts.plane, s, r, t) @ [end[0], end[1], 1.0]
        off_arm, off_lens = np.linalg.norm(on_arm - like_outline), np.linalg.norm(on_lens - like_outline)
        assert off_arm < 1.5 and off_lens > 3 * off_arm + 2.0, (off_arm, off_lens)


def test_a_temple_arm_runs_straight_to_where_the_warp_puts_its_end():
    """A temple arm rests on the temple: where the warp moves the temple and hair away from the
    head's rigid motion (the far side of a turn that the landmarks bend), the arm runs straight
    from its hinge, which the lenses carry, to where the warp puts its end; held rigid it left
    them, and blended into the warp it bent into a jagged Z."""
    from avatar.render.warp import _forward_point

    # a backward map that scales by 1.25 about (10, 20) and shifts: the forward point is exact
    yy, xx = np.mgrid[0:128, 0:128].astype(np.float32)
    mp = np.dstack([(xx - 10) / 1.25 + 10 - 3.0, (yy - 20) / 1.25 + 20 + 2.0])
    point = np.array([60.3, 70.6])
    truth = (point - [-3.0, 2.0] - [10, 20]) * 1.25 + [10, 20]
    landed = _forward_point(mp, point, truth + [9.0, -7.0], 20.0)
    assert landed is not None and np.abs(landed - truth).max() < 0.05, (landed, truth)
    assert _forward_point(mp, point, truth + [40.0, 0.0], 20.0) is None  # not near the guess
    # the arm: hinge carried by the lenses' motion, end where the warp put it, as thick as before
    lens = np.array([[0.9, -0.1, 12.0], [0.1, 0.9, -4.0]])
    hinge, end = np.array([100.0, 80.0]), np.array([140.0, 70.0])
    end_target = np.array([150.0, 90.0])
    arm = rigid.arm_affine(lens, hinge, end, end_target)
    assert np.allclose(arm @ [*hinge, 1.0], lens @ [*hinge, 1.0])
    assert np.allclose(arm @ [*end, 1.0], end_target)
    across = np.array([10.0, 40.0]) / np.hypot(10.0, 40.0)  # perpendicular to the arm
    assert np.isclose(np.linalg.norm(arm[:, :2] @ across), np.linalg.norm(lens[:, :2] @ across))
    # a straight line stays straight under it: midpoints land on the segment
    mid = arm @ [*(0.5 * (hinge + end)), 1.0]
    assert np.allclose(mid, 0.5 * (lens @ [*hinge, 1.0] + end_target))


def test_frames_are_painted_out_and_drawn_back_as_a_layer(crop):
    """The portrait the warp samples has the frames painted out, and the frames as layers, drawn
    back unmoved, give the portrait again: nothing of a frame is left for the warp to stretch
    (where a rim stood out past the face, the stretch between the moving head and the still
    background drew a long ghost of it beside the rigid copy)."""
    glasses, _ = _with_glasses(crop)
    state = WarpEngine().prepare(glasses)
    parts, clean, pieces = state.rigid, state.image, state.worn
    line = (glasses.image != crop.image).any(-1) & (parts.weight > 0.5)  # the frame lines found
    dark = lambda a: float((a[line].mean(-1) < 60).mean())  # noqa: E731 - share of frame-dark pixels
    assert dark(glasses.image) > 0.9 and dark(clean) < 0.05 + dark(crop.image)
    assert len(pieces) == len(parts.pieces) and pieces[0] is not None
    back = clean.copy()
    rigid.draw(back, pieces, [np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])] * len(pieces))
    assert np.abs(back.astype(int) - glasses.image).max() <= 2


def test_a_faint_rim_past_the_face_over_a_dark_wall_is_part_of_the_frame(crop):
    """A far lens reaching past the face over a dark wall shows a rim a quarter as strong as over
    skin: it is followed from the rim found on the face (left out, it stayed in the still
    background while the rest of the frame moved), and the face's own outline is not taken."""
    lm = crop.landmarks
    inside = np.zeros(crop.image.shape[:2], np.uint8)
    cv2.fillPoly(inside, [np.round(lm[topology.mesh()["oval"], :2]).astype(np.int32)], 1)
    rng = np.random.default_rng(0)
    wall = np.clip(np.array([45, 38, 30]) + rng.normal(0, 2, crop.image.shape), 0, 255).astype(np.uint8)
    img = np.where(inside[..., None] > 0, crop.image, wall)
    rims = sorted((list(r) for r in _rims(lm)), key=lambda r: r[0][0])
    iod = np.linalg.norm(lm[263, :2] - lm[33, :2])
    rims[0][0] = rims[0][0] - [0.3 * iod, 0]  # the far lens reaches past the face
    lines = np.zeros(img.shape[:2], np.uint8)
    for a, b in rims:
        cv2.rectangle(lines, tuple(np.round(a).astype(int)), tuple(np.round(b).astype(int)), 1, 2)
    y = int(round(rims[0][0][1] + 0.3 * (rims[0][1][1] - rims[0][0][1])))
    cv2.line(lines, (int(round(rims[0][1][0])), y), (int(round(rims[1][0][0])), y), 1, 2)  # the bridge
    on = lines > 0
    img[on & (inside > 0)] = (25, 25, 30)
    img[on & (inside == 0)] = (78, 76, 80)  # grey on the dark wall
    parts = rigid.detect_frames(img, lm, background=inside == 0)
    assert parts is not None
    past = on & (cv2.dilate(inside, np.ones((7, 7), np.uint8)) == 0)
    assert past.sum() > 50 and parts.weight[past].mean() > 0.8
    outline = cv2.morphologyEx(inside, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    away = outline & (np.abs(np.arange(img.shape[0])[:, None] - (rims[0][0][1] + rims[0][1][1]) / 2) > 0.5 * iod)
    assert parts.weight[away].max() < 0.05


def test_a_rim_along_the_lid_crease_is_part_of_the_frame(crop):
    """A lens whose top rim runs just above the upper lid, through the band left out around the eye
    for its lashes, is followed from the rim found on either side: left in the portrait, that stretch
    bent with the lid under the rigid frame (a second, kinked rim line; a grey smear on a closing
    lid). The eye itself stays out."""
    lm = crop.landmarks
    img = crop.image.copy()
    iod = np.linalg.norm(lm[263, :2] - lm[33, :2])
    tops = []
    for loop in topology.mesh()["eye_loops"]:
        ids = np.asarray(loop, int)
        c = lm[ids, :2].mean(0)
        top = lm[ids, 1].min() - 0.06 * iod  # just above the lid: inside the lashes' band
        a, b = (c[0] - 0.27 * iod, top), (c[0] + 0.27 * iod, c[1] + 0.18 * iod)
        cv2.rectangle(img, tuple(np.round(a).astype(int)), tuple(np.round(b).astype(int)), (25, 25, 30), 2)
        tops.append((ids, a, b))
    parts = rigid.detect_frames(img, lm)
    assert parts is not None
    for ids, a, b in tops:
        y = int(round(a[1]))
        xs = np.arange(int(lm[ids, 0].min()), int(lm[ids, 0].max()) + 1)  # over the eye, between its corners
        assert parts.weight[y, xs].mean() > 0.6
        eye = np.zeros(img.shape[:2], np.uint8)
        cv2.fillPoly(eye, [np.round(cv2.convexHull(lm[ids, :2].astype(np.float32))).astype(np.int32)], 1)
        eye = cv2.erode(eye, np.ones((3, 3), np.uint8)) > 0
        assert parts.weight[eye].max() < 0.3  # the eye and its lashes are not painted out
