"""The drawn mouth (avatar.render.mouth): teeth where the upper lip allows, an open area within
the target's inner-lip polygon, rounded corners, a tongue only when wide, steady grain."""

import cv2
import numpy as np
import pytest

from avatar.face import topology
from avatar.motion import rig
from avatar.render import mouth

@pytest.fixture(scope="module")
def crop_256(portrait):
    from avatar.config import FaceConfig
    from avatar.face.crop import crop_box, crop_matrix, make_crop
    from avatar.face.landmarks import detect_face

    face = detect_face(portrait)
    return make_crop(portrait, face.landmarks, crop_matrix(crop_box(face.landmarks, FaceConfig()), 256), 256)


RGB = dict(cavity_rgb=np.array([60, 20, 25], np.float32), tongue_rgb=np.array([190, 100, 100], np.float32),
           teeth_rgb=np.array([220, 215, 205], np.float32))


def _landmarks(gap: float, tilt: float = 0.0) -> np.ndarray:
    """A synthetic 100 px wide mouth at (150, 200) opened ``gap`` px; ``tilt`` raises the upper lip's
    right half by that many px at the corner (a one-sided sneer)."""
    lm = np.zeros((478, 3))
    n = len(rig.INNER_UPPER)
    xs = np.linspace(100, 200, n + 2)[1:-1]
    bow = np.sqrt(np.clip(1 - ((xs - 150) / 52) ** 2, 0, 1))
    lm[list(rig.INNER_UPPER), 0] = xs
    lm[list(rig.INNER_UPPER), 1] = 200 - 0.35 * gap * bow - tilt * np.clip((xs - 150) / 50, 0, 1)
    lm[list(rig.INNER_LOWER), 0] = xs
    lm[list(rig.INNER_LOWER), 1] = 200 + 0.65 * gap * bow
    lm[rig.INNER_CORNERS[0], :2] = (100, 200)
    lm[rig.INNER_CORNERS[1], :2] = (200, 200)
    return lm


def _lower_lip_and_jaw(lm: np.ndarray) -> tuple[list[int], np.ndarray]:
    """The points a jaw drop moves: the inner mouth loop below the upper lip (and the lower lip's
    middle, 14), and every landmark below that."""
    loop = topology.mesh()["mouth_loop"]
    lower = [i for i in loop if lm[i, 1] > lm[topology.UPPER_LIP_INNER, 1] + 0.5] + [14]
    return lower, np.where(lm[:, 1] > lm[14, 1])[0]


def _draw(lm):
    yy, xx = np.mgrid[150:260, 90:212].astype(np.float32)
    return mouth.interior(mouth.mouth_frame(lm), xx, yy, **RGB), xx, yy


def test_teeth_hang_only_from_the_upper_lip():
    """Upper teeth show only within their visible length below the upper lip (a relaxed lip's,
    by default), in every column, and follow the lip where one side is raised; lower teeth only
    just above the lower lip."""
    for tilt in (0.0, 12.0):
        lm = _landmarks(40.0, tilt)
        (img, parts), xx, yy = _draw(lm)
        frame = mouth.mouth_frame(lm)
        u, v = frame.coords(xx, yy)
        v_up, v_low = frame.lip_lines(u)
        inside = (v > v_up) & (v < v_low) & (np.abs(u) < 0.9)
        teeth = parts["upper_teeth"] > 0.5
        assert teeth[inside].mean() > 0.05
        below = (v - v_up)[teeth]
        assert below.min() > -2 and below.max() < mouth.UPPER_SHOW * frame.width + 1
        # right under the upper lip, across the middle, there are teeth
        under = inside & (v - v_up > 1) & (v - v_up < 4) & (np.abs(u) < 0.5)
        assert teeth[under].mean() > 0.95
        low = parts["lower_teeth"] > 0.5
        assert ((v_low - v)[low] < mouth.LOWER_TOOTH_LENGTH * frame.width + 1).all()
        # teeth are individual: brightness dips between neighbours along a row under the lip
        row = np.where(under & (v - v_up > 2.5) & (v - v_up < 3.5))
        order = np.argsort(u[row])
        lum = img[row][order].mean(-1)
        dips = ((lum[1:-1] < lum[:-2]) & (lum[1:-1] < lum[2:]) & (lum[1:-1] < 0.9 * lum.max())).sum()
        assert dips >= 3


