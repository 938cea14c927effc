import cv2
import numpy as np
import pytest

from avatar.face import topology
from avatar.face.crop import crop_box, crop_matrix, make_crop
from avatar.face.landmarks import detect_face
from avatar.config import FaceConfig, RenderConfig
from avatar.render.registry import create_engine, list_engines
from avatar.render.warp import WarpEngine
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
    out = np.stack(engine.render(state, [DriveTarget(crop.landmarks)]))
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


def test_wide_open_mouth_shows_a_tongue_below_a_dark_cavity(engine, crop):
    state = engine.prepare(crop)
    lm = crop.landmarks.copy()
    loop = topology.mesh()["mouth_loop"]
    lower = [i for i in loop if lm[i, 1] > lm[topology.UPPER_LIP_INNER, 1] + 0.5] + [14]
    jaw = np.where(lm[:, 1] > lm[14, 1])[0]
    lm[np.union1d(lower, jaw), 1] += 30
    out = engine.render_one(state, lm).astype(float)
    top, bottom = lm[13, :2], lm[14, :2]

    def at(t):
        x, y = (top + t * (bottom - top)).round().astype(int)
        return out[y - 1:y + 2, x - 1:x + 2].reshape(-1, 3).mean(0)

    # below the upper teeth the throat shows dark; the tongue fills the opening's lower 0.7
    deep, tongue = at(0.27), at(0.6)
    lips = crop.landmarks[topology.mesh()["lips"], :2].round().astype(int)
    lip_rgb = crop.image[lips[:, 1], lips[:, 0]].astype(float).mean(0)
    assert tongue.mean() > deep.mean() + 15    # the tongue is lit, the throat is dark
    assert tongue.mean() > 0.6 * lip_rgb.mean()  # about as bright as the lips, not a black hole
    assert tongue[0] > tongue[2] + 10         # and pink, taken from the lips' colour
    assert deep.mean() < crop.image[int(top[1]) - 4, int(top[0])].mean()  # darker than the upper lip


def test_the_mouth_hole_continues_the_lips_so_the_drawn_edge_has_no_seam(engine, crop):
    """Under the drawn mouth, the hole's map continues the lips' mapping (its anti-aliased edge
    blends into lip), instead of sampling whatever lies there in the source (chin, a closed lip
    line), which shows as a dashed seam along the inner lip."""
    state = engine.prepare(crop)
    lm = crop.landmarks.copy()
    loop = topology.mesh()["mouth_loop"]
    lower = [i for i in loop if lm[i, 1] > lm[topology.UPPER_LIP_INNER, 1] + 0.5] + [14]
    jaw = np.where(lm[:, 1] > lm[14, 1])[0]
    lm[np.union1d(lower, jaw), 1] += 30
    m = engine.backward_map(state, lm)
    hole = np.zeros(crop.image.shape[:2], np.uint8)
    cv2.fillPoly(hole, [lm[loop, :2].round().astype(np.int32)], 1)
    hole = cv2.erode(hole, np.ones((5, 5), np.uint8)) > 0
    lips = np.zeros_like(hole, dtype=np.uint8)
    cv2.fillPoly(lips, [cv2.convexHull(crop.landmarks[topology.mesh()["lips"], :2].astype(np.float32)).round().astype(np.int32)], 1)
    lips = cv2.dilate(lips, np.ones((7, 7), np.uint8)) > 0
    src = np.clip(np.round(m[hole]).astype(int), 0, crop.image.shape[0] - 1)
    assert hole.sum() > 200
    assert lips[src[:, 1], src[:, 0]].mean() > 0.95


def test_synthetic_teeth_are_lit_like_the_face_not_like_the_room(engine, crop):
    """A dimly lit face before a bright wall: the teeth follow the face's light (about 1.15 of
    the cheeks' luminance), not the picture's overall brightness."""
    import dataclasses

    face = np.zeros(crop.image.shape[:2], np.uint8)
    cv2.fillPoly(face, [crop.landmarks[topology.mesh()["oval"], :2].round().astype(np.int32)], 1)
    img = crop.image.astype(np.float32)
    img[face > 0] *= 0.35
    img[face == 0] = 235
    dim = dataclasses.replace(crop, image=img.astype(np.uint8))
    state = engine.prepare(dim)
    cheeks = dim.landmarks[list(topology.CHEEKS), :2].round().astype(int)
    cheek_lum = dim.image[cheeks[:, 1], cheeks[:, 0]].astype(float).mean(0) @ [0.299, 0.587, 0.114]
    teeth_lum = state.teeth_rgb @ np.array([0.299, 0.587, 0.114])
    assert 1.0 * cheek_lum < teeth_lum < 1.3 * cheek_lum


