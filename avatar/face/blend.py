"""Paste-back: blend an animated crop into the full-resolution portrait without a visible box."""

from __future__ import annotations

import cv2
import numpy as np

from .crop import invert_affine

# grey levels: the plate differs from the portrait by more than the first (fully by the second)
# where the person was taken out of it, and a crop within the first of the plate (up to the
# second) shows that plate there
_FILLED = (4.0, 12.0)
_SHOWS_PLATE = (4.0, 12.0)
_EDGE_RAMP = 4.0  # × the feather: how much faster a vacated pixel's weight rises from the crop's edge
_ARRIVAL_REACH = 0.15  # × the crop side: how far from where the person was it may move into the feather
_SHOWS_LUT = np.clip((_SHOWS_PLATE[1] - np.arange(256, dtype=np.float32)) / (_SHOWS_PLATE[1] - _SHOWS_PLATE[0]),
                     0.0, 1.0).astype(np.float32)


def _max_abs_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(H, W) uint8: the largest per-channel difference of two (H, W, 3) uint8 images."""
    r, g, b_ = cv2.split(cv2.absdiff(a, b))  # contiguous planes: cv2.max on channel views costs 8× as much
    return cv2.max(cv2.max(r, g), b_)


def paste_roi(frame_size: tuple[int, int], crop_from_frame: np.ndarray, size: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): the part of an (H, W) frame a crop of side ``size`` covers (what paste-back
    writes), clipped to the frame."""
    h, w = frame_size
    inv = invert_affine(crop_from_frame)
    corners = np.array([[0, 0], [size - 1, 0], [0, size - 1], [size - 1, size - 1]], np.float64) @ inv[:, :2].T + inv[:, 2]
    x0 = int(np.clip(np.floor(corners[:, 0].min()), 0, w))
    y0 = int(np.clip(np.floor(corners[:, 1].min()), 0, h))
    x1 = int(np.clip(np.ceil(corners[:, 0].max()) + 1, 0, w))
    y1 = int(np.clip(np.ceil(corners[:, 1].max()) + 1, 0, h))
    return x0, y0, x1, y1


class FootageCrop(np.ndarray):
    """An (S, S, 3) crop that is a frame of real footage with one region re-rendered (a talking
    video avatar's mouth). ``native``: that footage frame's own pixels over ``native_roi`` of the
    output frame (:func:`paste_roi`), at the output's resolution; ``changed``: the re-rendered
    region, a feathered (h, w) float32 mask and its (x0, y0, x1, y1) box in crop pixels, or None.

    Paste-back shows the native pixels wherever the crop is the footage: resampling a frame into
    the crop and back keeps 0.4-0.5 of its detail (Laplacian variance over the face; 0.8 with
    Lanczos both ways, at four times the cost), so the whole head came out soft next to the
    footage it was cut from. Only ``changed`` is pasted from the crop. Operations on the array
    return plain crops (the attributes do not follow)."""

    native: np.ndarray | None = None
    native_roi: tuple[int, int, int, int] | None = None
    changed: tuple[np.ndarray, tuple[int, int, int, int]] | None = None

    @classmethod
    def wrap(cls, crop: np.ndarray, native: np.ndarray, native_roi: tuple[int, int, int, int],
             changed: tuple[np.ndarray, tuple[int, int, int, int]] | None) -> "FootageCrop":
        out = crop.view(cls)
        out.native, out.native_roi, out.changed = native, tuple(int(v) for v in native_roi), changed
        return out


class MappedCrop(np.ndarray):
    """An (S, S, 3) crop rendered by sampling the source crop through a backward map: ``source_map``
    ((S, S, 2) float32 source-crop coordinates per pixel) and ``own`` ((S, S) float32 in [0, 1]:
    how much of each pixel is the source seen through that map, 0 where something else was drawn
    or filled in).

    Paste-back puts back, through the same map, the detail that the round trip frame → crop →
    frame loses: a 2048 px portrait's face is cut into a 512 px crop and pasted back at 1920, and
    came out with 0.44 of its fine detail (mean high-pass, portrait_02): soft, like an upscaled
    picture next to the sharp photo around it. Operations on the array return plain crops."""

    source_map: np.ndarray | None = None
    own: np.ndarray | None = None

    @classmethod
    def wrap(cls, crop: np.ndarray, source_map: np.ndarray, own: np.ndarray) -> "MappedCrop":
        out = crop.view(cls)
        out.source_map, out.own = source_map, own
        return out