def test_the_side_teeth_recede_into_the_dark_of_the_cheeks():
    """Towards the mouth's corners the upper row fades out (the buccal corridor): drawn out to
    the corners, the side teeth hung from the lip's steep ends as long slanted fangs in a wide
    mouth. Across the middle the row is whole. A video avatar bridges to its footage's own row
    and keeps it nearly to the corners."""
    lm = _landmarks(50.0)
    frame = mouth.mouth_frame(lm)
    (_, parts), xx, yy = _draw(lm)
    u, v = frame.coords(xx, yy)
    v_up, _ = frame.lip_lines(u)
    under = (v - v_up > 1) & (v - v_up < 3)
    teeth = parts["upper_teeth"]
    assert teeth[under & (np.abs(u) < 0.4)].mean() > 0.95
    assert teeth[under & (np.abs(u) > 0.8)].max() == 0.0   # 0.6 of a tooth there before
    assert teeth[under & (np.abs(u) > 0.65) & (np.abs(u) < 0.75)].mean() < 0.5
    full = mouth.upper_teeth(u, v - v_up, frame.width, mouth.FULL_ROW)
    assert full[under & (np.abs(u) > 0.65) & (np.abs(u) < 0.75)].mean() > 0.9


def test_a_round_openings_lip_covers_the_upper_row_towards_the_corners():
    """The upper row is rigid: its biting edge hangs from the upper lip's middle, so where a round
    opening's lip curves down towards the corners it hides the teeth there. Hung from the lip at
    every column, the row ran down the sides of an "ah" as a white rim."""
    lm = _landmarks(50.0)
    frame = mouth.mouth_frame(lm)
    (_, parts), xx, yy = _draw(lm)
    u, v = frame.coords(xx, yy)
    v_up, v_low = frame.lip_lines(u)
    v_mid = float(np.interp(0.0, frame.upper[:, 0], frame.upper[:, 1]))
    teeth = parts["upper_teeth"] > 0.5
    edge = v_mid + mouth.upper_length(u, frame.width)  # the row's biting edge, hung from the middle
    assert teeth[np.abs(u) < 0.3].any()
    assert (v[teeth] <= edge[teeth] + 1.0).all()
    sides = (np.abs(u) > 0.55) & (np.abs(u) < 0.75)
    hung = mouth.upper_teeth(u, v - v_up, frame.width)  # the row hung from the lip at every column
    assert parts["upper_teeth"][sides].sum() < 0.7 * hung[sides].sum()
    # the same lip raised on one side still shows the row down to its edge there
    tilted = _landmarks(50.0, 12.0)
    frame = mouth.mouth_frame(tilted)
    (_, parts), _, _ = _draw(tilted)
    u, v = frame.coords(xx, yy)
    v_up, _ = frame.lip_lines(u)
    right = (u > 0.3) & (u < 0.5) & (v - v_up > 1) & (v - v_up < 3)
    assert parts["upper_teeth"][right].mean() > 0.9


def test_the_cavity_is_darkest_under_the_upper_lip_and_in_the_corners(monkeypatch):
    """In real open mouths the top of the opening, shaded by the upper lip and teeth, is its
    darkest part and the floor behind the lower lip its lightest; the corners sink into the
    cheeks' shadow. Lit evenly near every lip, the cavity was a pale ring round the tongue."""
    monkeypatch.setattr(mouth, "LIP_SHADOW", 0.0)  # the lower lip's own shade is tested apart
    lm = _landmarks(22.0)  # open, no tongue yet (see TONGUE_FROM)
    (img, parts), xx, yy = _draw_with(lm, 0.0)
    frame = mouth.mouth_frame(lm)
    u, v = frame.coords(xx, yy)
    v_up, v_low = frame.lip_lines(u)
    rel = (v - v_up) / np.maximum(v_low - v_up, 1e-3)
    assert parts["tongue"].max() == 0
    lum = img.mean(-1)
    middle = (np.abs(u) < 0.3) & (parts["upper_teeth"] == 0)
    top, floor = middle & (rel > 0.05) & (rel < 0.2), middle & (rel > 0.8) & (rel < 0.95)
    assert lum[top].mean() < 0.75 * lum[floor].mean()
    centre = middle & (rel > 0.4) & (rel < 0.6)
    corner = (np.abs(u) > 0.8) & (np.abs(u) < 0.9) & (rel > 0.3) & (rel < 0.7)
    assert corner.sum() > 5 and lum[corner].mean() < 0.75 * lum[centre].mean()