def test_synthetic_teeth_take_the_colour_of_the_light_from_the_eye_whites(crop):
    """Under a warm cast (an amber lamp, an old varnish) the eye whites are amber too, and so
    are the teeth; with the eyes hidden (sunglasses) the teeth stay off-white."""
    from avatar.render import mouth

    img = crop.image.astype(np.float32)
    warm = np.clip(img * np.array([1.15, 1.0, 0.6], np.float32), 0, 255).astype(np.uint8)
    _, _, neutral = mouth.colours(crop.image, crop.landmarks)
    _, _, amber = mouth.colours(warm, crop.landmarks)
    assert amber[2] / amber[0] < 0.8 * neutral[2] / neutral[0]
    hidden = crop.image.copy()
    for loop in topology.mesh()["eye_loops"]:
        cv2.fillPoly(hidden, [crop.landmarks[list(loop), :2].round().astype(np.int32)], (20, 20, 20))
    _, _, shaded = mouth.colours(hidden, crop.landmarks)
    assert np.allclose(shaded / shaded[0], mouth._TOOTH_TINT / mouth._TOOTH_TINT[0], atol=1e-3)


def test_synthetic_teeth_on_dark_skin_are_as_bright_as_the_eye_whites_say(crop):
    """Skin's own colour is no measure of the light: on a darker-skinned face in the same light
    (the eye whites unchanged) the teeth stay about as bright as on the lighter one, well above
    the cheeks; with the eye whites hidden the cheeks' figure is all there is."""
    from avatar.render import mouth

    luma = np.array([0.299, 0.587, 0.114])
    eyes = np.zeros(crop.image.shape[:2], np.uint8)
    for loop in topology.mesh()["eye_loops"]:
        cv2.fillPoly(eyes, [crop.landmarks[list(loop), :2].round().astype(np.int32)], 1)
    eyes = cv2.dilate(eyes, np.ones((3, 3), np.uint8))
    dark = crop.image.astype(np.float32)
    dark[eyes == 0] *= 0.45
    dark = dark.astype(np.uint8)
    cheeks = crop.landmarks[list(topology.CHEEKS), :2].round().astype(int)
    cheek_lum = dark[cheeks[:, 1], cheeks[:, 0]].astype(float).mean(0) @ luma
    _, _, light_teeth = mouth.colours(crop.image, crop.landmarks)
    _, _, dark_teeth = mouth.colours(dark, crop.landmarks)
    assert dark_teeth @ luma > 1.5 * cheek_lum
    assert dark_teeth @ luma > 0.8 * (light_teeth @ luma)
    hidden = dark.copy()
    hidden[eyes > 0] = 20
    _, _, unknown = mouth.colours(hidden, crop.landmarks)
    assert unknown @ luma == pytest.approx(mouth.TEETH_OVER_CHEEKS * cheek_lum, rel=0.05)


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


def _lids_lowered(lm: np.ndarray, share: float) -> np.ndarray:
    """``lm`` with each upper lid lowered so the eye's gap is ``share`` of its own, and its iris
    points lowered to the middle of what stays open (as a tracker reads a half-closed eye)."""
    out = lm.copy()
    for loop, iris in zip(topology.mesh()["eye_loops"], (range(468, 473), range(473, 478))):
        loop = np.asarray(loop, int)
        upper, lower = loop[1:10], np.r_[loop[9:], loop[:2]]  # corner to corner over each lid
        order = np.argsort(lm[lower, 0])
        floor = np.interp(lm[upper, 0], lm[lower[order], 0], lm[lower[order], 1])
        out[upper, 1] = floor - share * (floor - lm[upper, 1])
        drop = 0.5 * (1.0 - share) * (floor - lm[upper, 1]).max()
        out[list(iris), 1] += drop
    return out


