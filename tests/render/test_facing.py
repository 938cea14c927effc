"""Depth-aware face rendering: the side that turns away is hidden, the side that turns into view
borrows the near side's texture instead of stretching a foreshortened sliver."""

import dataclasses

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from avatar.config import FaceConfig
from avatar.face import topology
from avatar.face.crop import crop_box, crop_matrix, make_crop
from avatar.face.landmarks import detect_face
from avatar.render import facing
from avatar.render.triangles import dense_map, inverse_homogeneous, rasterise
from avatar.render.warp import WarpEngine


@pytest.fixture(scope="module")
def crop(portrait):
    face = detect_face(portrait)
    return make_crop(portrait, face.landmarks, crop_matrix(crop_box(face.landmarks, FaceConfig()), 256), 256)


def _turned(lm: np.ndarray, degrees: float) -> np.ndarray:
    c = lm[:468].mean(0)
    return (lm - c) @ Rotation.from_euler("y", degrees, degrees=True).as_matrix().T + c


def _paint(shape, points, triangles) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    for t in triangles:
        cv2.fillConvexPoly(mask, np.round(points[t, :2]).astype(np.int32), 1)
    return mask


def test_a_head_turn_hides_the_far_cheek_instead_of_folding_it(crop):
    """Turned 65°, the far cheek's triangles face away. On the front-facing surface the map is
    that surface's own; beyond it (where the folded cheek would stick out) no pixel takes its
    texture from the hidden cheek. Without culling, the folded triangles paint that fringe with
    the hidden cheek (about 15 % of its pixels)."""
    lm = crop.landmarks.astype(np.float64)
    tgt = _turned(lm, 65.0)
    tris = facing.face_triangles()
    front = facing.front_facing(tgt, tris, facing.reference_orientation())
    assert 100 < (~front).sum() < 0.5 * len(tris)
    engine = WarpEngine(map_scale=1.0, outer_smoothing=0.0)
    m = engine.backward_map(engine.prepare(crop), tgt.astype(np.float32))
    # the front surface alone, drawn far to near
    near = tris[front][np.argsort(-tgt[tris[front], 2].mean(1))]
    inv, det = inverse_homogeneous(tgt[near][..., :2])
    ok = np.abs(det) > 1e-6
    idx = rasterise(tgt[near[ok]][..., :2], m.shape[:2])
    mx, my = dense_map(idx, inv[ok] @ lm[near[ok]][..., :2])
    inner = cv2.erode((idx > 0).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    assert (np.hypot(m[..., 0] - mx, m[..., 1] - my)[inner] < 1.0).mean() > 0.98
    whole = rasterise(tgt[tris][..., :2], m.shape[:2]) > 0
    fringe = whole & ~cv2.dilate((idx > 0).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    hidden = cv2.erode(_paint(m.shape[:2], lm, tris[~front]), np.ones((3, 3), np.uint8)) > 0
    assert fringe.sum() > 100
    p = np.clip(np.round(m[fringe]).astype(int), 0, m.shape[0] - 1)
    assert hidden[p[:, 1], p[:, 0]].mean() < 0.03


def test_mirror_weights_pick_the_foreshortened_side_and_keep_parts_apart():
    """A source turned 55° foreshortens one side; a frontal target takes that side's texture from
    its mirror partners and leaves the near side its own. Partners are always the same part
    (cheek for cheek, lip for lip, eye for eye): no lip or eye texture lands on a cheek."""
    from avatar.motion.decompose import canonical_template

    frontal = canonical_template() * 100 + 200
    source = _turned(frontal, 55.0)
    tris = facing.face_triangles()
    w = facing.mirror_weights(source[:, :2], frontal[:, :2], tris, facing.reference_orientation())
    x = frontal[tris, 0].mean(1) - frontal[topology.NOSE_TIP, 0]
    lent = w > 0.5
    assert lent.sum() > 50
    assert abs(np.sign(x[lent]).mean()) > 0.7  # nearly all on one side of the nose (and the nose side facing away)
    from avatar.render.triangles import signed_areas

    shrink = np.abs(signed_areas(source, tris[lent])) / np.abs(signed_areas(frontal, tris[lent]))
    assert np.median(shrink) < 0.4  # the side the turn foreshortened in the source
    m = topology.mesh()
    part = np.zeros(478, int)
    part[m["lips"]] = 1
    part[m["eyes"]] = 2
    part[m["irises"]] = 2
    partner = facing.mirror_ids()
    assert (part[tris[lent]] == part[partner[tris[lent]]]).all()
    # a frontal source lends nothing
    assert facing.mirror_weights(frontal[:, :2], frontal[:, :2], tris, facing.reference_orientation()).max() == 0


def test_a_foreshortened_sliver_is_not_stretched_into_view(crop):
    """Source landmarks turned 55° (the far side a sliver) driven to frontal: the sliver's own
    pixels (painted green) would be blown up across the cheek; the mirrored side lends its
    texture instead, so almost no green shows."""
    lm = crop.landmarks.astype(np.float64)
    src_lm = _turned(lm, 55.0)
    tris = facing.face_triangles()
    w = facing.mirror_weights(src_lm[:, :2], lm[:, :2], tris, facing.reference_orientation())
    # paint what only the slivers cover (in a turned view the far side tucks in behind the near side)
    front = facing.front_facing(src_lm, tris, facing.reference_orientation())
    sliver = _paint(crop.image.shape[:2], src_lm, tris[w > 0.99]) & ~_paint(crop.image.shape[:2], src_lm, tris[(w == 0) & front])
    assert sliver.sum() > 50
    img = crop.image.copy()
    img[sliver > 0] = (0, 255, 0)
    source = dataclasses.replace(crop, image=img, landmarks=src_lm.astype(np.float32))
    engine = WarpEngine()
    out = engine.render_one(engine.prepare(source), lm.astype(np.float32)).astype(int)
    green = (out[..., 1] > 180) & (out[..., 0] < 90) & (out[..., 2] < 90)
    target_area = _paint(out.shape[:2], lm, tris[w > 0.99]).sum()
    assert target_area > 500
    assert green.sum() < 0.2 * target_area, (green.sum(), target_area)  # about 0.54 without the mirror


def _mirror_over(sliver: list[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A lending triangle with another, lending nothing, drawn over it as a band between the
    ``sliver``'s corners (a fold's thin triangles): (index map, mirror weight, band pixels)."""
    import types

    size = 64
    oval = set(topology.mesh()["oval"])
    ids = [i for i in range(478) if i not in oval][:6]
    tgt = np.zeros((478, 2))
    tgt[ids[:3]] = [(6, 6), (58, 8), (30, 58)]
    tgt[ids[3:]] = sliver
    rng = np.random.default_rng(0)
    state = types.SimpleNamespace(image=np.zeros((size, size, 3), np.uint8), vertices=rng.uniform(0, size, (478, 2)))
    tris = np.array([ids[:3], ids[3:]])
    inv, _ = inverse_homogeneous(tgt[tris])
    index = rasterise(tgt[tris], (size, size))
    _, weight, (x0, y0, x1, y1) = WarpEngine._mirror_map(state, index, tris, inv, 0, np.array([1.0, 0.0]), size)
    full = np.zeros((size, size), np.float32)
    full[y0:y1, x0:x1] = weight
    inside = cv2.erode((rasterise(tgt[tris[:1]], (size, size)) > 0).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    return index, full, (index == 2) & inside  # the band where the lending part lies on both sides of it


def test_a_folds_thin_triangles_over_a_lending_part_take_its_mirror():
    """A fold's sliver (triangles of another part, lending nothing, drawn over a part that lends
    its mirror partner's texture) cut a line through the mirrored texture: the sliver's own
    stretched pixels showed there as light specks along the far nose wing's rim. A gap of a map
    pixel or two takes the mirror's weight around it (0 there before); a wide part keeps its own."""
    index, weight, band = _mirror_over([(8, 30), (56, 30), (56, 31.6)])
    assert band.sum() > 20
    assert (index == 1).sum() > 500
    assert weight[band].min() > 0.9, weight[band].min()
    index, weight, band = _mirror_over([(8, 26), (56, 26), (8, 34)])  # a part 8 px thick
    assert band.sum() > 100
    assert weight[cv2.erode(band.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0].max() == 0.0


def _lent_edge(scale: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One lending triangle whose left edge runs diagonally, on a map of half the crop's
    resolution, lending from a partner 3× its size: (full-res mirror x, y, weight, signed distance
    in crop px of every pixel to that edge, positive inside, NaN beside the triangle's corners),
    all over the crop."""
    import types

    small, size = 64, 64 * scale
    oval = set(topology.mesh()["oval"])
    perm = facing.mirror_ids()
    ids = [i for i in range(478) if i not in oval and perm[i] != i][:3]
    tgt = np.zeros((478, 2))
    tgt[ids] = [(10, 4), (60, 8), (40, 60)]  # the edge from (10, 4) to (40, 60)
    vertices = np.zeros((478, 2))
    for i in ids:  # the partner's texture: the triangle 3× larger, shifted
        vertices[perm[i]] = 3.0 * tgt[i] + (5.0, 7.0)
    state = types.SimpleNamespace(image=np.zeros((size, size, 3), np.uint8), vertices=vertices)
    tris = np.array([ids])
    inv, _ = inverse_homogeneous(tgt[tris])
    index = rasterise(tgt[tris], (small, small))
    mirror, weight, (x0, y0, x1, y1) = WarpEngine._mirror_map(state, index, tris, inv, 0, np.array([1.0]), small)
    mx, my, w = (np.full((size, size), np.nan, np.float32) for _ in range(3))
    mx[y0:y1, x0:x1], my[y0:y1, x0:x1], w[y0:y1, x0:x1] = mirror[..., 0], mirror[..., 1], weight
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    a, b = np.array([10.0, 4.0]) * scale, np.array([40.0, 60.0]) * scale  # the edge in crop px
    normal = np.array([b[1] - a[1], a[0] - b[0]]) / np.hypot(*(b - a))  # points into the triangle
    dist = (xx - a[0]) * normal[0] + (yy - a[1]) * normal[1]
    along = ((xx - a[0]) * (b - a)[0] + (yy - a[1]) * (b - a)[1]) / float(np.sum((b - a) ** 2))
    return mx, my, w, np.where((along > 0.2) & (along < 0.8), dist, np.nan)  # away from the corners


def test_the_lent_texture_meets_the_faces_outline_without_a_sawtooth():
    """Where the far cheek takes its mirror side's texture up to the face's outline, the outline
    runs at an angle across the map's pixel grid. The lent coordinates continue the lending
    triangle's mapping past it (repeated as the nearest pixel's, they drew the near side's outline
    again in steps: a sawtooth of pale teeth on portrait_05's far cheek), and the weight fades
    across it evenly all along (it was cut along the grid, a staircase)."""
    mx, my, w, dist = _lent_edge()
    boxed = cv2.erode(np.isfinite(mx).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0  # off the box's own edge
    band = (dist > -3) & (dist < 6) & boxed
    # the lending triangle's own mapping, fitted inside, holds across the outline
    inner = (dist > 8) & boxed
    design = lambda m: np.column_stack([np.nonzero(m)[1], np.nonzero(m)[0], np.ones(m.sum())])  # noqa: E731
    for field in (mx, my):
        coef, *_ = np.linalg.lstsq(design(inner), field[inner], rcond=None)
        assert np.abs(design(band) @ coef - field[band]).max() < 0.05
    # at each distance from the outline the weight is (nearly) the same all along it
    for d in (-0.5, 0.5, 1.5):
        ring = (np.abs(dist - d) < 0.25) & boxed
        assert ring.sum() > 20
        assert np.ptp(w[ring]) < 0.25, (d, np.ptp(w[ring]))
