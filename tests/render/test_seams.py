"""Where depth order puts unrelated texture side by side (a lip folded over skin), the upsampled
backward map takes one side or the other, never a line of coordinates in between (which showed
as a dark 1-px outline round the lips), and the colours there are feathered by a pixel."""

from __future__ import annotations

import numpy as np

from avatar.render.triangles import dense_map, rasterise
from avatar.render.warp import _exact_at_seams, _feather, _reads_a_seam, upsample_map


def _map(jump: float) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:32, 0:32].astype(np.float32)
    mx = 2 * xx + 0.5
    my = 2 * yy + 0.5
    mx[:, 16:] += jump  # the right half samples far away: an occlusion edge
    return mx, my


def test_an_occlusion_edge_upsamples_to_one_side_or_the_other():
    mx, my = _map(80.0)
    full, seams = upsample_map(mx, my, 64)
    assert seams is not None and seams[:, 30:34].all() and not seams[:, :26].any() and not seams[:, 38:].any()
    x = full[..., 0]
    # no coordinate falls in the gap between the two sides (bilinear would put a column there)
    assert not ((x > 2 * 16 + 2) & (x < 80.0 + 2 * 15)).any()


def test_a_smooth_map_is_plain_bilinear():
    import cv2

    mx, my = _map(0.0)
    mx += 3 * np.sin(my / 9)  # stretched and bent, but continuous
    full, seams = upsample_map(mx, my, 64)
    assert seams is None
    assert np.array_equal(full, cv2.resize(np.dstack([mx, my]), (64, 64), interpolation=cv2.INTER_LINEAR))


def test_feathering_touches_only_the_seam():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    where = np.zeros((40, 40), bool)
    where[10:30, 19:21] = True
    out = image.copy()
    _feather(out, where)
    assert np.array_equal(out[~where], image[~where])
    assert not np.array_equal(out[where], image[where])


