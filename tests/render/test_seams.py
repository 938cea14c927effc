"""Where depth order puts unrelated texture side by side (a lip folded over skin), the upsampled
backward map takes one side or the other, never a line of coordinates in between (which showed
as a dark 1-px outline round the lips), and the colours there are feathered by a pixel."""

from __future__ import annotations

import numpy as np

from avatar.render.warp import _feather, upsample_map


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
