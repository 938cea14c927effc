"""The quality bench's edge-at-rest table: how far the unmoved layers are from the portrait's crop."""

from types import SimpleNamespace

import numpy as np

from avatar.bench.quality import edge_at_rest
from avatar.render.layers import Layers


def _state(f_level: float) -> SimpleNamespace:
    """A 64-px crop: a dark disc with a half-covered ring on a light wall; the layers' edge colour
    is ``f_level`` (40 gives the photo back)."""
    size = 64
    yy, xx = np.mgrid[0:size, 0:size]
    r = np.hypot(xx - 32, yy - 32)
    alpha = np.where(r < 14, 1.0, np.where(r < 17, 0.5, 0.0)).astype(np.float32)
    image = np.round(alpha[..., None] * 40.0 + (1 - alpha[..., None]) * 200.0).astype(np.uint8).repeat(3, -1)
    fg = np.where(alpha[..., None] == 1.0, 40.0, f_level)
    a8 = np.round(alpha * 255).astype(np.uint8)
    premultiplied = np.round(fg * a8[..., None] / 255.0).astype(np.uint8).repeat(3, -1)
    plate = np.full((size, size, 3), 200, np.uint8)
    return SimpleNamespace(image=image, layers=Layers(np.dstack([premultiplied, a8]), plate, alpha))


def test_edge_at_rest_tells_an_exact_edge_from_a_pale_one():
    pixels, share, p99 = edge_at_rest(_state(40.0))
    assert pixels > 100 and share == 0.0 and p99 <= 1
    pixels, share, p99 = edge_at_rest(_state(100.0))  # held near a paler colour: 30 levels off
    assert share == 1.0 and 29 <= p99 <= 31
    assert edge_at_rest(SimpleNamespace(image=None, layers=None)) is None
