"""Square face crops: affine maths between frame and crop pixels, and a steady crop for video.

Convention: pixel centres at integer coordinates; ``crop_from_frame`` is a (2, 3) affine
mapping frame pixels to crop pixels (scale and translation only: crops are axis-aligned so
that paste-back never rotates the background).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from ..config import FaceConfig
from ..types import FaceCrop


def crop_box(landmarks: np.ndarray, config: FaceConfig) -> tuple[float, float, float]:
    """(centre x, centre y, side) of the square crop around (N, 2+) landmarks in frame pixels."""
    lo = landmarks[:, :2].min(0)
    hi = landmarks[:, :2].max(0)
    w, h = hi - lo
    cx = 0.5 * (lo[0] + hi[0])
    cy = 0.5 * (lo[1] + hi[1]) + config.vertical_offset * h
    return float(cx), float(cy), float(config.crop_scale * max(w, h))


def crop_matrix(box: tuple[float, float, float], size: int) -> np.ndarray:
    """(2, 3) crop_from_frame for a (cx, cy, side) box rendered at ``size`` pixels."""
    cx, cy, side = box
    k = size / side
    # frame point (cx, cy) → crop centre (size - 1) / 2
    return np.array([[k, 0.0, (size - 1) / 2 - k * cx], [0.0, k, (size - 1) / 2 - k * cy]])


def frame_rect(crop_from_frame: np.ndarray, frame_size: tuple[int, int], size: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): the crop pixels that lie inside the frame (the rest were replicated from
    its edge by :func:`make_crop`)."""
    k, tx, ty = float(crop_from_frame[0, 0]), float(crop_from_frame[0, 2]), float(crop_from_frame[1, 2])
    h, w = frame_size
    x0, x1 = math.ceil(tx - 0.5 * k - 1e-6), math.floor(tx + (w - 0.5) * k + 1e-6)
    y0, y1 = math.ceil(ty - 0.5 * k - 1e-6), math.floor(ty + (h - 0.5) * k + 1e-6)
    return max(x0, 0), max(y0, 0), min(max(x1, 0), size), min(max(y1, 0), size)


def mirror_outside(image: np.ndarray, rect: tuple[int, int, int, int]) -> np.ndarray:
    """``image`` with everything outside ``rect`` mirrored from inside it (not replicated): hair
    cut by the frame's edge continues as hair, not as streaks of its last row."""
    x0, y0, x1, y1 = rect
    h, w = image.shape[:2]
    if (x0, y0, x1, y1) == (0, 0, w, h) or x1 - x0 < 2 or y1 - y0 < 2:
        return image
    return cv2.copyMakeBorder(image[y0:y1, x0:x1], y0, h - y1, x0, w - x1, cv2.BORDER_REFLECT_101)


def distance_inside(rect: tuple[int, int, int, int], size: int) -> np.ndarray:
    """(size, size) float32: each crop pixel's distance (px) inside the photo ``rect`` from its
    nearest edge that cuts the crop (negative past it); inf where no edge cuts the crop."""
    x0, y0, x1, y1 = rect
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    edge = np.full((size, size), np.inf, np.float32)
    for cut, at in ((x0 > 0, xx - x0), (y0 > 0, yy - y0), (x1 < size, x1 - 1 - xx), (y1 < size, y1 - 1 - yy)):
        if cut:
            edge = np.minimum(edge, at)
    return edge


def invert_affine(m: np.ndarray) -> np.ndarray:
    """Inverse of a (2, 3) affine."""
    return cv2.invertAffineTransform(m.astype(np.float64))