def test_the_lower_tips_read_as_one_band_not_a_comb():
    """The lower incisors are narrow and close: along their row brightness varies far less than
    along the upper row, whose teeth are told apart by their rounded faces and gaps."""
    lm = _landmarks(40.0)
    (img, parts), xx, yy = _draw(lm)
    frame = mouth.mouth_frame(lm)
    u, v = frame.coords(xx, yy)
    v_up, v_low = frame.lip_lines(u)
    lum = img.mean(-1)

    def ripple(part: str, rows: np.ndarray) -> float:
        pick = rows & (parts[part] > 0.99) & (np.abs(u) < 0.4)
        assert pick.sum() > 10
        return float(np.std(lum[pick] / np.polyval(np.polyfit(u[pick], lum[pick], 2), u[pick])))

    upper = ripple("upper_teeth", (v - v_up > 2) & (v - v_up < 4))
    lower = ripple("lower_teeth", (v_low - v > 2) & (v_low - v < 3))
    assert lower < 0.65 * upper, (lower, upper)


def _wide_open():
    """A 60-px opening drawn: the interior, its parts, and each pixel's u and share of the
    opening's height (0 at the lower lip, 1 at the upper)."""
    lm = _landmarks(60.0)
    (img, parts), xx, yy = _draw(lm)
    frame = mouth.mouth_frame(lm)
    u, v = frame.coords(xx, yy)
    v_up, v_low = frame.lip_lines(u)
    return img, parts, u, (v_low - v) / np.maximum(v_low - v_up, 1e-3)

def test_a_tongue_only_when_the_mouth_is_wide():
    (_, narrow), _, _ = _draw(_landmarks(15.0))
    (_, wide), _, _ = _draw(_landmarks(50.0))
    assert narrow["tongue"].max() == 0
    assert wide["tongue"].sum() > 100


def test_a_wide_mouths_tongue_fills_most_of_its_height():
    """In a wide-open mouth (an "oh" of surprise) the tongue fills the opening up past its middle,
    as in real wide mouths (whose middle is as light as the lips), not a low mound under a dark hole."""
    _, parts, u, share = _wide_open()
    column = (np.abs(u) < 0.15) & (share > 0.55) & (share < 0.6)
    assert parts["tongue"][column].mean() > 0.9


def test_a_wide_mouths_tongue_is_a_broad_mound_with_a_soft_back_edge():
    """The tongue spans most of a wide mouth at nearly its full height (a tent-shaped dome left
    dark corners beside a pointed peak) and its back edge fades into the throat over a good part of
    the opening (a 2-px edge drew a crisp arc, a cut-out)."""
    _, parts, u, share = _wide_open()

    def reach(cols: np.ndarray) -> float:
        """Highest share of the opening the tongue half-covers in those columns."""
        return float(share[cols & (parts["tongue"] >= 0.5)].max())

    assert reach(np.abs(u - 0.5) < 0.03) > 0.85 * reach(np.abs(u) < 0.03)
    middle = np.abs(u) < 0.05
    tongue = parts["tongue"][middle]
    ramp = share[middle][(tongue > 0.1) & (tongue < 0.9)]
    assert ramp.max() - ramp.min() > 0.1


def test_a_wide_mouths_tongue_is_rounded_not_one_flat_colour():
    """Across its width the tongue is lightest in the middle and falls off smoothly towards its
    sides, where it rolls down to the floor of the mouth (lit only from front to back, one row
    of it was a flat colour: 0.85 of the middle's light at u = ±0.7); no dip along the middle."""
    img, parts, u, share = _wide_open()
    lum = img @ np.array([0.299, 0.587, 0.114], np.float32)
    row = (share > 0.25) & (share < 0.3) & (parts["tongue"] > 0.99)
    bins = np.linspace(-0.75, 0.75, 11)
    profile = np.array([lum[row & (u >= a) & (u < b)].mean() for a, b in zip(bins[:-1], bins[1:])])
    assert profile[[0, -1]].max() < 0.75 * profile[5], profile
    assert (np.diff(profile[:6]) > 0).all() and (np.diff(profile[5:]) < 0).all(), profile


