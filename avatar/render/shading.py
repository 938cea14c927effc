"""Relative shading: the driver's change in low-frequency brightness since its reference frame,
carried onto the animated face.

A warp moves the portrait's pixels but keeps their shading, so a head that turns away from
the light, a frown's shadows or a dark open mouth never change its brightness. This takes the
driver's own change instead, as relative motion does for geometry: for each pixel of the
animated face, the blurred luminance of the matching point of the current driving face over
that of the reference driving face (points matched through the face mesh), clamped to
:data:`GAIN_RANGE` and faded out at the face outline. Absolute brightness, skin tone and the
driver's lighting never transfer, only their change. The blur is wide and the range narrow on
purpose: what covers the driver's face (a lock of hair, a hand, glasses catching the light)
changes its brightness too, and must not print onto the portrait as a stain.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from ..face import topology
from ..types import FaceCrop
from .triangles import dense_map, inverse_homogeneous, rasterise

GAIN_RANGE = (0.85, 1.2)
SCALE = 0.25     # the gain is computed at this fraction of the crop size: it is smooth
BLUR = 0.032     # Gaussian sigma of the luminance and of the gain, × the crop size (16 px at 512)


@lru_cache(maxsize=1)
def coarse_triangles() -> np.ndarray:
    """(T, 3) landmark triangles of a coarse mesh over the face: the oval and every fourth other
    landmark, Delaunay-triangulated on the canonical face. The gain is smooth, so ~200 triangles
    serve as well as the face mesh's ~900 and rasterise four times faster."""
    from scipy.spatial import Delaunay

    from ..motion.decompose import canonical_template

    tpl = canonical_template()[:, :2]
    oval = topology.mesh()["oval"]
    ids = np.union1d(oval, np.arange(0, 468, 4))
    tris = ids[Delaunay(tpl[ids]).simplices]
    poly = tpl[oval].astype(np.float32).reshape(-1, 1, 2)
    centres = tpl[tris].mean(1)
    inside = np.array([cv2.pointPolygonTest(poly, (float(x), float(y)), False) >= 0 for x, y in centres])
    return tris[inside]


def _luminance(image: np.ndarray, size: int) -> np.ndarray:
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    small = cv2.resize(grey, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
    return cv2.GaussianBlur(small, (0, 0), BLUR * size)


def _exposure(driving: FaceCrop, reference: FaceCrop, lum_now: np.ndarray, lum_ref: np.ndarray) -> float:
    """The driver's whole-picture brightness change (a webcam's auto-exposure, a dimmer room):
    the median luminance ratio over the background, away from the face in both crops. It is
    divided out, so only light that changes on the face itself transfers. 1 when too little
    background shows."""
    q = lum_now.shape[0]
    face = np.zeros((q, q), np.uint8)
    oval = topology.mesh()["oval"]
    for crop in (driving, reference):
        pts = (crop.landmarks[oval, :2] + 0.5) * (q / crop.image.shape[0]) - 0.5
        cv2.fillPoly(face, [np.round(pts).astype(np.int32)], 1)
    grow = max(3, int(4 * BLUR * q) | 1)  # beyond the blur's reach, and past hair and neck near the face
    background = cv2.dilate(face, np.ones((grow, grow), np.uint8)) == 0
    if background.mean() < 0.05:
        return 1.0
    ratio = float(np.median((lum_now[background] + 1.0) / (lum_ref[background] + 1.0)))
    return float(np.clip(ratio, 0.5, 2.0))


class ShadingTransfer:
    """Per-frame gain maps for one stream of driving crops (keeps the reference's luminance)."""

    def __init__(self) -> None:
        self._ref: tuple[np.ndarray, np.ndarray] | None = None  # (reference image, its luminance)

    def gain(self, landmarks: np.ndarray, size: int, driving: FaceCrop, reference: FaceCrop) -> np.ndarray:
        """(S, S) float32 gain for an S-pixel output crop posed as ``landmarks`` (478, 2+)."""
        q = max(int(round(size * SCALE)), 8)
        tris = coarse_triangles()
        tgt = (landmarks[:, :2] + 0.5) * (q / size) - 0.5
        inv, det = inverse_homogeneous(tgt[tris])
        ok = np.abs(det) > 1e-6
        tris, inv = tris[ok], inv[ok]
        index = rasterise(tgt[tris], (q, q))
        cached = self._ref  # one read: other threads may replace it meanwhile
        if cached is None or cached[0] is not reference.image or cached[1].shape[0] != q:
            cached = self._ref = (reference.image, _luminance(reference.image, q))
        lum_ref = cached[1]
        lum_now = _luminance(driving.image, q)
        now, then = (
            cv2.remap(lum, *dense_map(index, inv @ ((crop.landmarks[:, :2] + 0.5) * (q / crop.image.shape[0]) - 0.5)[tris]),
                      cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            for crop, lum in ((driving, lum_now), (reference, lum_ref))
        )  # the driver's blurred luminance at each output face pixel's matching point, now and at the reference
        g = np.where(index > 0, (now + 1.0) / (then + 1.0) / _exposure(driving, reference, lum_now, lum_ref), 1.0).astype(np.float32)
        g = cv2.GaussianBlur(np.clip(g, *GAIN_RANGE), (0, 0), BLUR * q)  # also fades it out at the outline
        return cv2.resize(g, (size, size), interpolation=cv2.INTER_LINEAR)

    def apply(self, image: np.ndarray, landmarks: np.ndarray, driving: FaceCrop, reference: FaceCrop) -> np.ndarray:
        """``image`` (S, S, 3) uint8 with the driver's shading change applied."""
        size = image.shape[0]
        g = self.gain(landmarks, size, driving, reference)
        # the gain is 1 beyond a few blur widths of the face: scale only the box around it
        pad = int(4 * BLUR * size) + 2
        x0, y0 = np.clip(np.floor(landmarks[:, :2].min(0)).astype(int) - pad, 0, size)
        x1, y1 = np.clip(np.ceil(landmarks[:, :2].max(0)).astype(int) + pad, 0, size)
        out = image.copy()
        gain = cv2.cvtColor(np.ascontiguousarray(g[y0:y1, x0:x1]), cv2.COLOR_GRAY2RGB)
        out[y0:y1, x0:x1] = cv2.multiply(image[y0:y1, x0:x1], gain, dtype=cv2.CV_8U)  # rounds and saturates
        return out