def feather_width(size: int, margin: float = 0.12) -> int:
    """Pixels the edge ramp of :func:`feather_mask` spans on a crop of side ``size``."""
    return max(int(round(size * margin)), 1)


def feather_mask(size: int, margin: float = 0.12, sides: tuple[bool, bool, bool, bool] = (True, True, True, True)
                 ) -> np.ndarray:
    """(S, S) float32 mask: 1 inside, a cosine ramp over ``margin`` of the side to 0 at the edge,
    on each of the ``sides`` (left, top, right, bottom) that is True; the others stay 1."""
    ramp = feather_width(size, margin)
    x = np.arange(size, dtype=np.float32)

    def profile(lo: bool, hi: bool) -> np.ndarray:
        far = np.full_like(x, np.inf)  # (S,) even with no side feathered: a scalar made the mask (1, 1)
        d = np.minimum(x if lo else far, (size - 1 - x) if hi else far)
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
        source_crop: the crop of ``frame`` the engine animates: where a crop equals it, the
            frame's own pixels are kept.
        restore_detail: with ``source_crop``, put back the detail the crop loses through the
            backward map of each :class:`MappedCrop`.
        plate: with ``source_crop``, the engine's still background for this crop ((S, S, 3)
            uint8, the person taken out, see :meth:`~avatar.render.base.Engine.background_plate`):
            where a crop shows it in place of the person, the crop's own edge feather does not
            let the portrait's person through.
    """

    def __init__(self, frame: np.ndarray, crop_from_frame: np.ndarray, size: int, margin: float = 0.12,
                 source_crop: np.ndarray | None = None, restore_detail: bool = True,
                 plate: np.ndarray | None = None) -> None:
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
        self._band = feather_width(size, margin)
        x0, y0, x1, y1 = self.roi = paste_roi((h, w), crop_from_frame, size)
        self._m = inv.copy()
        self._m[:, 2] -= (x0, y0)  # frame_from_crop, shifted into the ROI
        self._size = (x1 - x0, y1 - y0)
        self._empty = not (x1 > x0 and y1 > y0)
        self._mask = None if self._empty else cv2.warpAffine(self._feather, self._m, self._size, flags=cv2.INTER_LINEAR)
        self._base = np.ascontiguousarray(frame[y0:y1, x0:x1])
        self._lost_detail = None
        if self._source_crop is not None and not self._empty and restore_detail:
            back = cv2.warpAffine(self._source_crop, self._m, self._size, flags=self._flags, borderMode=cv2.BORDER_REPLICATE)
            self._lost_detail = cv2.subtract(self._base, back, dtype=cv2.CV_32F)
        self._vacated = [] if self._source_crop is None or plate is None else self._plate_in_feather(plate)

    def __call__(self, crop: np.ndarray) -> np.ndarray:
        """(S, S, 3) uint8 crop → (H, W, 3) uint8 frame."""
        out = self.frame.copy()
        if self._empty:
            return out
        x0, y0, x1, y1 = self.roi
        native = getattr(crop, "native", None)
        if native is not None and crop.native_roi == self.roi and native.shape[:2] == (y1 - y0, x1 - x0):
            out[y0:y1, x0:x1] = cv2.blendLinear(self._with_changes(native, crop), self._base, self._mask, 1.0 - self._mask)
            return out
        warped = cv2.warpAffine(np.asarray(crop), self._m, self._size, flags=self._flags, borderMode=cv2.BORDER_REPLICATE)
        mask = self._mask
        if self._source_crop is not None:
            mask = cv2.warpAffine(self.change_mask(crop), self._m, self._size, flags=cv2.INTER_LINEAR)
            if getattr(crop, "source_map", None) is not None:
                warped = self._with_detail(warped, crop, mask)
        out[y0:y1, x0:x1] = cv2.blendLinear(warped, self._base, mask, 1.0 - mask)
        return out

    @property
    def _flags(self) -> int:
        return cv2.INTER_LINEAR if self._m[0, 0] >= 1 else cv2.INTER_AREA

    def _with_detail(self, warped: np.ndarray, crop: "MappedCrop", mask: np.ndarray) -> np.ndarray:
        """``warped`` (the crop at the ROI's resolution; changed in place) with the lost detail moved
        by the crop's source map added where the crop is the source seen through it, inside
        ``mask`` only."""
        if self._lost_detail is None or crop.own is None or crop.source_map.shape[:2] != crop.shape[:2]:
            return warped
        rows, cols = np.flatnonzero(mask.max(1) > 0), np.flatnonzero(mask.max(0) > 0)
        if not len(rows):
            return warped
        r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        sub = self._m.copy()
        sub[:, 2] -= (c0, r0)  # crop px → this part of the ROI
        size = (c1 - c0, r1 - r0)
        own = cv2.warpAffine(crop.own, sub, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        # only where the crop is the source seen through its map (the person: a fifth of the
        # window is often the plate) is there detail to add
        x, y, w, h = cv2.boundingRect((own > 0).view(np.uint8))
        if w == 0 or h == 0:
            return warped
        # the map's source-crop coordinates turned into ROI pixels at the crop's resolution (cheap),
        # then resampled to this part of the ROI; cut at the right and bottom only: warpAffine's
        # fixed-point sample positions depend on the window's origin
        in_roi = cv2.transform(crop.source_map, self._m.astype(np.float32))
        at = cv2.warpAffine(in_roi, sub, (x + w, y + h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        # bicubic: the detail is finer than the crop, and a moved face samples it between pixels,
        # where a bilinear sample halves what is left of it (moved 2 % of the crop, its high-pass
        # kept 0.75-0.77 of the photo's on portrait_02-05, 0.84-0.87 bicubic; +2-4 ms a frame)
        moved = cv2.remap(self._lost_detail, at[y:, x:], None, cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        add = cv2.multiply(moved, cv2.cvtColor(own[y:y + h, x:x + w], cv2.COLOR_GRAY2RGB), dtype=cv2.CV_16S)
        box = (slice(r0 + y, r0 + y + h), slice(c0 + x, c0 + x + w))
        warped[box] = cv2.add(warped[box], add, dtype=cv2.CV_8U)  # a fresh array of __call__'s
        return warped

    def _with_changes(self, native: np.ndarray, crop: "FootageCrop") -> np.ndarray:
        """The footage's own pixels over the ROI with the crop's re-rendered region blended in
        (resampled there only)."""
        if crop.changed is None:
            return native
        mask, (cx0, cy0, cx1, cy1) = crop.changed
        pts = np.array([[cx0, cy0], [cx1, cy0], [cx0, cy1], [cx1, cy1]], np.float64) @ self._m[:, :2].T + self._m[:, 2]
        h, w = native.shape[:2]
        fx0, fy0 = np.clip(np.floor(pts.min(0)).astype(int) - 1, 0, [w, h])
        fx1, fy1 = np.clip(np.ceil(pts.max(0)).astype(int) + 2, 0, [w, h])
        if fx1 <= fx0 or fy1 <= fy0:
            return native
        sub = self._m.copy()
        sub[:, 2] -= (fx0, fy0)  # crop px → this sub-rectangle of the ROI
        patch = cv2.warpAffine(np.asarray(crop), sub, (fx1 - fx0, fy1 - fy0), flags=self._flags, borderMode=cv2.BORDER_REPLICATE)
        at = sub.copy()
        at[:, 2] += sub[:, :2] @ np.array([cx0, cy0], np.float64)  # mask px → the sub-rectangle
        m = cv2.warpAffine(mask.astype(np.float32), at, (fx1 - fx0, fy1 - fy0), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        out = native.copy()
        out[fy0:fy1, fx0:fx1] = cv2.blendLinear(patch, native[fy0:fy1, fx0:fx1], m, 1.0 - m)
        return out

    def _plate_in_feather(self, plate: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int, int, int]]]:
        """Where, within the crop's edge feather, the person was or may move to: per side of the
        crop, the plate there (h, w, 3) uint8, the weight a crop showing the plate there gets
        where the plate has the person taken out, the weight a crop showing anything but the plate
        gets where the photo there is background the person may move onto ((h, w) float32 each:
        how surely, times a ramp four times as steep as the feather's) and that box (x0, y0, x1,
        y1) in crop pixels; none where the person never comes near the feather.

        The feather blends the crop's edge into the portrait around it. Where the head moved off
        a part of the plate that lies in the feather (hair near a tight crop's top), the blend
        showed the portrait's own person there through it: a faint copy of the hair's old outline
        above the moved head. Where the head moved into the feather, the blend showed the wall
        through the moved hair: a semi-transparent copy of it (portrait_02 × driving_01)."""
        if plate.shape != self._source_crop.shape or plate.dtype != np.uint8:
            return []
        d = _max_abs_diff(plate, self._source_crop).astype(np.float32)
        filled = np.clip((d - _FILLED[0]) / (_FILLED[1] - _FILLED[0]), 0.0, 1.0)
        size = filled.shape[0]
        reach = 2 * int(round(_ARRIVAL_REACH * size)) + 1
        near = cv2.dilate((filled > 0).astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (reach, reach))) > 0
        ramp = np.minimum(self._feather * _EDGE_RAMP, 1.0)
        ramp[self._feather >= 1.0] = 0.0  # inside the feather the change mask is 1 already
        vacated = filled * ramp
        arrived = (1.0 - filled) * near * ramp
        # the feather is a band along the sides: one box per side, not the box around them all
        band = min(self._band, size // 2)
        either = np.maximum(vacated, arrived)
        parts = []
        for ys, xs in ((slice(0, band), slice(0, size)), (slice(size - band, size), slice(0, size)),
                       (slice(band, size - band), slice(0, band)), (slice(band, size - band), slice(size - band, size))):
            sub = either[ys, xs]
            if not sub.size:
                continue
            rows, cols = np.flatnonzero(sub.max(1) > 0), np.flatnonzero(sub.max(0) > 0)
            if not len(rows):
                continue
            y0, y1 = (ys.start or 0) + int(rows[0]), (ys.start or 0) + int(rows[-1]) + 1
            x0, x1 = (xs.start or 0) + int(cols[0]), (xs.start or 0) + int(cols[-1]) + 1
            box = (slice(y0, y1), slice(x0, x1))
            parts.append((np.ascontiguousarray(plate[box]), np.ascontiguousarray(vacated[box]),
                          np.ascontiguousarray(arrived[box]), (x0, y0, x1, y1)))
        return parts

    def change_mask(self, crop: np.ndarray) -> np.ndarray:
        """(S, S) float32 soft mask of where ``crop`` differs from the source crop: 1 on every
        changed pixel (and a few around it), feathered outwards only."""
        size = crop.shape[0]
        diff = _max_abs_diff(crop, self._source_crop)
        k = max(3, (size // 64) | 1)
        grown = cv2.dilate(diff, np.ones((k, k), np.uint8))  # uint8: cheap at full resolution
        # ramp, blur and feather at a quarter of the resolution: the mask is smooth anyway
        q = max(size // 4, 1)
        small = cv2.resize(grown, (q, q), interpolation=cv2.INTER_AREA).astype(np.float32)
        m = cv2.GaussianBlur(np.clip((small - 2.0) / 6.0, 0.0, 1.0), (0, 0), k / 8)
        m = cv2.resize(m, (size, size), interpolation=cv2.INTER_LINEAR)
        np.minimum(np.multiply(m, 1.5, out=m), 1.0, out=m)  # in place: full-resolution float temporaries cost more than the arithmetic
        # ... but never below the change itself: averaged at a quarter of the resolution, a thin
        # band of change (the strip a moving head uncovers) stayed partial, and the original's
        # pixels there (the hair's old edge) showed through as a ghost
        sure = cv2.threshold(grown, 7, 1, cv2.THRESH_BINARY)[1]
        np.maximum(m, sure, out=m)
        m *= self._feather
        for plate, vacated, arrived, (x0, y0, x1, y1) in self._vacated:
            d = _max_abs_diff(np.ascontiguousarray(crop[y0:y1, x0:x1]), plate)
            on_plate = cv2.LUT(d, _SHOWS_LUT)
            shows = cv2.max(cv2.multiply(on_plate, vacated), cv2.multiply(1.0 - on_plate, arrived))
            shows = cv2.blur(shows, (3, 3))  # no pixel-sized holes where the crop's grain crosses the limit
            m[y0:y1, x0:x1] = cv2.max(m[y0:y1, x0:x1], shows)
        return m