def test_rounded_lips_cover_the_upper_teeth(crop_256):
    """An "oh" pushes the lips forward over the upper teeth: opened as wide, with the inner lips
    drawn in to 0.75 of their width at rest, right under the upper lip is the dark of the mouth,
    not the teeth that show in a spread opening. The head's own motion (a turn, a scale) reads as
    neither rounded nor spread."""
    from avatar.render.warp import WarpEngine

    lm = crop_256.landmarks.astype(np.float64).copy()
    lower, jaw = _lower_lip_and_jaw(lm)
    engine = WarpEngine(rigid_parts=False)
    state = engine.prepare(crop_256)
    opened = lm.copy()
    opened[np.union1d(lower, jaw), 1] += 16
    mouth_ids = np.unique(np.concatenate([topology.mesh()["lips"], topology.mesh()["mouth_loop"]]))
    centre = opened[topology.UPPER_LIP_INNER, 0]
    rounded = opened.copy()
    rounded[mouth_ids, 0] = centre + 0.75 * (opened[mouth_ids, 0] - centre)

    def width_ratio(target: np.ndarray) -> float:
        return engine._lip_pose(state, target, mouth.mouth_frame(target))[1]

    assert abs(width_ratio(opened) - 1.0) < 0.03
    assert abs(width_ratio(rounded) - 0.75) < 0.03
    c, a = lm[:, :2].mean(0), np.radians(8.0)
    turned = opened.copy()
    turned[:, :2] = 1.1 * (opened[:, :2] - c) @ np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]]) + c + (5, -7)
    assert abs(width_ratio(turned) - 1.0) < 0.03

    top = opened[topology.UPPER_LIP_INNER, :2].round().astype(int)

    def under_the_lip(target: np.ndarray) -> float:
        out = engine.render_one(state, target.astype(np.float32)).astype(np.float32)
        return float(out[top[1] + 2:top[1] + 5, top[0] - 2:top[0] + 3].mean())

    spread, round_ = under_the_lip(opened), under_the_lip(rounded)
    assert round_ < 0.6 * spread, (round_, spread)


def test_a_narrow_opening_is_dimmer_inside_than_a_wide_one(monkeypatch):
    """Little light gets into a mouth opened a crack: everything drawn in it is darker than the
    same drawing lit as a wide-open mouth is; a wide-open mouth keeps its full light."""
    for gap, dimmed in ((5.0, True), (40.0, False)):
        (lit, _), _, _ = _draw(_landmarks(gap))
        with monkeypatch.context() as m:
            m.setattr(mouth, "APERTURE", (1.0, mouth.APERTURE[1]))
            (full, _), _, _ = _draw(_landmarks(gap))
        inside = full.mean(-1) > 20
        ratio = lit[inside].mean() / full[inside].mean()
        assert (ratio < 0.85) if dimmed else (ratio > 0.99)


def test_the_lower_lip_shades_what_lies_just_behind_it(monkeypatch):
    """Right above the lower lip the drawn interior is darker than it is drawn without the lip's
    shade, so the lip's inner edge reads against it: the tongue and cavity over a good part of the
    opening, the lower teeth's tips (standing in front of that shade) only where the lip touches
    them. Shaded over their whole height the tips were a grey band. Further in the shade has gone."""
    lm = _landmarks(40.0)
    frame = mouth.mouth_frame(lm)
    yy, xx = np.mgrid[150:260, 90:212].astype(np.float32)
    u, v = frame.coords(xx, yy)
    _, v_low = frame.lip_lines(u)
    above = v_low - v
    middle = np.abs(u) < 0.3
    edge, band = middle & (above > 0.5) & (above < 1.5), middle & (above > 3) & (above < 5)
    inner = middle & (above > 15) & (above < 18)
    for share in (1.0, 0.0):  # the lower tips shown, and hidden (the tongue behind the lip)
        img, parts = mouth.interior(frame, xx, yy, lower_share=share, **RGB)
        with monkeypatch.context() as m:
            m.setattr(mouth, "LIP_SHADOW", 0.0)
            plain, _ = mouth.interior(frame, xx, yy, lower_share=share, **RGB)
        assert img[edge].mean() < 0.8 * plain[edge].mean()
        assert img[inner].mean() > 0.9 * plain[inner].mean()
        tips = parts["lower_teeth"] > 0.99
        if share:
            assert (band & tips).sum() > 10 and img[band & tips].mean() > 0.93 * plain[band & tips].mean()
        else:
            assert not tips.any() and img[band].mean() < 0.8 * plain[band].mean()