def _fold(jump: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 32-px map: two outer triangles (identity onto a 64-px crop) and a face triangle drawn over
    them whose texture lies ``jump`` px away, with a diagonal outline."""
    points = np.array([[[-1, -1], [40, -1], [-1, 40]], [[40, -1], [40, 40], [-1, 40]],
                       [[5.3, 2.0], [28.0, 2.0], [5.3, 29.7]]], np.float64)
    affine = np.array([[[2, 0], [0, 2], [0.5, 0.5]]] * 2 + [[[2, 0], [0, 2], [0.5 + jump, 0.5]]], np.float64)
    return points, affine, rasterise(points, (32, 32))


def test_an_occlusion_edge_follows_the_triangle_at_full_resolution():
    """The turned cheek's outline over the background runs where its triangle's edge runs, not
    along the map's 2-px blocks (stair-steps along the jaw of a turned head)."""
    points, affine, index = _fold(80.0)
    mx, my = dense_map(index, affine)
    full, seams = upsample_map(mx, my, 64)
    ys, xs = np.nonzero(seams)
    corners = (points[2] + 0.5) * 2 - 0.5  # the face triangle in crop pixels
    centres = np.column_stack([xs, ys]).astype(float)
    inside = np.ones(len(xs), bool)
    edge = np.full(len(xs), np.inf)  # distance of each pixel centre from the outline, px
    for a, b, c in ((0, 1, 2), (1, 2, 0), (2, 0, 1)):
        d = corners[b] - corners[a]
        n = np.array([-d[1], d[0]]) / np.hypot(*d)
        side = (centres - corners[a]) @ n
        inside &= np.sign(side) == np.sign((corners[c] - corners[a]) @ n)
        edge = np.minimum(edge, np.abs(side))

    def worst() -> float:  # the farthest pixel from the outline on the wrong side of it
        wrong = (full[ys, xs, 0] > 60) != inside
        return float(edge[wrong].max()) if wrong.any() else 0.0

    blocky = worst()
    _exact_at_seams(full, seams, index, points, affine, (mx, my), (mx, my))
    exact = worst()
    assert blocky > 1.0 and exact < 0.75, (blocky, exact)  # the rasteriser's own rounding: under a pixel
    face = full[ys, xs, 0] > 60  # and each side keeps its own triangle's coordinates
    assert np.allclose(full[ys, xs, 0][face], xs[face] + 80.0, atol=1e-3)
    assert np.allclose(full[ys, xs, 0][~face], xs[~face], atol=1e-3)


def test_no_pixel_beside_a_seam_reads_the_far_side_through_a_diagonal():
    """A pixel next to a seam, not on it, read the map bilinearly, and its 2 x 2 cell could hold
    the far side's coordinates in the corner diagonally across (a sixteenth of the jump: a pixel
    off its neighbours on an 18 px fold, a dark speck on a lip's edge). Every pixel beside the
    diagonal outline now takes one triangle's coordinates or the other's."""
    points, affine, index = _fold(80.0)
    mx, my = dense_map(index, affine)
    full, seams = upsample_map(mx, my, 64)
    xs = np.arange(64, dtype=np.float32)[None, :]

    def off_both_sides(m: np.ndarray) -> float:
        # the map's outermost pixels (clamped bilinear) and the triangle's corners aside: a fold one
        # map pixel wide is not caught as a seam (see _jumps)
        return float(np.minimum(np.abs(m[..., 0] - xs), np.abs(m[..., 0] - xs - 80.0))[8:56, 1:-1].max())

    plain = full.copy()
    _exact_at_seams(plain, seams, index, points, affine, (mx, my), (mx, my))
    _exact_at_seams(full, _reads_a_seam(seams, mx, my), index, points, affine, (mx, my), (mx, my))
    assert off_both_sides(plain) > 3.0 and off_both_sides(full) < 1e-3, (off_both_sides(plain), off_both_sides(full))


def test_what_was_added_to_the_map_is_read_at_each_seam_pixels_own_place():
    """Motion added to the map after it was drawn (the driver's fine motion) varies from one map
    pixel to the next; taken from the nearest map pixel, a seam pixel sat up to half a map pixel's
    worth of it off its bilinear neighbours."""
    points, affine, index = _fold(80.0)
    mx, my = dense_map(index, affine)
    ramp = 2.0 * np.mgrid[0:32, 0:32][1].astype(np.float32)  # 2 px more per map column
    full, seams = upsample_map(mx + ramp, my, 64)
    _exact_at_seams(full, seams, index, points, affine, (mx + ramp, my), (mx, my))
    xs = np.arange(64, dtype=np.float32)[None, :]
    added = 2.0 * ((xs + 0.5) / 2 - 0.5)  # the ramp at each full pixel's own place
    ys, cols = np.nonzero(seams[8:56, 2:-2])
    ys, cols = ys + 8, cols + 2
    got = full[ys, cols, 0] - added[0, cols]
    assert np.minimum(np.abs(got - cols), np.abs(got - cols - 80.0)).max() < 1e-3


def test_exact_coordinates_along_more_seam_pixels_than_one_remap_call_takes():
    """A large crop with many folds holds more seam pixels than OpenCV's remap takes in one row
    (32767): the added motion is read without it, and every seam pixel gets its triangle's
    coordinates plus the motion added at its own place."""
    size, small = 512, 256
    xx = np.mgrid[0:small, 0:small][1]
    index = np.where((xx // 4) % 2 == 0, 1, 2).astype(np.int32)  # stripes of a near and a far layer
    a1 = np.array([[2.0, 0.0], [0.0, 2.0], [0.5, 0.5]], np.float32)
    a2 = a1.copy()
    a2[2, 0] += 60.0
    affine = np.stack([a1, a2])
    cover = [[-2.0, -2.0], [3 * small, -2.0], [-2.0, 3 * small]]
    points = np.array([cover, cover])  # redrawn at full resolution, the far layer covers every pixel
    mx, my = dense_map(index, affine)
    shift = np.full_like(mx, 0.75)
    full, seams = upsample_map(mx + shift, my, size)
    assert seams is not None and seams.sum() > 40000
    _exact_at_seams(full, seams, index, points, affine, (mx + shift, my), (mx, my))
    ys, cols = np.nonzero(seams)
    assert np.allclose(full[ys, cols, 0], cols + 60.75, atol=1e-3)


def test_a_small_step_at_the_face_outline_is_a_seam():
    """Over the background a step of two map pixels' spacing already shows as an edge; elsewhere
    (a stretched lip) it is no seam."""
    _, affine, index = _fold(5.0)
    mx, my = dense_map(index, affine)
    assert upsample_map(mx, my, 64)[1] is None
    seams = upsample_map(mx, my, 64, face=index == 3)[1]
    assert seams is not None and seams.sum() > 50


def _affine_map(jump: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A 32² map of two triangles' worth of affines: id 1 samples the source at twice the map's
    coordinates, id 2 the same shifted by ``jump`` px (a nearer layer drawn over it)."""
    a1 = np.array([[2.0, 0.0], [0.0, 2.0], [0.5, 0.5]], np.float32)
    a2 = a1.copy()
    a2[2, 0] += jump
    affine = np.stack([a1, a2])
    index = np.ones((32, 32), np.int32)
    return index, affine, *dense_map(index, affine)


def test_a_one_pixel_island_of_a_fold_takes_its_neighbours_triangle():
    """A nearer triangle that covers a map pixel or two alone (a sliver of a fold) samples a spot
    of unrelated texture: it is handed to the surrounding triangle, map and index alike; a
    region of the nearer layer stays, straight edge and all, and a stretched map is untouched."""
    from avatar.render.warp import _drop_islands

    index, affine, mx, my = _affine_map(12.0)
    index[10, 10] = 2  # one map pixel
    index[20, 5:7] = 2  # two side by side
    index[:, 24:] = 2  # a region: its edge is an occlusion edge, not an island
    mx, my = dense_map(index, affine)
    before = index.copy()
    _drop_islands(index, mx, my, affine, 2.0)
    assert index[10, 10] == 1 and (index[20, 5:7] == 1).all()
    assert np.array_equal(index[:, 24:], before[:, 24:]) and (index[1:-1, 23] == 1).all()
    ref_x, ref_y = dense_map(index, affine)
    assert np.allclose(mx, ref_x) and np.allclose(my, ref_y)
    # the same inside a window of the map (the face's box)
    windowed = before.copy()
    wx, wy = dense_map(windowed, affine)
    _drop_islands(windowed, wx, wy, affine, 2.0, (3, 4, 29, 30))
    assert np.array_equal(windowed, index) and np.allclose(wx, mx) and np.allclose(wy, my)

    yy, xx = np.mgrid[0:32, 0:32].astype(np.float32)
    sx, sy = 5.0 * xx + 0.2 * yy ** 2 / 8, 4.5 * yy  # stretched (every step a candidate), bent, continuous
    kept = (sx.copy(), sy.copy())
    _drop_islands(np.ones((32, 32), np.int32), sx, sy, affine, 2.0)
    assert np.array_equal(sx, kept[0]) and np.array_equal(sy, kept[1])


def test_an_island_beside_the_mouth_hole_takes_its_neighbours_triangle():
    """At a lip corner a sliver can cover a map pixel beside the uncovered mouth hole; it sampled
    the chin 80 px away and showed as a white speck for one frame of `avatar talk`. The median of
    its covered neighbours hands it to theirs; the hole's own edge (a straight run of lip pixels
    beside it) is left alone."""
    from avatar.render.warp import _drop_islands

    index, affine, _, _ = _affine_map(40.0)
    index[16:, :] = 0          # the mouth hole below row 16
    index[15, 10] = 2          # a sliver pixel on the hole's edge: 3 of its 9 neighbours uncovered
    mx, my = dense_map(index, affine)
    before = index.copy()
    _drop_islands(index, mx, my, affine, 2.0)
    assert index[15, 10] == 1
    ref_x, ref_y = dense_map(index, affine)
    covered = index > 0
    assert np.allclose(mx[covered], ref_x[covered]) and np.allclose(my[covered], ref_y[covered])
    assert np.array_equal(index[15, :10], before[15, :10]) and (index[16:] == 0).all()


def test_an_island_beside_the_face_is_looked_for_too():
    """Islands are looked for around the face as well as on it: squeezed ring triangles at a temple
    (a head tilted down and aside) covered a map pixel or two alone, sampling forehead skin and
    the plate past the hair, a speck in the hair (driving_02 frame 250). An island a third of the
    face's size beyond its landmarks is handed to its neighbours' triangle."""
    from avatar.render.warp import _drop_islands, island_box

    index, affine, _, _ = _affine_map(12.0)
    face = np.array([[8.0, 8.0], [20.0, 8.0], [8.0, 20.0], [20.0, 20.0]])  # the face's landmarks span 12 map px
    x0, y0, x1, y1 = island_box(face, 32)
    assert x0 <= 5 and y0 <= 5 and x1 >= 24 and y1 >= 24 and x0 >= 0 and x1 <= 32
    index[14, 24] = 2  # a pixel 4 map px (a third of the face) right of the face's landmarks
    mx, my = dense_map(index, affine)
    _drop_islands(index, mx, my, affine, 2.0, island_box(face, 32))
    assert index[14, 24] == 1


def test_an_island_handed_to_a_sliver_takes_the_neighbourhoods_median():
    """The neighbour's triangle nearest the median can be a sliver: a triangle a map pixel wide
    that spans ten source pixels. Carried one pixel past the sliver, its affine landed 20 source
    px off, and the island it was meant to fix became a light speck in the background beside a
    turned cheek (portrait_05 × driving_01 frame 136). The island takes the median there."""
    from avatar.render.warp import _drop_islands

    index, affine, _, _ = _affine_map(30.0)
    sliver = np.array([[-20.0, 0.0], [0.0, 2.0], [0.0, 0.5]], np.float32)
    sliver[2, 0] = 2.0 * 10 + 0.5 + 20.0 * 11  # at column 11 it samples the median exactly: the nearest
    affine = np.concatenate([affine, sliver[None]])
    index[10, 10] = 2  # the island
    index[10, 11] = 3  # the sliver beside it, matching its own pixel
    mx, my = dense_map(index, affine)
    _drop_islands(index, mx, my, affine, 2.0)
    expected = 2.0 * 10 + 0.5  # the field around it
    assert abs(mx[10, 10] - expected) <= 2.0 and abs(my[10, 10] - expected) <= 2.0, (mx[10, 10], my[10, 10])
    assert index[10, 10] != 2


def test_row_medians_match_nanmedian_over_the_covered_values():
    from avatar.render.warp import _row_medians

    rng = np.random.default_rng(3)
    for dtype in (np.float32, np.float64):
        values = (rng.random((500, 9)) * 100).astype(dtype)
        covered = rng.random((500, 9)) > 0.4
        covered[:, 4] = True
        with_gaps = np.where(covered, values, np.nan)
        got = _row_medians(with_gaps, covered.sum(1))
        assert got.dtype == dtype
        np.testing.assert_array_equal(got, np.nanmedian(with_gaps, axis=1))


def test_a_seam_that_no_redrawn_triangle_covers_keeps_its_map():
    """Around a seam, only slivers whose redrawn outline at full resolution covers none of its
    pixels (a turned, squeezed triangle): the map there stays as upsampled. Before, the empty
    selection ended `avatar talk` with a ValueError on a real talking clip (talk_04)."""
    size, small = 64, 32
    index = np.zeros((small, small), np.int32)
    index[10:20, 10:20] = 1
    affine = np.array([[[2.0, 0.0], [0.0, 2.0], [0.5, 0.5]]], np.float32)
    points = np.array([[[40.0, 40.0], [40.2, 40.0], [40.0, 40.2]]])  # far from the seam and thinner than a pixel
    mx, my = dense_map(index, affine)
    full = np.random.default_rng(0).random((size, size, 2)).astype(np.float32)
    seam = np.zeros((size, size), bool)
    seam[30, 25:30] = True
    before = full.copy()
    _exact_at_seams(full, seam, index, points, affine, (mx, my), (mx, my))
    assert np.array_equal(full, before)