def transform_points(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) scale-translation affine to (N, 2|3) points; z is scaled with x."""
    out = pts.astype(np.float32).copy()
    out[:, :2] = pts[:, :2] @ m[:, :2].T + m[:, 2]
    if pts.shape[1] > 2:
        out[:, 2] = pts[:, 2] * float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    return out


def make_crop(frame: np.ndarray, landmarks: np.ndarray, crop_from_frame: np.ndarray, size: int) -> FaceCrop:
    """Cut the crop (edge pixels replicated where it leaves the frame) and map the landmarks into it."""
    if crop_from_frame[0, 0] < 0.5:  # strong downscale: warpAffine's INTER_AREA is not anti-aliased
        img = _downscaled_crop(frame, crop_from_frame, size)
    else:
        img = cv2.warpAffine(frame, crop_from_frame, (size, size), flags=cv2.INTER_AREA if crop_from_frame[0, 0] < 1 else cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REPLICATE)
    return FaceCrop(img, transform_points(crop_from_frame, landmarks), crop_from_frame, frame.shape[:2])


def _downscaled_crop(frame: np.ndarray, m: np.ndarray, size: int) -> np.ndarray:
    inv = invert_affine(m)
    side = inv[0, 0] * size
    x0, y0 = inv[0, 2], inv[1, 2]
    h, w = frame.shape[:2]
    xi, yi = int(np.floor(x0)), int(np.floor(y0))
    n = int(np.ceil(side)) + 1
    # the n×n frame region at (xi, yi), edge pixels replicated where it leaves the frame
    sx0, sy0, sx1, sy1 = max(xi, 0), max(yi, 0), min(xi + n, w), min(yi + n, h)
    if sx1 <= sx0 or sy1 <= sy0:  # entirely outside the frame: the nearest edge pixels
        sx0, sy0 = min(max(xi, 0), w - 1), min(max(yi, 0), h - 1)
        sx1, sy1 = sx0 + 1, sy0 + 1
    sub = frame[sy0:sy1, sx0:sx1]
    region = cv2.copyMakeBorder(sub, max(sy0 - yi, 0), max(yi + n - sy1, 0), max(sx0 - xi, 0), max(xi + n - sx1, 0),
                                cv2.BORDER_REPLICATE)[: n, : n]
    scale = size / side
    small = cv2.resize(region, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    # residual sub-pixel shift
    shift = np.array([[1.0, 0, -(x0 - xi) * scale], [0, 1.0, -(y0 - yi) * scale]])
    return cv2.warpAffine(small, shift, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


class DrivingCrop:
    """Crops of a driving video for image-driven engines (FOMM, ONNX).

    One box, fixed at the first face and never moved, so the head moves inside the crop as it
    moved in front of the camera (relative motion needs that) and the crop cannot jitter. The
    reference for relative motion is the first crop, or, given ``reference_frame`` and
    ``reference_landmarks`` (the best reference frame of a file), that frame cut by the same box.
    """

    def __init__(self, config: FaceConfig, reference_frame: np.ndarray | None = None,
                 reference_landmarks: np.ndarray | None = None) -> None:
        self.config = config
        self.matrix: np.ndarray | None = None
        self.reference: FaceCrop | None = None
        self._chosen = None if reference_frame is None or reference_landmarks is None else (reference_frame, reference_landmarks)

    def __call__(self, frame: np.ndarray, landmarks: np.ndarray | None) -> FaceCrop:
        """The crop of ``frame``; ``landmarks`` None (no face found) keeps the reference's in their place."""
        if self.matrix is None:
            if landmarks is None:
                raise ValueError("the first driving crop needs a face")
            self.matrix = crop_matrix(crop_box(landmarks, self.config), self.config.size)
            if self._chosen is not None:
                self.reference = make_crop(self._chosen[0], self._chosen[1], self.matrix, self.config.size)
        if landmarks is None:
            landmarks = transform_points(invert_affine(self.matrix), self.reference.landmarks)
        crop = make_crop(frame, landmarks, self.matrix, self.config.size)
        if self.reference is None:
            self.reference = crop
        return crop

    def reset(self) -> None:
        """Start over: the next face fixes a new box and its first crop is the reference."""
        self.matrix = self.reference = self._chosen = None
