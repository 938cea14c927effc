"""Paste-back: blend an animated crop into the full-resolution portrait without a visible box."""

from __future__ import annotations

import cv2
import numpy as np

from .crop import invert_affine


def feather_mask(size: int, margin: float = 0.12, sides: tuple[bool, bool, bool, bool] = (True, True, True, True)
                 ) -> np.ndarray:
    """(S, S) float32 mask: 1 inside, a cosine ramp over ``margin`` of the side to 0 at the edge,
    on each of the ``sides`` (left, top, right, bottom) that is True; the others stay 1."""
    ramp = max(int(round(size * margin)), 1)
    x = np.arange(size, dtype=np.float32)

    def profile(lo: bool, hi: bool) -> np.ndarray:
        d = np.minimum(x if lo else np.inf, (size - 1 - x) if hi else np.inf)
        r = np.clip(d / ramp, 0, 1)
        return 0.5 - 0.5 * np.cos(np.pi * r)

    left, top, right, bottom = sides
    return np.outer(profile(top, bottom), profile(left, right)).astype(np.float32)


class PasteBack:
    """Blends crops of one source back into that source frame.

    Args:
        frame: (H, W, 3) uint8 full portrait (already capped to the output size).
        crop_from_frame: (2, 3) affine of the crop.
        size: crop side in pixels.
        margin: feather width as a fraction of the crop side.
    """

    def __init__(self, frame: np.ndarray, crop_from_frame: np.ndarray, size: int, margin: float = 0.12,
                 source_crop: np.ndarray | None = None) -> None:
        self.frame = frame
        # where a crop equals the source crop the original pixels are kept, so resampling the
        # crop never blurs still background
        self._source_crop = None if source_crop is None else np.ascontiguousarray(source_crop, dtype=np.uint8)
        h, w = frame.shape[:2]
        inv = invert_affine(crop_from_frame)
        corners = np.array([[0, 0], [size - 1, size - 1]], np.float64) @ inv[:, :2].T + inv[:, 2]
        # the feather hides the crop's edge where there is picture beyond it; a side that lies
        # past the photo's own edge has nothing to hide, and feathering it blended the still
        # photo into the animation there (a tight portrait's moving hair left a ghost at its old edge)
        axis_aligned = abs(inv[0, 1]) < 1e-9 and abs(inv[1, 0]) < 1e-9
        sides = (True, True, True, True)
        if axis_aligned:
            (cx0, cy0), (cx1, cy1) = corners.min(0), corners.max(0)
            sides = (bool(cx0 > 0.5), bool(cy0 > 0.5), bool(cx1 < w - 1.5), bool(cy1 < h - 1.5))
        self._feather = feather_mask(size, margin, sides)
        x0 = int(np.clip(np.floor(corners[:, 0].min()), 0, w))
        y0 = int(np.clip(np.floor(corners[:, 1].min()), 0, h))
        x1 = int(np.clip(np.ceil(corners[:, 0].max()) + 1, 0, w))
        y1 = int(np.clip(np.ceil(corners[:, 1].max()) + 1, 0, h))
        self.roi = (x0, y0, x1, y1)
        self._m = inv.copy()
        self._m[:, 2] -= (x0, y0)  # frame_from_crop, shifted into the ROI
        self._size = (x1 - x0, y1 - y0)
        self._empty = not (x1 > x0 and y1 > y0)
        self._mask = None if self._empty else cv2.warpAffine(self._feather, self._m, self._size, flags=cv2.INTER_LINEAR)
        self._base = np.ascontiguousarray(frame[y0:y1, x0:x1])

    def __call__(self, crop: np.ndarray) -> np.ndarray:
        """(S, S, 3) uint8 crop → (H, W, 3) uint8 frame."""
        out = self.frame.copy()
        if self._empty:
            return out
        x0, y0, x1, y1 = self.roi
        flags = cv2.INTER_LINEAR if self._m[0, 0] >= 1 else cv2.INTER_AREA
        warped = cv2.warpAffine(crop, self._m, self._size, flags=flags, borderMode=cv2.BORDER_REPLICATE)
        mask = self._mask
        if self._source_crop is not None:
            mask = cv2.warpAffine(self.change_mask(crop), self._m, self._size, flags=cv2.INTER_LINEAR)
        out[y0:y1, x0:x1] = cv2.blendLinear(warped, self._base, mask, 1.0 - mask)
        return out

    def change_mask(self, crop: np.ndarray) -> np.ndarray:
        """(S, S) float32 soft mask of where ``crop`` differs from the source crop: 1 on every
        changed pixel (and a few around it), feathered outwards only."""
        size = crop.shape[0]
        diff = cv2.absdiff(crop, self._source_crop)
        diff = cv2.max(cv2.max(diff[..., 0], diff[..., 1]), diff[..., 2])
        k = max(3, (size // 64) | 1)
        grown = cv2.dilate(diff, np.ones((k, k), np.uint8))  # uint8: cheap at full resolution
        # ramp, blur and feather at a quarter of the resolution: the mask is smooth anyway
        q = max(size // 4, 1)
        small = cv2.resize(grown, (q, q), interpolation=cv2.INTER_AREA).astype(np.float32)
        m = cv2.GaussianBlur(np.clip((small - 2.0) / 6.0, 0.0, 1.0), (0, 0), k / 8)
        m = np.minimum(cv2.resize(m, (size, size), interpolation=cv2.INTER_LINEAR) * 1.5, 1.0)
        # ... but never below the change itself: averaged at a quarter of the resolution, a thin
        # band of change (the strip a moving head uncovers) stayed partial, and the original's
        # pixels there (the hair's old edge) showed through as a ghost
        sure = cv2.threshold(grown, 7, 255, cv2.THRESH_BINARY)[1]
        m = cv2.max(m, sure.astype(np.float32) * (1.0 / 255.0))
        return m * self._feather
