"""Closed-form inverse, convex-hull area, per-sample normalisation and best-frame search."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial import ConvexHull

from avatar.render.fomm.blocks import Keypoints, inv2x2
from avatar.render.fomm.motion import (
    best_frame_index,
    convex_hull_area,
    movement_scale,
    normalize_kp,
)


def test_inv2x2_matches_linalg_inv():
    g = torch.Generator().manual_seed(0)
    m = torch.eye(2) + 0.4 * torch.randn(4096, 2, 2, generator=g)
    m = m[torch.linalg.cond(m) < 50]
    assert len(m) > 3000
    assert torch.allclose(inv2x2(m), torch.linalg.inv(m), atol=1e-4, rtol=1e-4)
    m64 = m.double()
    assert torch.allclose(inv2x2(m64), torch.linalg.inv(m64), atol=1e-12, rtol=1e-10)
    batched = m[:3000].view(30, 100, 2, 2)
    assert torch.equal(inv2x2(batched), inv2x2(m[:3000]).view(30, 100, 2, 2))


def test_inv2x2_singular_is_finite():
    sing = torch.tensor([[[1.0, 2.0], [2.0, 4.0]], [[0.0, 0.0], [0.0, 0.0]]])
    assert torch.isfinite(inv2x2(sing)).all()


def test_convex_hull_area_matches_scipy():
    rng = np.random.default_rng(0)
    pts = rng.uniform(-1, 1, size=(64, 10, 2)).astype(np.float32)
    want = np.array([ConvexHull(p.astype(np.float64)).volume for p in pts])
    got = convex_hull_area(torch.from_numpy(pts)).double().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_convex_hull_area_degenerate_sets():
    square = [[0, 0], [2, 0], [2, 2], [0, 2]]
    cases = {
        "collinear points on an edge": (square + [[1, 0], [2, 1]], 4.0),
        "duplicates": (square + [[2, 2], [0, 0], [1, 1]], 4.0),
        "all on a line": ([[0, 0], [1, 1], [2, 2], [3, 3]], 0.0),
    }
    for name, (pts, area) in cases.items():
        got = convex_hull_area(torch.tensor([pts], dtype=torch.float32)).item()
        assert got == pytest.approx(area, abs=1e-6), name


def _random_kp(b: int, seed: int) -> Keypoints:
    g = torch.Generator().manual_seed(seed)
    value = torch.rand(b, 10, 2, generator=g) * 1.6 - 0.8
    jac = torch.eye(2) + 0.3 * torch.randn(b, 10, 2, 2, generator=g)
    return Keypoints(value, jac)


def test_normalisation_is_per_sample():
    src, drv, init = _random_kp(2, 1), _random_kp(2, 2), _random_kp(2, 3)
    init = Keypoints(init.value * torch.tensor([0.5, 1.5]).view(2, 1, 1), init.jacobian)  # very different scales
    flags = {"adapt_movement_scale": True, "use_relative_movement": True, "use_relative_jacobian": True}
    both = normalize_kp(src, drv, init, **flags)
    for i in range(2):
        one = normalize_kp(*(Keypoints(k.value[i : i + 1], k.jacobian[i : i + 1]) for k in (src, drv, init)), **flags)
        assert torch.allclose(both.value[i], one.value[0], atol=1e-6)
        assert torch.allclose(both.jacobian[i], one.jacobian[0], atol=1e-6)
    s = movement_scale(src.value, init.value)
    assert not torch.isclose(s[0], s[1], rtol=0.1)  # the upstream quirk (sample 0's scale for all) would differ


def test_relative_identities():
    src, drv = _random_kp(3, 4), _random_kp(3, 5)
    out = normalize_kp(src, drv, drv, adapt_movement_scale=True, use_relative_movement=True, use_relative_jacobian=True)
    assert torch.equal(out.value, src.value)  # reference frame → exactly the source keypoints
    assert torch.allclose(out.jacobian, src.jacobian, atol=1e-5)
    assert normalize_kp(src, drv, src, adapt_movement_scale=True) is drv  # absolute: unchanged


def test_movement_scale_of_scaled_copy():
    src = _random_kp(1, 6).value
    assert movement_scale(src, 0.5 * src + 0.1).item() == pytest.approx(2.0, rel=1e-5)


def test_best_frame_index_finds_similar_shape():
    g = torch.Generator().manual_seed(7)
    source = torch.rand(68, 2, generator=g) * 100
    frames = torch.rand(6, 68, 2, generator=g) * 100
    angle = math.radians(3)
    rot = torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    frames[4] = (source @ rot.T) * 1.7 + torch.tensor([30.0, -12.0]) + 0.2 * torch.randn(68, 2, generator=g)
    z = torch.zeros(6, 68, 1)
    assert int(best_frame_index(source, torch.cat([frames, z], dim=-1))) == 4  # a z column is ignored