def test_the_upper_teeth_show_as_the_upper_lip_rises_and_the_lower_ones_as_the_jaw_drops(crop_256):
    """The upper teeth are fixed to the skull: how much of them shows follows the upper lip's rise
    above where the head carries it (not a jaw drop, not the head's own motion), and a talking
    opening shows the lower teeth's tips above the lower lip. Drawn at their whole length from the
    lip at every opening, they were a row of white keys over a black band, where real talking
    mouths are darkest at the top and brightest at the bottom."""
    from avatar.render.warp import WarpEngine

    lm = crop_256.landmarks.astype(np.float64).copy()
    lower, jaw = _lower_lip_and_jaw(lm)
    engine = WarpEngine(rigid_parts=False)
    state = engine.prepare(crop_256)
    top = lm[topology.UPPER_LIP_INNER]
    lips = np.array(topology.mesh()["lips"])
    upper = lips[(lm[lips, 1] < top[1] + 0.5) & (np.abs(lm[lips, 0] - top[0]) < 12)]

    def lift(target: np.ndarray) -> float:
        return engine._lip_pose(state, target, mouth.mouth_frame(target))[0]

    dropped = lm.copy()
    dropped[np.union1d(lower, jaw), 1] += 12
    assert abs(lift(dropped)) < 0.5
    c, a = lm[:, :2].mean(0), np.radians(8.0)
    turned = dropped.copy()
    turned[:, :2] = (dropped[:, :2] - c) @ np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]]) + c + (5, -7)
    assert abs(lift(turned)) < 0.5
    raised = dropped.copy()
    raised[upper, 1] -= 6
    assert 5 < lift(raised) < 7

    # drawn: that much more of the upper row; the lower tips at a talking opening (18 % of the width)
    def bands(gap: float, show: float | None) -> tuple[float, float]:
        lm2 = _landmarks(gap)
        (_, parts), xx, yy = _draw_with(lm2, show)
        frame = mouth.mouth_frame(lm2)
        u, _ = frame.coords(xx, yy)
        middle = np.abs(u) < 0.1
        per_column = lambda part: parts[part][middle].sum() / max(np.count_nonzero(middle) / yy.shape[0], 1)
        return per_column("upper_teeth"), per_column("lower_teeth")

    up_rest, low = bands(18.0, None)
    up_raised, _ = bands(18.0, mouth.UPPER_SHOW * 100 + 6)
    assert 5 < up_raised - up_rest < 7
    assert low > 3.0


def _draw_with(lm, show):
    yy, xx = np.mgrid[150:260, 90:212].astype(np.float32)
    return mouth.interior(mouth.mouth_frame(lm), xx, yy, upper_show=show, **RGB), xx, yy


def test_the_cavity_is_a_dim_red_not_a_black_hole():
    """The cavity colour taken from a portrait is a good share of its lips' brightness: an open
    mouth in video is about the lips' own colour (tongue and cavity together), never black."""
    lm = np.zeros((478, 3))
    lm[:, :2] = (60, 60)
    lm[topology.mesh()["lips"], :2] = (128, 170)
    lm[list(topology.CHEEKS), :2] = [(60, 128), (196, 128), (70, 150), (186, 150)]
    img = np.full((256, 256, 3), (220, 180, 160), np.uint8)
    img[160:180, 100:160] = (180, 90, 90)
    cavity, tongue, _ = mouth.colours(img, lm)
    lip_lum = float(np.array([180, 90, 90]) @ [0.299, 0.587, 0.114])
    assert float(cavity @ [0.299, 0.587, 0.114]) > 0.5 * lip_lum
    assert cavity[0] > cavity[1] and tongue[0] > tongue[1]  # red, like the lips