def test_a_narrowing_eye_is_cut_by_its_lid_not_squeezed(engine, crop, monkeypatch):
    # half closed, the eye between the lids is the portrait's eyeball where it was (the lid slides
    # over it): the lowest rows it shows are the portrait's own pixels; squeezed, they were not
    state = engine.prepare(crop)
    target = _lids_lowered(crop.landmarks, 0.5)
    inside = np.zeros(crop.image.shape[:2], np.uint8)
    for loop in topology.mesh()["eye_loops"]:
        cv2.fillPoly(inside, [np.round(target[np.asarray(loop, int), :2]).astype(np.int32)], 1)
    inside = cv2.erode(inside, np.ones((3, 3), np.uint8)) > 0
    low = np.zeros_like(inside)
    for x in np.flatnonzero(inside.any(0)):
        rows = np.flatnonzero(inside[:, x])
        low[rows[len(rows) // 2:], x] = True  # the lower half of what each column shows
    assert low.sum() >= 20

    def diff(out):
        return np.abs(out.astype(float) - crop.image.astype(float))[low].mean()

    from avatar.render import eyelids

    shaded = engine.render_one(state, target).astype(float)
    monkeypatch.setattr(eyelids, "SHADOW", 0.0)  # the shade under the lowered lid, apart
    unshaded = engine.render_one(state, target)
    cut = diff(unshaded)
    monkeypatch.setattr(eyelids, "draw", lambda *a, **k: None)
    squeezed = diff(engine.render_one(state, target))
    assert cut < 6.0 and squeezed > 3 * cut, (cut, squeezed)
    # the lowered lid shades what it leaves in view, never brightens it
    assert (shaded[low] <= unshaded[low] + 1).all() and shaded[low].mean() < unshaded[low].mean() - 1


def test_a_shut_lid_is_skin_with_a_lash_line_not_stretched_lashes(engine, crop, monkeypatch):
    """A portrait with heavy dark lashes shuts its eyes: the unfolded lid between the lash line and
    the crease is the portrait's skin from above the crease, not the lashes drawn out 2x; the lash
    line at the lid margin stays."""
    import dataclasses

    from avatar.render import eyelids

    img = crop.image.copy()
    for loop in topology.mesh()["eye_loops"]:
        upper = crop.landmarks[np.asarray(loop, int)[1:10], :2]
        cv2.polylines(img, [upper.round().astype(np.int32)], False, (15, 15, 15), 4)  # mascara'd lashes
    state = engine.prepare(dataclasses.replace(crop, image=img))
    target = _lids_lowered(crop.landmarks, 0.0)
    shut = engine.render_one(state, target).astype(float).mean(2)
    monkeypatch.setattr(eyelids, "lid_skin", lambda *a, **k: None)
    stretched = engine.render_one(state, target).astype(float).mean(2)
    skin = crop.image.astype(float).mean(2)
    for k, loop in enumerate(topology.mesh()["eye_loops"]):
        upper = target[np.asarray(loop, int)[1:10], :2]
        crease = target[list(eyelids.CREASE[k]), :2]
        strip = np.zeros(shut.shape, np.uint8)
        cv2.fillPoly(strip, [np.concatenate([upper, crease[::-1]]).round().astype(np.int32)], 1)
        margin = np.zeros(shut.shape, np.uint8)
        cv2.polylines(margin, [upper.round().astype(np.int32)], False, 1, 3)
        inner = (cv2.erode(strip, np.ones((3, 3), np.uint8)) > 0) & (margin == 0)
        x0, x1 = np.percentile(upper[:, 0], [30, 70])  # the middle of the eye, away from the corners
        inner[:, : int(x0)] = False
        inner[:, int(x1):] = False
        assert inner.sum() >= 8
        above = crop.landmarks[list(eyelids.ABOVE_CREASE[k]), :2].round().astype(int)
        lid_skin = skin[above[:, 1], above[:, 0]].mean()
        dark = lambda im: (im[inner] < 60).mean()  # noqa: E731
        assert dark(stretched) > 0.3 and dark(shut) < 0.1 * dark(stretched), (dark(stretched), dark(shut))
        assert abs(shut[inner].mean() - lid_skin) < 35, (shut[inner].mean(), lid_skin)
        # the lash line stays at the lid margin
        assert shut[margin > 0].mean() < shut[inner].mean() - 30


def test_a_shut_lid_under_a_painted_out_rim_takes_the_skin_below_the_eye(crop):
    """Where glasses were painted out along the crease (an inpainting's smear, here a flat blue-grey),
    the unfolded lid takes the skin below the lower lid instead of that smear."""
    from avatar.render import eyelids

    img = crop.image.copy()
    painted = np.zeros(img.shape[:2], np.float32)
    for k in range(2):
        crease = crop.landmarks[list(eyelids.CREASE[k]), :2]
        top = crease + 2.6 * (crop.landmarks[list(eyelids.ABOVE_CREASE[k]), :2] - crease)
        poly = np.concatenate([crease, top[::-1]]).round().astype(np.int32)
        cv2.fillPoly(img, [poly], (90, 150, 190))
        cv2.fillPoly(painted, [poly], 1.0)
    painted = cv2.dilate(painted, np.ones((5, 5), np.uint8))
    target = _lids_lowered(crop.landmarks, 0.0)
    base = img.copy()
    smeared, clean = base.copy(), base.copy()
    eyelids.lid_skin(smeared, img, crop.landmarks, target)
    eyelids.lid_skin(clean, img, crop.landmarks, target, painted=painted)
    changed = np.abs(smeared.astype(int) - base).max(2) > 20
    assert changed.sum() > 20
    blue = lambda im: (im[..., 2].astype(float) - im[..., 0])[changed].mean()  # noqa: E731
    # the smear is blue (blue - red +100), skin is warm (red above blue)
    assert blue(smeared) > 40 and blue(clean) < 0, (blue(smeared), blue(clean))


def test_person_mask_covers_the_head_not_the_background(crop):
    from avatar.face.segment import person_mask

    mask = person_mask(crop.image)
    assert mask is not None and mask.shape == crop.image.shape[:2] and mask.dtype == np.float32
    oval = np.zeros(mask.shape, np.uint8)
    cv2.fillPoly(oval, [crop.landmarks[topology.mesh()["oval"], :2].round().astype(np.int32)], 1)
    assert mask[oval > 0].mean() > 0.9
    assert mask[:12, :12].mean() < 0.2  # the astronaut's backdrop, top left


def _ring_motion(engine, crop, dx):
    state = engine.prepare(crop)
    target = crop.landmarks.copy()
    target[:, 0] += dx
    n = len(crop.landmarks)
    moved = engine.target_vertices(state, target)[n:] - state.vertices[n:]
    rings = state.ring_gaps.shape
    return state, target, moved[: rings[0] * rings[1]].reshape(*rings, 2), state.vertices[n:][: rings[0] * rings[1]].reshape(*rings, 2)


def test_hair_moves_with_the_head_and_the_background_stays(crop):
    """With the person mask, the ring just inside the hair follows the head fully; the outermost
    ring, in the background, stays; fixed rings (no mask) drag the hair only partly."""
    top = lambda pts: pts[:, 1] < crop.landmarks[10, 1]  # directions above the forehead  # noqa: E731
    plain = RenderConfig(layers=False)  # one warp of the whole crop: the background moves with the rings
    _, _, moved, where = _ring_motion(WarpEngine(plain, follow_silhouette=True), crop, 12.0)
    assert np.allclose(moved[0][top(where[0])][:, 0], 12.0, atol=0.6)
    assert np.abs(moved[2][top(where[2])]).max() < 1.0
    _, _, fixed, where_f = _ring_motion(WarpEngine(plain, follow_silhouette=False), crop, 12.0)
    assert fixed[0][top(where_f[0])][:, 0].max() < 10.5


def test_shoulders_and_collar_stay_while_the_head_moves(crop):
    """Below the chin the body stays: a collar a tenth of the face's height or more under the
    chin moves at most a tenth as far as the head (the neck above it takes the stretch; the
    earlier rings dragged it 30-40 %); the jaw moves fully."""
    engine = WarpEngine()
    state, target, moved, where = _ring_motion(engine, crop, 20.0)
    lm = crop.landmarks
    height = lm[topology.CHIN, 1] - lm[10, 1]
    collar = where[..., 1] > lm[topology.CHIN, 1] + 0.1 * height
    assert collar.sum() >= 5
    assert np.abs(moved[collar][:, 0]).max() <= 2.0, moved[collar][:, 0]
    m = engine.backward_map(state, target)
    jaw = lm[topology.CHIN, :2] + (20.0, 0.0)
    assert abs(m[int(jaw[1]) - 2, int(jaw[0]), 0] - (jaw[0] - 20.0)) < 2.0


def test_the_neck_beside_the_jaw_lags_and_the_ears_move(crop):
    """Beside the jaw, between the mouth's level and the chin, lie the neck's outline and the
    background next to it: they lag behind the head (moved with it, the neck's edge swung with
    the face and carried the background beside it). At the ears' level, between the eyes and the
    nose tip, the ring inside the hair still moves with the head."""
    engine = WarpEngine()
    state, target, moved, where = _ring_motion(engine, crop, 20.0)
    lm = crop.landmarks
    mouth_y, chin_y = lm[list(topology.MOUTH_CORNERS), 1].mean(), lm[topology.CHIN, 1]
    side = (where[..., 1] > mouth_y) & (where[..., 1] < chin_y)
    assert side.sum() >= 4
    # on average (some are pushed ahead of the jaw, so that they never fold into it): 12 px of the
    # head's 20, against 15 when the fall began just above the chin
    assert np.abs(moved[side][:, 0]).mean() < 13.5, moved[side][:, 0]
    ears = (where[0][:, 1] > lm[list(topology.EYE_OUTER), 1].mean()) & (where[0][:, 1] < lm[topology.NOSE_TIP, 1])
    assert ears.sum() >= 2
    assert moved[0][ears][:, 0].min() > 18.0, moved[0][ears][:, 0]


def test_a_large_movement_does_not_fold_the_background(crop):
    engine = WarpEngine()
    state, target, moved, where = _ring_motion(engine, crop, 80.0)
    tgt = engine.target_vertices(state, target)
    # rings keep their order outwards from the face in every direction
    centre = target[topology.mesh()["oval"], :2].mean(0)
    pts = where + moved
    u = pts[0] - centre
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    rho = ((pts - centre) * u).sum(-1)
    assert (np.diff(rho, axis=0) > 0).all()
    tri = state.outer_triangles

    def areas(v):
        a, b, c = v[tri[:, 0]], v[tri[:, 1]], v[tri[:, 2]]
        return (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])

    # 80 px on a 256 crop is more than the face's radius: a few triangles between the jaw and the
    # rings below it shear over (5 of 207 with the rings alone, 7 of 219 with the thin triangles
    # of the skin band beyond the oval, avatar.render.outline)
    assert (np.sign(areas(tgt)) != np.sign(areas(state.vertices))).sum() <= 0.035 * len(tri)


def test_motion_around_the_face_is_smooth(crop):
    """Sparse rings make a piecewise-linear motion whose kinks shear straight background edges
    into a sawtooth; the smoothed field has far smaller second differences away from the face."""
    state = WarpEngine().prepare(crop)
    target = crop.landmarks.copy()
    target[:, :2] += (40.0, 25.0)

    def roughness(engine):
        m = engine.backward_map(state, target)
        lap = np.abs(cv2.Laplacian(np.ascontiguousarray(m[..., 0]), cv2.CV_32F)) + np.abs(cv2.Laplacian(np.ascontiguousarray(m[..., 1]), cv2.CV_32F))
        far = np.ones(m.shape[:2], bool)
        box = np.concatenate([crop.landmarks[:, :2], target[:, :2]])
        x0, y0 = (box.min(0) - 30).astype(int).clip(0)
        x1, y1 = (box.max(0) + 30).astype(int)
        far[y0:y1, x0:x1] = False  # away from the face and its moving outline
        return lap[far].max()

    smooth = roughness(WarpEngine())
    rough = roughness(WarpEngine(outer_smoothing=0.0))
    assert smooth * 3 < rough, (smooth, rough)


def test_a_mask_that_misses_the_face_falls_back_to_fixed_rings(crop, monkeypatch):
    from avatar.render import warp

    fixed = WarpEngine(RenderConfig(layers=False), follow_silhouette=False).prepare(crop)
    monkeypatch.setattr(warp, "person_mask", lambda image: np.zeros(image.shape[:2], np.float32))
    missed = WarpEngine().prepare(crop)
    assert np.array_equal(missed.vertices, fixed.vertices) and np.array_equal(missed.ring_weights, fixed.ring_weights)
    monkeypatch.setattr(warp, "person_mask", lambda image: None)  # model unavailable
    assert np.array_equal(WarpEngine().prepare(crop).vertices, fixed.vertices)


def test_lips_all_but_closed_draw_no_dark_line(engine, crop):
    """A target whose inner lips are a pixel apart (a driver pressing its lips, a speech target
    near closure) showed the drawn interior squeezed into a crisp black line with pointed ends;
    it fades out below a 2.5 px gap (at 512), and a real opening is still drawn."""
    state = engine.prepare(crop)
    lm = crop.landmarks.copy()
    loop = topology.mesh()["mouth_loop"]
    lower = [i for i in loop if lm[i, 1] > lm[topology.UPPER_LIP_INNER, 1] + 0.5] + [14]
    scale = crop.size / 512.0

    def mean_gap(points: np.ndarray) -> float:  # inner-lip area over width, as the fade measures it
        from avatar.render.triangles import polygon_area

        inner = points[loop, :2]
        return polygon_area(inner) / float(np.ptp(inner[:, 0]))

    def drawn(gap_px: float) -> float:
        target = lm.copy()
        for _ in range(3):  # moving the lower lip by d widens the mean gap by about d
            target[lower, 1] += gap_px * scale - mean_gap(target)
        out = crop.image.copy()
        engine._draw_mouth(state, target, out)
        return float(np.abs(out.astype(float) - crop.image).sum())

    assert drawn(0.4) == 0.0  # all but closed: the lips meet on their own texture
    assert 0.0 < drawn(1.5) < drawn(6.0)  # fading in, then drawn


def test_lips_closed_over_an_open_mouth_meet_without_its_teeth_between_them(crop):
    """The portrait's mouth is open (teeth); the target closes it to a sliver on a tilted head.
    Along the lips' meeting line the map takes one lip or the other, exactly: the half-resolution
    map blended across the jump there, sampled the portrait's own teeth between the lips (bright
    specks along the line) and drew the line as 2 px stair-steps."""
    engine = WarpEngine(rigid_parts=False)
    state = engine.prepare(crop)
    lm = crop.landmarks.astype(np.float64)
    loop = topology.mesh()["mouth_loop"]
    lower = [i for i in loop if lm[i, 1] > lm[topology.UPPER_LIP_INNER, 1] + 0.5] + [14]
    jaw = np.where(lm[:, 1] > lm[14, 1])[0]
    own = np.zeros(crop.image.shape[:2], np.uint8)
    cv2.fillPoly(own, [np.round(lm[loop, :2]).astype(np.int32)], 1)
    own = cv2.erode(own, np.ones((3, 3), np.uint8)) > 0
    assert own.sum() > 100  # the bundled portrait's own open mouth
    gap = lm[14, 1] - lm[topology.UPPER_LIP_INNER, 1]
    centre = lm[:, :2].mean(0)
    for degrees in (0.0, 5.0, 10.0):
        target = lm.copy()
        target[np.union1d(lower, jaw), 1] -= 0.95 * gap
        a = np.radians(degrees)
        rot = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
        target[:, :2] = (target[:, :2] - centre) @ rot + centre
        m = engine.backward_map(state, target.astype(np.float32))
        line = np.zeros(own.shape, np.uint8)
        cv2.polylines(line, [np.round(target[loop, :2]).astype(np.int32)], True, 1)
        line = cv2.dilate(line, np.ones((3, 3), np.uint8)) > 0
        src = np.clip(np.round(m[line]).astype(int), 0, own.shape[0] - 1)
        assert own[src[:, 1], src[:, 0]].sum() < 15, degrees  # 27–33 of about 240 before


def test_a_squeezed_fine_texture_is_filtered_not_aliased(crop):
    """Fine lines (lashes, lip lines, grain at their finest: 1 px dark lines every 2 px) on a face
    squeezed to a third of its height: a bilinear sample skips two rows in three and the lines
    alias into coarse bands that crawl from frame to frame; sampled from the prefiltered portrait
    where the map squeezes, the face shows their average instead."""
    import dataclasses

    lm = crop.landmarks.astype(np.float64)
    oval = topology.mesh()["oval"]
    img = crop.image.copy()
    face = np.zeros(img.shape[:2], np.uint8)
    cv2.fillPoly(face, [np.round(lm[oval, :2]).astype(np.int32)], 1)
    lines = (np.arange(img.shape[0]) % 2 == 0)[:, None] & (face > 0)
    img[lines] = (img[lines] * 0.3).astype(np.uint8)
    engine = WarpEngine(rigid_parts=False)
    state = engine.prepare(dataclasses.replace(crop, image=img))
    target = lm.copy()
    target[:, 1] = lm[1, 1] + (lm[:, 1] - lm[1, 1]) / 3.0
    lum = engine.render_one(state, target.astype(np.float32)).astype(np.float32).mean(-1)
    inside = np.zeros(lum.shape, np.uint8)
    cv2.fillPoly(inside, [np.round(target[oval, :2]).astype(np.int32)], 1)
    inside = cv2.erode(inside, np.ones((7, 7), np.uint8))[1:-1] > 0
    bands = np.abs(lum[2:] - 2 * lum[1:-1] + lum[:-2])[inside]  # row-to-row zigzag
    assert bands.mean() < 60.0  # about 200 aliased, 22 filtered


def test_hair_that_crosses_the_crops_edge_is_held_there_both_ways(crop):
    """Near a crop edge inside the photo the rings' motion fades (the paste-back would show hair
    cut there); a move away from the edge is given back only where background lies between the
    person and the edge: hair that crosses it, moved down, would leave a gap at the seam."""
    from avatar.render.warp import _LAYERED_WEIGHTS, _ring_points

    lm = crop.landmarks.astype(np.float64)
    top = int(lm[:, 1].min())
    ring = slice(0, 3 * 24)  # the three rings, before the outer frame
    released = {}
    for name, start in (("apart", top // 2), ("crossing", 0)):
        mask = np.zeros((256, 256), np.float32)
        cv2.ellipse(mask, (int(lm[:, 0].mean()), int(lm[:, 1].mean())), (90, 200), 0, 0, 360, 1.0, -1)
        mask[:start] = 0.0
        mask[start:top, 80:176] = 1.0
        pts, weights, _, release = _ring_points(lm, 256, mask, _LAYERED_WEIGHTS, (0, 0, 256, 256))
        above = (pts[ring, 1] < top) & (pts[ring, 1] < 0.15 * 256)  # points the top edge's fade reaches
        assert above.any() and (weights[ring][above] < 1.0).all()
        released[name] = release[ring][above]
    assert (released["apart"][:, 1] > 0.05).any() and (released["apart"][:, 0] == 0).all()  # inward: down
    assert (released["crossing"] == 0).all()


def test_a_far_eye_beyond_the_oval_shows_once_when_the_face_turns_back(crop):
    """On a turned face mediapipe's oval can cut through the far eye (portrait_05's lens and eye
    corner lie outside it). Those pixels are the face's: when the face turns back they move with
    the eye, and no copy of them is left behind with the hair (a third eye, a torn cheek)."""
    oval = topology.mesh()["oval"]
    left = oval[crop.landmarks[oval, 0] < crop.landmarks[topology.NOSE_TIP, 0]]
    turned = crop.landmarks.copy()
    corner = turned[topology.EYE_OUTER[0], :2]
    # the photo's oval on the far side runs 6 px inside the eye's outer corner
    at_eye = left[np.argmin(np.abs(turned[left, 1] - corner[1]))]
    turned[left, 0] += corner[0] - turned[at_eye, 0] + 6.0
    poly = turned[oval, :2].astype(np.float32).reshape(-1, 1, 2)
    assert cv2.pointPolygonTest(poly, (float(corner[0]), float(corner[1])), False) < 0
    image = crop.image.copy()
    cv2.circle(image, tuple(np.round(corner).astype(int)), 4, (255, 0, 255), -1)
    engine = WarpEngine(RenderConfig(shading=False, detail=False))
    source = type(crop)(image, turned, crop.crop_from_frame, crop.frame_size)
    state = engine.prepare(source)
    out = engine.render_one(state, crop.landmarks)  # the oval back on the true outline
    magenta = (out[..., 0] > 180) & (out[..., 1] < 90) & (out[..., 2] > 180)
    n, labels, stats, centres = cv2.connectedComponentsWithStats(magenta.astype(np.uint8))
    blobs = [c for c, s in zip(centres[1:], stats[1:]) if s[cv2.CC_STAT_AREA] >= 6]
    assert len(blobs) == 1, blobs
    assert np.linalg.norm(blobs[0] - corner) < 4


def test_the_stretch_beside_the_head_lands_beyond_the_matte_not_inside_wispy_hair(crop):
    """With layers the rings that take the stretch must stand where the person layer's matte is
    0: there only the still plate shows. The segmentation's edge can lie far inside wispy hair (a
    dip between curls); rings placed from it alone stood in the hair, which then smeared into
    streaks on a big move (portrait_02 × driving_01)."""
    from avatar.render.warp import _LAYERED_WEIGHTS, _ring_points

    lm = crop.landmarks.astype(np.float64)
    oval = lm[topology.mesh()["oval"], :2]
    cx, cy = oval.mean(0)
    mask = np.zeros((256, 256), np.float32)
    cv2.ellipse(mask, (int(cx), int(cy)), (80, 110), 0, 0, 360, 1.0, -1)
    matte = cv2.GaussianBlur(mask, (0, 0), 2.0)
    # wisps: a faint fringe 24 px wide round the head, and a dip in the segmentation to the left
    fringe = cv2.dilate(mask, np.ones((49, 49), np.uint8)) > 0
    matte = np.where(fringe & (matte < 0.3), 0.3, matte).astype(np.float32)
    mask[int(cy) - 12:int(cy) + 13, :int(cx) - 60] = 0.0
    left = 12  # the ring points' direction straight to the left (angle pi of 24)
    ray = lambda p: [matte[int(round(cy)), int(round(x))] for x in np.linspace(p[0], 0, 40)]  # noqa: E731
    plain, *_ = _ring_points(lm, 256, mask, _LAYERED_WEIGHTS, (0, 0, 256, 256))
    matted, *_ = _ring_points(lm, 256, mask, _LAYERED_WEIGHTS, (0, 0, 256, 256), matte)
    assert max(ray(plain[24 + left])) > 0.2      # without the matte: the stretch starts in the wisps
    assert max(ray(matted[24 + left])) == 0.0    # with it: beyond them, on the plate only
    assert matted[left, 0] == plain[left, 0]     # the inner ring still hugs the segmentation


def _turned_beside_the_cheek(crop):
    """The astronaut's landmarks, turned 15° about the vertical (her face to image left), an engine
    and its state, the inner ring point straight right of the face (index among the extra points)
    and the oval point nearest its direction."""
    from scipy.spatial.transform import Rotation

    lm = crop.landmarks.astype(np.float64)
    c = lm[:468].mean(0)
    turned = (lm - c) @ Rotation.from_euler("y", 15.0, degrees=True).as_matrix().T + c
    engine = WarpEngine()
    state = engine.prepare(crop)
    k = 0
    ring = state.vertices[len(lm) + k]
    oval = topology.mesh()["oval"]
    centre = lm[oval, :2].mean(0)
    nearest = oval[np.argmax(((lm[oval, :2] - centre) @ (ring - centre)) / np.linalg.norm(lm[oval, :2] - centre, axis=1))]
    return lm, turned, engine, state, k, nearest


def test_a_turn_swings_the_heads_outline_beside_the_face_further_back_than_the_cheek(crop):
    """Beside the face the head's outline (hair over the ears) lies behind the face's outline, so
    a turn swings it further against the nose's motion than the cheek's outline goes (on real
    turning heads it barely moves while the cheeks follow the nose). With the ring points at the
    face outline's depth there, they moved with the cheek (within 1 px at 15°). Looked at on the
    side where that swing takes the outline away from the face (on the other the rings keep
    their distance from the face's outline), where the hair has room: the right side as the
    astronaut's face turns to image left."""
    lm, turned, engine, state, k, nearest = _turned_beside_the_cheek(crop)
    n = len(lm)
    moved = engine.target_vertices(state, turned.astype(np.float32))[n:] - state.vertices[n:]
    nose = np.sign(turned[topology.NOSE_TIP, 0] - lm[topology.NOSE_TIP, 0])
    assert nose < 0
    lag = nose * ((turned[nearest, 0] - lm[nearest, 0]) - moved[k, 0])  # how far the outline swings past the cheek
    assert lag > 4.0


def test_beside_a_cheek_with_only_background_out_to_the_heads_outline_a_turn_opens_no_gap(crop):
    """Where the portrait shows background between the cheek and the head's outline (a face as
    wide as its head, hair only above the temple), a turn opened the gap between them on that
    background: the cheek stood inside the hair's outline as a cut-out, the wall behind it. There
    the outline follows the cheek; where hair or an ear lies beside the cheek it still lags."""
    import dataclasses

    lm, turned, engine, state, k, nearest = _turned_beside_the_cheek(crop)
    n = len(lm)
    ring = state.vertices[n + k]
    oval = topology.mesh()["oval"]

    def widening(open_beside: np.ndarray) -> float:
        st = dataclasses.replace(state, open_beside=open_beside)
        tgt = engine.target_vertices(st, turned.astype(np.float32))
        s, _, _ = engine._head_motion(st, turned.astype(np.float32))
        return float(np.linalg.norm(tgt[n + k] - turned[nearest, :2]) - s * np.linalg.norm(ring - lm[nearest, :2]))

    hair = widening(np.zeros(len(oval)))
    wall = widening(np.ones(len(oval)))
    assert hair > 4.0   # hair or an ear beside the cheek: the outline lags, the side turns into view
    assert wall < 1.0   # background there: the outline keeps its distance to the cheek


def test_what_lies_beside_the_cheek_is_read_from_the_matte_and_the_plate():
    """open_beside: background in the matte, or taken in by it but coloured like the plate behind
    (a soft matte's rim of wall), counts; only beside the face and above the mouth."""
    from avatar.render.warp import _RING_POINTS, open_beside

    size = 256
    t = np.linspace(0, 2 * np.pi, 36, endpoint=False)
    oval = np.stack([128 + 60 * np.cos(t), 128 + 80 * np.sin(t)], 1)
    a = np.linspace(0, 2 * np.pi, _RING_POINTS, endpoint=False)
    ring = np.stack([128 + 90 * np.cos(a), 128 + 110 * np.sin(a)], 1)
    yy, xx = np.mgrid[:size, :size]
    face = (((xx - 128) / 61.0) ** 2 + ((yy - 128) / 81.0) ** 2 <= 1).astype(np.float32)
    head = (((xx - 128) / 95.0) ** 2 + ((yy - 128) / 115.0) ** 2 <= 1).astype(np.float32)
    beside = np.abs(np.sin(t)) < 0.3  # straight left and right of the face
    above = np.sin(t) < -0.9
    assert open_beside(face, oval, ring)[beside].min() > 0.9
    assert open_beside(face, oval, ring)[above].max() == 0.0  # above the face: the rings' own business
    assert open_beside(head, oval, ring).max() == 0.0
    plate = np.full((size, size, 3), 200, np.uint8)
    image = np.where(face[..., None] > 0, 120, 205).astype(np.uint8)  # wall just past the face
    assert open_beside(head, oval, ring, image, plate)[beside].min() > 0.9
    image[:] = np.where(face[..., None] > 0, 120, 60)  # hair just past the face
    assert open_beside(head, oval, ring, image, plate).max() == 0.0
