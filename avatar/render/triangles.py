"""Piecewise-affine maps over triangle meshes: per-triangle affines, rasterised triangle ids,
and the dense map they make. Shared by the warp and the shading transfer."""

from __future__ import annotations

import cv2
import numpy as np


def signed_areas(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(T,) twice the signed area of each (T, 3) index triangle over (V, 2+) ``points``; the sign
    is the winding (which way the triangle faces)."""
    a, b, c = points[triangles[:, 0]], points[triangles[:, 1]], points[triangles[:, 2]]
    return (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])


def polygon_area(pts: np.ndarray) -> float:
    """Area of the polygon with (K, 2+) corners ``pts`` in order (shoelace)."""
    x, y = pts[:, 0], pts[:, 1]
    return float(0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def coverage(poly: np.ndarray, x0: int, y0: int, w: int, h: int, ss: int = 4) -> np.ndarray:
    """(h, w) float32 anti-aliased coverage in [0, 1] of the (K, 2) polygon ``poly`` (crop px)
    over the box at (x0, y0): the polygon filled at ``ss`` × ``ss`` samples a pixel and averaged."""
    mask = np.zeros((h * ss, w * ss), np.uint8)
    pts = np.round(((poly - [x0, y0]) * ss + (ss - 1) / 2) * 16).astype(np.int32)  # pixel centres of the supersampled grid
    cv2.fillPoly(mask, [pts], 255, cv2.LINE_8, shift=4)  # hard samples: their mean is the covered share
    return cv2.resize(mask, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def inverse_homogeneous(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverses of the (T, 3, 3) matrices with rows [u_k, v_k, 1] for (T, 3, 2) triangles, in
    closed form (a batched LAPACK solve costs more than the whole rasterisation), and their
    determinants; rows of degenerate triangles are meaningless and must be dropped by det."""
    a, b = p[:, 0, 0], p[:, 0, 1]
    d, e = p[:, 1, 0], p[:, 1, 1]
    g, h = p[:, 2, 0], p[:, 2, 1]
    det = a * (e - h) - b * (d - g) + (d * h - e * g)
    adj = np.stack([
        np.stack([e - h, h - b, b - e], -1),
        np.stack([g - d, a - g, d - a], -1),
        np.stack([d * h - e * g, b * g - a * h, a * e - b * d], -1),
    ], 1)
    safe = np.where(np.abs(det) > 1e-12, det, 1.0)
    return adj / safe[:, None, None], det


def rasterise(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) int32 map of 1 + the index of the (T, 3, 2) triangle covering each pixel (0 = none);
    later triangles are drawn over earlier ones."""
    index = np.zeros(shape, np.int32)
    pts = np.round(points * 16).astype(np.int32)  # 4 fractional bits
    fill = cv2.fillConvexPoly
    # ~1300 calls a frame: positional arguments halve the binding's overhead per call (keywords cost 0.4 us)
    for k, tri in enumerate(pts, 1):
        fill(index, tri, k, cv2.LINE_8, 4)
    return index


def _channels(index: np.ndarray, affine: np.ndarray, origin: tuple[int, int]) -> list[np.ndarray]:
    """Per channel c of the (T, 3, C) affines, an (H, W) float32 array: pixel (u, v) of triangle k
    gets [u v 1] @ affine[k][:, c]; 0 where ``index`` is 0."""
    h, w = index.shape
    uu, vv = _axes(h, w, *origin)
    # one contiguous table per coefficient, gathered separately: a third of the time of gathering
    # (h, w, 3, C) blocks and slicing them, with the same arithmetic
    table = np.zeros((affine.shape[2], 3, len(affine) + 1), np.float32)
    table[..., 1:] = affine.transpose(2, 1, 0)  # (C, u / v / 1 term, T)
    # uu·tu + vv·tv + t1 in that order, in place (no temporaries); "clip" gathers without the
    # bounds check ids 0..T never need: 0.68 → 0.40 ms for two channels of a 256² map
    out, term = [], np.empty(index.shape, np.float32)
    for tu, tv, t1 in table:
        field = np.take(tu, index, mode="clip")
        field *= uu
        field += np.multiply(np.take(tv, index, out=term, mode="clip"), vv, out=term)
        field += np.take(t1, index, out=term, mode="clip")
        out.append(field)
    return out


def dense_map(index: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mx, my) float32 maps: pixel (u, v) of triangle k goes to [u v 1] @ affine[k]; (0, 0) where
    ``index`` is 0 (callers decide what uncovered pixels get)."""
    mx, my = _channels(index, affine, (0, 0))
    return mx, my


def _axes(h: int, w: int, x0: int, y0: int) -> tuple[np.ndarray, np.ndarray]:
    """(1, w) column and (h, 1) row coordinates that broadcast to the (h, w) pixel grid."""
    return np.arange(x0, x0 + w, dtype=np.float32)[None, :], np.arange(y0, y0 + h, dtype=np.float32)[:, None]


def dense_field(index: np.ndarray, affine: np.ndarray, origin: tuple[int, int] = (0, 0)) -> np.ndarray:
    """(H, W, C) float32: pixel (u, v) of triangle k gets [u v 1] @ affine[k] for (T, 3, C)
    per-triangle affines (any per-vertex values interpolated linearly); 0 where ``index`` is 0.
    ``index`` may be a window of a larger map whose pixel (0, 0) is ``origin`` (x, y) there."""
    return np.stack(_channels(index, affine, origin), axis=-1)


def map_stretch(mx: np.ndarray, my: np.ndarray, ys: np.ndarray, xs: np.ndarray, step: float = 1.0) -> np.ndarray:
    """(N,) float32: how far the backward map ``mx``, ``my`` ((H, W) float32 source px, one
    sample per ``step`` output px) draws its source out at its pixels (``ys``, ``xs``), in output
    px per source px along the most stretched direction (1 / the smaller singular value of its
    Jacobian, from central differences; one-sided at the map's edge)."""
    h, w = mx.shape
    x0, x1 = np.maximum(xs - 1, 0), np.minimum(xs + 1, w - 1)
    y0, y1 = np.maximum(ys - 1, 0), np.minimum(ys + 1, h - 1)
    kx = (1.0 / (step * np.maximum(x1 - x0, 1))).astype(np.float32)
    ky = (1.0 / (step * np.maximum(y1 - y0, 1))).astype(np.float32)
    a, c = (mx[ys, x1] - mx[ys, x0]) * kx, (my[ys, x1] - my[ys, x0]) * kx
    b, d = (mx[y1, xs] - mx[y0, xs]) * ky, (my[y1, xs] - my[y0, xs]) * ky
    least = 0.5 * np.abs(np.hypot(a + d, c - b) - np.hypot(a - d, c + b))
    return 1.0 / np.maximum(least, 1e-3)