def test_the_open_area_never_exceeds_the_inner_lip_polygon_and_its_corners_are_round():
    lm = _landmarks(30.0, 6.0)
    loop = lm[topology.mesh()["mouth_loop"], :2]
    x0, y0, w, h = 90, 150, 122, 110
    alpha = mouth.opening_alpha(loop, x0, y0, w, h)
    exact = np.zeros((h * 8, w * 8), np.uint8)
    cv2.fillPoly(exact, [np.round(((loop - [x0, y0]) * 8 + 3.5) * 16).astype(np.int32)], 1, shift=4)
    exact = cv2.resize(exact.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
    area = 0.5 * abs(np.dot(loop[:, 0], np.roll(loop[:, 1], -1)) - np.dot(loop[:, 1], np.roll(loop[:, 0], -1)))
    assert alpha.sum() <= area + 1.0
    assert (alpha <= exact + 0.25).all()        # nowhere more open than the polygon (up to sampling)
    assert alpha[exact == 0].max() < 0.1
    for c in rig.INNER_CORNERS:                 # the sharp corners are rounded off
        x, y = np.round(lm[c, :2] - [x0, y0]).astype(int)
        near = (slice(y - 3, y + 4), slice(x - 3, x + 4))
        assert alpha[near].sum() < 0.7 * exact[near].sum()
    assert 0.85 * area < alpha.sum()            # but the mouth keeps its size


def test_grain_is_measured_like_the_portrait_and_never_flickers():
    yy, xx = np.mgrid[0:256, 0:256]
    flat = np.full((256, 256, 3), 128, np.float32)
    a = mouth.add_grain(flat, 4.0, xx, yy)
    assert np.array_equal(a, mouth.add_grain(flat, 4.0, xx, yy))  # same pixels, same grain
    img = np.clip(a, 0, 255).astype(np.uint8)
    lm = np.zeros((478, 3))
    lm[list(topology.CHEEKS), :2] = [(60, 128), (196, 128), (70, 170), (186, 170)]
    lm[33, :2], lm[263, :2] = (80, 90), (176, 90)
    assert 3.0 < mouth.grain(img, lm) < 5.0
    assert mouth.grain(np.full((256, 256, 3), 128, np.uint8), lm) == 0.0


def _parted_portrait(crop, gap: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The crop's landmarks (float64) with the lower lip and jaw dropped ``gap`` px, a copy of its
    image, the (S, S) uint8 mask of the opening that leaves between the lips, and the dropped ids."""
    lm = crop.landmarks.astype(np.float64).copy()
    lower, jaw = _lower_lip_and_jaw(lm)
    dropped = np.union1d(lower, jaw)
    lm[dropped, 1] += gap
    hole = np.zeros(crop.image.shape[:2], np.uint8)
    cv2.fillPoly(hole, [np.round(lm[topology.mesh()["mouth_loop"], :2]).astype(np.int32)], 1)
    return lm, crop.image.copy(), hole, dropped


def test_the_portraits_own_open_mouth_is_used_and_moves_with_the_upper_lip(crop_256):
    """A portrait whose open mouth shows (light blue) teeth: opened wider, the band under the upper
    lip still shows those pixels, carried by the upper lip; only below them is the mouth drawn."""
    import dataclasses

    from avatar.render.warp import WarpEngine

    opened, img, hole, dropped = _parted_portrait(crop_256, 6)  # the portrait: mouth a little open
    img[hole > 0] = (140, 200, 255)  # bright, as teeth are
    source = dataclasses.replace(crop_256, image=img, landmarks=opened.astype(np.float32))
    target = opened.copy()
    target[dropped, 1] += 14  # the target opens it wider
    target[:, 1] -= 3                        # and lifts the whole face a little
    engine = WarpEngine(rigid_parts=False)
    out = engine.render_one(engine.prepare(source), target.astype(np.float32)).astype(int)
    blue = (out[..., 2] > 200) & (out[..., 2] - out[..., 0] > 80)
    top = target[topology.UPPER_LIP_INNER, :2].round().astype(int)
    assert blue[top[1] + 2:top[1] + 5, top[0] - 2:top[0] + 3].mean() > 0.8   # own teeth right under the lip
    low = target[topology.LOWER_LIP_INNER, :2].round().astype(int)
    assert blue[low[1] - 5:low[1] - 2, low[0] - 2:low[0] + 3].mean() < 0.2   # drawn where the portrait had nothing


def test_the_portraits_own_lower_teeth_ride_the_lower_lip(crop_256):
    """A portrait talking with its lower teeth in view (a dark band under the upper lip, light
    blue teeth above the lower lip): opened wider, those teeth stay on the lower lip as the jaw
    drops. Carried by the upper lip with the rest of its own mouth, they hung from it over drawn
    lower teeth."""
    import dataclasses

    from avatar.render.warp import WarpEngine

    opened, img, hole, dropped = _parted_portrait(crop_256, 8)  # the portrait: mouth a little open
    top_y = opened[topology.UPPER_LIP_INNER, 1]
    ys = np.arange(img.shape[0])[:, None] + np.zeros(img.shape[1])[None, :]
    img[(hole > 0) & (ys < top_y + 3)] = (30, 12, 10)      # the shadow under the upper lip
    img[(hole > 0) & (ys >= top_y + 3)] = (140, 200, 255)  # lower teeth, bright
    source = dataclasses.replace(crop_256, image=img, landmarks=opened.astype(np.float32))
    engine = WarpEngine(rigid_parts=False)
    state = engine.prepare(source)
    assert state.own_lower is not None and state.own_teeth_lower > 0.9
    target = opened.copy()
    target[dropped, 1] += 12  # the jaw drops further
    out = engine.render_one(state, target.astype(np.float32)).astype(int)
    blue = (out[..., 2] > 200) & (out[..., 2] - out[..., 0] > 80)
    low = target[topology.LOWER_LIP_INNER, :2].round().astype(int)
    assert blue[low[1] - 7:low[1] - 3, low[0] - 2:low[0] + 3].mean() > 0.6   # own teeth on the lower lip
    top = target[topology.UPPER_LIP_INNER, :2].round().astype(int)
    assert blue[top[1] + 4:top[1] + 8, top[0] - 2:top[0] + 3].mean() < 0.2   # not hanging from the upper one


def test_a_smiles_own_teeth_stay_with_the_upper_lip_and_the_gap_below_them_rides_the_lower():
    """Where the teeth fill the portrait's own opening (a smile), they are the upper ones: the
    lower lip carries only the darker rows under them. Where the light lies low under a dark band,
    the teeth are the lower ones."""
    from avatar.render.mouth import own_lower_part

    own = np.zeros((40, 40), np.float32)
    own[10:20, 5:35] = 1.0
    smile = np.zeros((40, 40, 3), np.uint8)
    smile[10:18, 5:35] = 230       # teeth from the upper lip down
    smile[18:20, 5:35] = 60        # the gap above the lower lip
    part = own_lower_part(smile, own)
    assert part[10:17, 10:30].max() < 0.1 and part[19, 10:30].min() > 0.9
    talker = np.zeros((40, 40, 3), np.uint8)
    talker[10:13, 5:35] = 40       # the shadow under the upper lip
    talker[13:20, 5:35] = 200      # lower teeth
    part = own_lower_part(talker, own)
    assert part[10:12, 10:30].max() < 0.1 and part[14:20, 10:30].min() > 0.9


def test_a_dark_gap_between_parted_lips_gives_way_to_teeth_when_opened_wide(crop_256):
    """A portrait with parted lips over a dark gap (no teeth in view), opened to well over twice
    its own opening: right under the upper lip are the drawn teeth, not the dark gap carried by
    the lip (it hung as a dark band between the lip and the teeth). Opened a little wider than its
    own, the dark gap stays."""
    import dataclasses

    from avatar.render.warp import WarpEngine

    opened, img, hole, dropped = _parted_portrait(crop_256, 5)
    img[hole > 0] = (30, 12, 10)
    source = dataclasses.replace(crop_256, image=img, landmarks=opened.astype(np.float32))
    engine = WarpEngine(rigid_parts=False)
    state = engine.prepare(source)
    assert state.own_mouth is not None
    top = opened[topology.UPPER_LIP_INNER, :2].round().astype(int)

    def under_the_lip(extra: float) -> float:
        target = opened.copy()
        target[dropped, 1] += extra
        out = engine.render_one(state, target.astype(np.float32)).astype(np.float32)
        return float(out[top[1] + 2:top[1] + 4, top[0] - 2:top[0] + 3].mean())

    assert under_the_lip(16.0) > 50.0   # drawn teeth and the lit cavity under them (the carried dark gap: about 25)
    assert under_the_lip(1.0) < 60.0    # a hair wider than its own: still its own dark gap


def test_an_own_open_mouth_at_its_own_size_is_not_drawn_over(crop_256):
    """Opened no wider than the portrait's own open mouth (its own landmarks, in float32 as the
    tracker gives them, or a hair wider): the portrait's own interior, not a drawn cavity ring."""
    import dataclasses

    from avatar.render.warp import WarpEngine

    lm = crop_256.landmarks.astype(np.float64).copy()
    loop = topology.mesh()["mouth_loop"]
    lower, jaw = _lower_lip_and_jaw(lm)
    lm[np.union1d(lower, jaw), 1] += 6  # the portrait: mouth a little open, blue inside
    img = crop_256.image.copy()
    hole = np.zeros(img.shape[:2], np.uint8)
    cv2.fillPoly(hole, [np.round(lm[loop, :2]).astype(np.int32)], 1)
    img[hole > 0] = (40, 60, 230)
    source = dataclasses.replace(crop_256, image=img, landmarks=lm)
    engine = WarpEngine(rigid_parts=False)
    state = engine.prepare(source)
    assert state.own_mouth is not None
    box = cv2.boundingRect(np.round(lm[loop, :2]).astype(np.int32))
    x, y, w, h = box[0] - 3, box[1] - 3, box[2] + 6, box[3] + 6
    wider = lm.copy()
    wider[lower, 1] += 0.05
    # a twentieth of a pixel moves the lip's 150-level edge by a few levels, no more
    for target, tolerance in ((lm, 3), (wider, 12)):
        out = engine.render_one(state, target.astype(np.float32)).astype(int)
        err = np.abs(out - img)[y:y + h, x:x + w].max(-1)
        assert err.max() <= tolerance, err.max()


def test_the_drawn_mouth_takes_none_of_the_portraits_detail(crop_256):
    """Paste-back puts the portrait's fine detail back through each crop's backward map
    (:class:`avatar.face.blend.MappedCrop`); the drawn interior of a mouth opened wider than the
    portrait's is not the portrait seen through that map, and gets none: the lips' own detail
    would have been printed over the teeth."""
    from avatar.face.blend import MappedCrop
    from avatar.render.base import DriveTarget
    from avatar.render.warp import WarpEngine

    lm = crop_256.landmarks.astype(np.float64).copy()
    loop = topology.mesh()["mouth_loop"]
    lower, jaw = _lower_lip_and_jaw(lm)
    opened = lm.copy()
    opened[np.union1d(lower, jaw), 1] += 14
    engine = WarpEngine(rigid_parts=False)
    crop = engine.render(engine.prepare(crop_256), [DriveTarget(opened.astype(np.float32))])[0]
    assert isinstance(crop, MappedCrop) and crop.source_map.shape == (256, 256, 2)
    inner = np.zeros((256, 256), np.uint8)
    cv2.fillPoly(inner, [np.round(opened[loop, :2]).astype(np.int32)], 1)
    inner = cv2.erode(inner, np.ones((5, 5), np.uint8)) > 0
    assert inner.sum() > 50
    assert crop.own[inner].max() < 0.05, crop.own[inner].max()
    cheeks = np.zeros((256, 256), np.uint8)
    cv2.fillPoly(cheeks, [np.round(opened[topology.mesh()["oval"], :2]).astype(np.int32)], 1)
    cheeks = (cv2.erode(cheeks, np.ones((15, 15), np.uint8)) > 0) & ~cv2.dilate(inner.astype(np.uint8), np.ones((25, 25), np.uint8)).astype(bool)
    assert np.median(crop.own[cheeks]) > 0.9


def test_the_lips_dark_corner_crease_is_not_carried_beside_the_opening(portrait):
    """A portrait whose dark crease between the lips runs on from the inner-lip corners to the
    outer ones (as real lips' do): opened wide, the lips round the drawn opening's corners are
    lips, not the crease carried with them (stretched into dark wedges on photos); at the
    portrait's own landmarks the crease is all still there."""
    import dataclasses

    from avatar.config import FaceConfig
    from avatar.face.crop import crop_box, crop_matrix, make_crop
    from avatar.face.landmarks import detect_face
    from avatar.render.warp import WarpEngine

    face = detect_face(portrait)
    crop = make_crop(portrait, face.landmarks, crop_matrix(crop_box(face.landmarks, FaceConfig()), 512), 512)
    lm = crop.landmarks.astype(np.float64).copy()
    img = crop.image.copy()
    for inner, outer in zip(rig.INNER_CORNERS, rig.OUTER_CORNERS):
        a, b = (np.round(lm[i, :2] * 4).astype(int) for i in (inner, outer))
        cv2.line(img, tuple(a), tuple(b), (40, 12, 14), 2, cv2.LINE_AA, shift=2)
    engine = WarpEngine(rigid_parts=False)
    state = engine.prepare(dataclasses.replace(crop, image=img))
    lower, jaw = _lower_lip_and_jaw(lm)
    target = lm.copy()
    target[np.union1d(lower, jaw), 1] += 28

    def dark_beside_the_corners(out: np.ndarray, at: np.ndarray) -> int:
        opening = np.zeros(out.shape[:2], np.uint8)
        cv2.fillPoly(opening, [np.round(at[topology.mesh()["mouth_loop"], :2]).astype(np.int32)], 1)
        near = np.zeros_like(opening)
        for i in rig.OUTER_CORNERS:
            cv2.circle(near, tuple(np.round(at[i, :2]).astype(int)), 6, 1, -1)
        beside = (near > 0) & (cv2.dilate(opening, np.ones((3, 3), np.uint8)) == 0)
        return int(((out.astype(np.float32) @ np.array([0.299, 0.587, 0.114])) < 80)[beside].sum())

    painted = dark_beside_the_corners(img, lm)
    assert painted >= 8
    assert dark_beside_the_corners(engine.render_one(state, lm.astype(np.float32)), lm) >= painted - 1
    assert dark_beside_the_corners(engine.render_one(state, target.astype(np.float32)), target) <= painted // 4
