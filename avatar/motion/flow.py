"""Dense motion of the driver since its reference frame: optical flow between driving crops.

Landmarks say where 478 points of the driver's face went; the skin between them moves in
ways a piecewise-affine mesh cannot follow (cheeks bunching in a smile, brows creasing), and
the tracker's own noise moves the mesh by a pixel or two where nothing moved. DIS optical flow
(OpenCV) between the driving crop and its reference measures that motion densely, so the warp
engine can carry the fine part over (see :mod:`avatar.render.detail`). The flow is computed at
half the crop's resolution and only over the faces' box: about 3 ms at 512 on two CPU cores.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..types import FaceCrop

SCALE = 0.5    # flow resolution relative to the crop
MARGIN = 0.12  # around the box of both faces, × the crop size


@dataclass(frozen=True, eq=False)
class Flow:
    """Backward flow over a window of a driving crop: ``current(q) ≈ reference(q + flow(q))``.

    Attributes:
        field: (h, w, 2) float32 displacements in crop pixels, sampled at flow-grid pixels.
        origin: (x, y) flow-grid pixel of the window's top-left corner.
        scale: flow-grid pixels per crop pixel.
    """

    field: np.ndarray
    origin: tuple[int, int]
    scale: float

    def at(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Displacements (crop pixels) at crop positions ``x``, ``y`` (float32 arrays of one shape);
        zero outside the window."""
        s = self.scale
        u = ((x + 0.5) * s - 0.5 - self.origin[0]).astype(np.float32)
        v = ((y + 0.5) * s - 0.5 - self.origin[1]).astype(np.float32)
        d = cv2.remap(self.field, u, v, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return d[..., 0], d[..., 1]


class DriverFlow:
    """Optical flow of a stream of driving crops to their reference crop (caches the reference)."""

    def __init__(self, scale: float = SCALE) -> None:
        self.scale = scale
        self._ref: tuple[np.ndarray, np.ndarray] | None = None  # (reference image, its grey at flow scale)

    def _grey(self, image: np.ndarray) -> np.ndarray:
        n = max(int(round(image.shape[0] * self.scale)), 16)
        return cv2.resize(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), (n, n), interpolation=cv2.INTER_AREA)

    def __call__(self, driving: FaceCrop, reference: FaceCrop) -> Flow:
        cached = self._ref  # one read: other threads may replace it meanwhile
        if cached is None or cached[0] is not reference.image:
            cached = self._ref = (reference.image, self._grey(reference.image))
        grey_ref = cached[1]
        grey_now = self._grey(driving.image)
        n = grey_now.shape[0]
        s = n / driving.image.shape[0]
        pts = np.concatenate([driving.landmarks[:, :2], reference.landmarks[:, :2]]) * s
        pad = MARGIN * n
        x0, y0 = np.clip(np.floor(pts.min(0) - pad).astype(int), 0, n - 1)
        x1, y1 = np.clip(np.ceil(pts.max(0) + pad).astype(int) + 1, 1, n)
        if x1 - x0 < 16 or y1 - y0 < 16:  # a face (nearly) outside the crop: nothing to measure
            x0, y0, x1, y1 = 0, 0, n, n
        dis = dis_solver()
        field = dis.calc(np.ascontiguousarray(grey_now[y0:y1, x0:x1]), np.ascontiguousarray(grey_ref[y0:y1, x0:x1]), None)
        return Flow(field * (1.0 / s), (int(x0), int(y0)), s)


def dis_solver() -> cv2.DISOpticalFlow:
    """DIS down to the finest scale, 8-px patches every 4 px, no variational refinement: on the
    eval clips as accurate as denser patches or refining (each costs about twice as much) and far
    more accurate than the coarser presets. A new instance per call (creating one costs
    microseconds): an instance is not thread-safe."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    dis.setFinestScale(0)
    dis.setPatchSize(8)
    dis.setPatchStride(4)
    dis.setGradientDescentIterations(25)
    dis.setVariationalRefinementIterations(0)
    return dis
