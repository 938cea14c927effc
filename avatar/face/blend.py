"""Paste-back: blend an animated crop into the full-resolution portrait without a visible box."""

from __future__ import annotations

import cv2
import numpy as np

from .crop import invert_affine


def feather_mask(size: int, margin: float = 0.12) -> np.ndarray:
    """(S, S) float32 mask: 1 inside, a cosine ramp over ``margin`` of the side to 0 at the edge."""
    ramp = max(int(round(size * margin)), 1)
    x = np.arange(size, dtype=np.float32)
    d = np.minimum(x, size - 1 - x)
    r = np.clip(d / ramp, 0, 1)
    r = 0.5 - 0.5 * np.cos(np.pi * r)
    return np.outer(r, r).astype(np.float32)


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
        self._feather = feather_mask(size, margin)
        # where a crop equals the source crop the original pixels are kept, so resampling the
        # crop never blurs still background
        self._source_crop = None if source_crop is None else np.ascontiguousarray(source_crop, dtype=np.uint8)
        h, w = frame.shape[:2]
        inv = invert_affine(crop_from_frame)
        corners = np.array([[0, 0], [size - 1, size - 1]], np.float64) @ inv[:, :2].T + inv[:, 2]
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
        """(S, S) float32 soft mask of where ``crop`` differs from the source crop, feathered."""
        size = crop.shape[0]
        diff = cv2.absdiff(crop, self._source_crop)
        diff = cv2.max(cv2.max(diff[..., 0], diff[..., 1]), diff[..., 2])
        k = max(3, (size // 64) | 1)
        grown = cv2.dilate(diff, np.ones((k, k), np.uint8))  # uint8: cheap at full resolution
        # ramp, blur and feather at a quarter of the resolution: the mask is smooth anyway
        q = max(size // 4, 1)
        small = cv2.resize(grown, (q, q), interpolation=cv2.INTER_AREA).astype(np.float32)
        m = cv2.GaussianBlur(np.clip((small - 2.0) / 6.0, 0.0, 1.0), (0, 0), k / 8)
        m = cv2.resize(m, (size, size), interpolation=cv2.INTER_LINEAR)
        return np.minimum(m * 1.5, 1.0) * self._feather
