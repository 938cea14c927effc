"""Fine facial motion from the driver's optical flow, added to the warp's landmark-driven map.

For every pixel of the animated face, the mesh gives a matching point on the current driving
face and one on the reference driving face. Where the driver's optical flow (current →
reference, :mod:`avatar.motion.flow`) lands away from the mesh's reference point, the mesh
missed part of the motion (skin moving inside a triangle, the tracker's jitter); that residual,
turned into the portrait's frame by the head's similarity (driver reference → portrait) and
capped at :data:`CAP` of the crop, moves the portrait's sampling point too.

Kept out on purpose: lips and eyes (opening mouths and blinks occlude, so flow there is
wrong, and the landmarks already move them well), anything outside the face (the driver's
hair, neck and collar sit elsewhere than the portrait's, and their motion printed onto the
portrait tears it), and large residuals (where flow and landmarks disagree by more than a
few pixels, the flow is the likelier one to be wrong). One similarity for the whole face,
not one linear map per triangle: thin triangles of a turned face would magnify the residual
and tear it at their edges.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from ..face import topology
from ..motion.decompose import canonical_template, fit_similarity, stable_ids
from ..motion.flow import DriverFlow
from ..types import FaceCrop
from .triangles import dense_map

CAP = 0.008   # largest correction, × the crop size (4 px at 512)
FADE = 6.0    # the correction fades in over this many map pixels from the excluded parts and the outline
SMOOTH = 3.0  # Gaussian sigma (map pixels) of the residual, against flicker


@lru_cache(maxsize=1)
def _excluded() -> np.ndarray:
    """(N,) bool over landmarks: every point of the lips and eyes, i.e. inside the hull of the lips
    or of either eye on the canonical face (the mesh has rings of points inside the lip contours),
    and the iris points the eye fans use."""
    m = topology.mesh()
    tpl = canonical_template()[:, :2].astype(np.float32)
    out = np.zeros(len(tpl), bool)
    for ids in (m["lips"], *m["eye_loops"]):
        hull = cv2.convexHull(tpl[ids])
        out |= np.array([cv2.pointPolygonTest(hull, (float(x), float(y)), True) > -1e-3 for x, y in tpl])
    out[np.concatenate([m["lips"], m["mouth_loop"], m["eyes"], *m["eye_loops"]])] = True
    return np.concatenate([out, np.ones(max(478 - len(out), 0), bool)])


def _shifted(affine: np.ndarray, x0: int, y0: int) -> np.ndarray:
    """(T, 3, 2) affines of [u v 1] re-based so that window pixel (0, 0) is map pixel (x0, y0)."""
    out = affine.copy()
    out[:, 2] += x0 * affine[:, 0] + y0 * affine[:, 1]
    return out


class FaceDetail:
    """Per-frame correction of the warp's backward map inside the face (one driving stream)."""

    def __init__(self) -> None:
        self.flow = DriverFlow()
        # (reference landmarks, source vertices, the (2, 2) linear map between them): both stay
        # the same object for a whole stream
        self._lin: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def _reference_to_source(self, reference: np.ndarray, source: np.ndarray) -> np.ndarray:
        """(2, 2) float32 row-vector map of an offset at the driver's reference face to the
        portrait's (the similarity fitted on the skull's landmarks); kept while both stay."""
        cached = self._lin  # one read: other threads may replace it meanwhile
        if cached is None or cached[0] is not reference or cached[1] is not source:
            ids = stable_ids()
            s, r, _ = fit_similarity(reference[ids, :2].astype(np.float64), source[ids].astype(np.float64))
            cached = self._lin = (reference, source, (s * r[:2, :2]).T.astype(np.float32))
        return cached[2]

    def correction(self, index: np.ndarray, first: int, triangles: np.ndarray, inverse: np.ndarray,
                   source: np.ndarray, driving: FaceCrop, reference: FaceCrop) -> tuple[np.ndarray, np.ndarray, tuple[int, int]] | None:
        """Source-pixel offsets to add to a backward map window.

        Args:
            index: (h, w) rasterised triangle ids of the map (1 + row of ``triangles``; 0 = none).
            first: rows of ``triangles`` from this one on are face triangles (earlier: outer).
            triangles: (T, 3) landmark / control-point ids of the drawn triangles.
            inverse: (T, 3, 3) inverses of their homogeneous target corners in map pixels.
            source: (V, 2) source-crop positions of the vertices.
            driving, reference: the current and the reference driving crops.

        Returns:
            (dx, dy, (x0, y0)): (h', w') float32 offsets in source-crop pixels for the map window
            starting at (x0, y0), or None when no face pixel takes a correction.
        """
        face = triangles[first:]
        usable = ~_excluded()[face].any(1)
        if not usable.any():
            return None
        rows = np.zeros(len(triangles) + 1, np.int32)  # index → 1 + face row, 0 for outer or excluded
        rows[first + 1:] = np.where(usable, np.arange(1, len(face) + 1), 0)
        ids = rows[index]
        x0, y0, w, h = cv2.boundingRect((ids > 0).view(np.uint8))  # a tenth of np.nonzero's time
        if w == 0 or h == 0:
            return None
        x1, y1 = x0 + w, y0 + h
        sub = ids[y0:y1, x0:x1]
        inv = inverse[first:]
        now = driving.landmarks[:, :2].astype(np.float64)
        then = reference.landmarks[:, :2].astype(np.float64)
        qx, qy = dense_map(sub, _shifted(inv @ now[face], x0, y0))    # matching point, current driver
        rx, ry = dense_map(sub, _shifted(inv @ then[face], x0, y0))   # and on the reference driver
        fx, fy = self.flow(driving, reference).at(qx, qy)
        ex, ey = qx + fx - rx, qy + fy - ry  # where the flow says it came from, beyond the mesh
        # flow is noisy pixel to pixel and frame to frame: average over the usable face only
        w = (sub > 0).astype(np.float32)
        den = cv2.GaussianBlur(w, (0, 0), SMOOTH) + 1e-6
        ex = cv2.GaussianBlur(ex * w, (0, 0), SMOOTH) / den
        ey = cv2.GaussianBlur(ey * w, (0, 0), SMOOTH) / den
        cap = CAP * driving.image.shape[0]
        k = np.minimum(1.0, cap / np.maximum(np.hypot(ex, ey), 1e-6))
        lin = self._reference_to_source(reference.landmarks, source)
        ex, ey = ex * k, ey * k
        dx = ex * lin[0, 0] + ey * lin[1, 0]
        dy = ex * lin[0, 1] + ey * lin[1, 1]
        inside = np.pad((sub > 0).astype(np.uint8), 1)  # beyond the window nothing takes a correction
        fade = np.clip(cv2.distanceTransform(inside, cv2.DIST_L2, 3)[1:-1, 1:-1] / FADE, 0.0, 1.0)
        return (fade * dx).astype(np.float32), (fade * dy).astype(np.float32), (x0, y0)
