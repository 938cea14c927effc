"""Eyelids that close over the eye instead of squeezing it.

The warp closes an eye by squeezing the fan of triangles inside its lid contour, so a blink
pressed the whole eyeball (iris, white, catch-light) into the thin gap between the lids: a
bright, high-contrast band between two dark lid lines, which read as three stacked lines or a
pair of lips. A real lid slides over an eyeball that stays where it is. Here, wherever the
target eye is narrower than the portrait's, the gap between the target's lids shows the
portrait's eyeball at rest (carried by the eye's corners, shifted by the gaze along the eye), cut by the lids
where they now lie, and shaded under the lowered upper lid; the lids themselves keep the
mesh's mapping, so the lash line comes down with the upper lid. Drawn at the crop's full
resolution (the map is rasterised at half of it, where a half-closed eye is 2-4 rows) with an
anti-aliased lid edge.

A closing upper lid unfolds: the skin that lay folded under the crease now covers the eye. The
mesh instead stretches the strip from the lid margin to the crease, lashes and eyeshadow
included, into a tall streaked band (2x on a shut eye). Where that strip is stretched, it is
covered with the portrait's own lid skin from just above the crease, reflected about it (so it
meets the crease with no seam and carries no lashes), above a thin lash line that keeps the
mesh's mapping (:func:`lid_skin`). Keeping a share of the open lid's texture instead left the
open eye's look, which trackers (and people) read as a half-open eye (docs/face.md, sessions 30-31).
Where a glasses rim runs along the crease, that skin was painted out of the portrait (an
inpainting's grey smear, not skin): there the lid takes the skin below the lower lid instead,
reflected the same way, which lies behind the same lens.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..face import topology
from .triangles import coverage, polygon_area

FADE = 0.15         # the cut fades in as the eye's opening falls from 1 to 1 - FADE × the portrait's
MAX_GAZE = 0.12     # largest gaze shift of the eyeball (along the eye), × the eye's width
SHADOW = 0.5        # darkening right under a lowered lid, × how far the eye closed
SHADE_DEPTH = 0.06  # it fades over this distance below the lid, × the eye's width
# the lid strip's rings above the upper lid (the mesh's "upper eyelid" lines 2 and 3), per eye of
# topology.mesh()["eye_loops"], outer corner first: line 2 lies along the crease, line 3 above it
CREASE = ((247, 30, 29, 27, 28, 56, 190), (467, 260, 259, 257, 258, 286, 414))
ABOVE_CREASE = ((113, 225, 224, 223, 222, 221, 189), (342, 445, 444, 443, 442, 441, 413))
STRETCH = (1.15, 1.5)  # lid strip's height over the portrait's (median over the eye's middle half): skin starts to cover it at the first, fully at the second
SKIN_REACH = 2.0   # the reflected skin reaches this × (line 3 - crease) above the crease
LASH = 0.035       # the lash line kept at the lid margin, × the eye's width (about 2 px at 512)
CREASE_FADE = 0.2  # the skin fades out over this share of the strip below the crease
CORNER_REACH = (0.15, 0.15)  # ... and reaches this far past either corner (× the eye's width), fading over the second
# skin below the lower lid, for lids whose skin above the crease was painted out: it starts this
# far below the lower lid's margin (× the eye's width: past the lower lashes)
BELOW_GAP = 0.08


def opening(loop: np.ndarray) -> float:
    """Area of the (K, 2) lid contour over its corner-to-corner width squared."""
    o, i = _corners(len(loop))
    width = float(np.hypot(*(loop[i] - loop[o])))
    return polygon_area(loop) / max(width * width, 1e-6)


def _corners(n: int) -> tuple[int, int]:
    """Positions of the outer and inner corner in an eye loop of ``n`` points: the mesh's loops run
    lower-outer, outer corner, the upper lid, inner corner, the lower lid."""
    return 1, n // 2 + 1


def _profile(points: np.ndarray, origin: complex, axis: complex) -> tuple[np.ndarray, np.ndarray]:
    """(s, v) of (K, 2) points in an eye's frame (s along the corners 0 → 1, v across), sorted by s."""
    z = (points[:, 0] + 1j * points[:, 1] - origin) / axis
    z = z[np.argsort(z.real)]
    return z.real, z.imag


def _lid_profiles(loop: np.ndarray, origin: complex, axis: complex) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The upper and lower lids of a (K, 2) contour in the eye's own frame (s along the corners
    0 → 1, v across them, both over the width): (s_up, v_up, s_low, v_low), each sorted by s."""
    o, i = _corners(len(loop))
    return (*_profile(loop[o:i + 1], origin, axis), *_profile(np.concatenate([loop[i:], loop[:o + 1]]), origin, axis))


def _inside_lids(z: np.ndarray, loop: np.ndarray, origin: complex, axis: complex) -> np.ndarray:
    """Points ``z`` (complex crop px) held between the lids of the (K, 2) contour (half a pixel
    inside them), each moved across the eye only."""
    e = (z - origin) / axis
    su, vu, sl, vl = _lid_profiles(loop, origin, axis)
    a, b = np.interp(e.real, su, vu), np.interp(e.real, sl, vl)
    top, bottom = np.minimum(a, b), np.maximum(a, b)  # the frame's v runs up or down with the eye's side
    inset, mid = 0.5 / abs(axis), 0.5 * (top + bottom)
    v = np.clip(e.imag, np.minimum(top + inset, mid), np.maximum(bottom - inset, mid))
    return origin + (e.real + 1j * v) * axis


def _below_upper_lid(z: np.ndarray, loop: np.ndarray, origin: complex, axis: complex) -> np.ndarray:
    """Px from the upper lid of the (K, 2) contour down to each of the points ``z`` (0 above it)."""
    e = (z - origin) / axis
    su, vu, _, vl = _lid_profiles(loop, origin, axis)
    down = 1.0 if np.mean(vl) >= np.mean(vu) else -1.0
    return np.maximum((e.imag - np.interp(e.real, su, vu)) * down * abs(axis), 0.0)


def _sample(image: np.ndarray, z: np.ndarray) -> np.ndarray:
    """(h, w, …) float32 of ``image`` at complex crop px ``z``."""
    return cv2.remap(image, z.real.astype(np.float32), z.imag.astype(np.float32), cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE).astype(np.float32)


def _paint(out: np.ndarray, mapped: np.ndarray | None, x0: int, y0: int, pixels: np.ndarray, weight: np.ndarray) -> None:
    """Blend (h, w, 3) float32 ``pixels`` into ``out`` at (``x0``, ``y0``) by (h, w) ``weight``, and
    take that share out of ``mapped`` (both in place)."""
    y1, x1 = y0 + weight.shape[0], x0 + weight.shape[1]
    roi = out[y0:y1, x0:x1].astype(np.float32)
    out[y0:y1, x0:x1] = np.clip(roi + weight[..., None] * (pixels - roi) + 0.5, 0, 255).astype(np.uint8)
    if mapped is not None:
        mapped[y0:y1, x0:x1] *= 1.0 - weight


def draw(out: np.ndarray, image: np.ndarray, source: np.ndarray, landmarks: np.ndarray,
         mapped: np.ndarray | None = None) -> None:
    """Redraw the inside of each eye of ``out`` ((S, S, 3) uint8, in place) that the target
    ``landmarks`` ((478, 2+) crop px) close further than the portrait's ``source`` ((478+, 2)
    crop px) with the portrait ``image``'s eyeball at rest, cut and shaded by the target's
    lids; ``mapped`` ((S, S) float32, in place): the share of each pixel still sampled
    through the backward map."""
    size = out.shape[0]
    for k, ids in enumerate(topology.mesh()["eye_loops"]):
        ids = np.asarray(ids, np.int64)
        tgt = landmarks[ids, :2].astype(np.float64)
        src = source[ids, :2].astype(np.float64)
        ratio = min(opening(tgt) / max(opening(src), 1e-6), 1.0)
        weight = float(np.clip((1.0 - ratio) / FADE, 0.0, 1.0))
        o, i = _corners(len(ids))
        t0, t1, s0, s1 = complex(*tgt[o]), complex(*tgt[i]), complex(*src[o]), complex(*src[i])
        if weight <= 0.0 or abs(t1 - t0) < 2.0 or abs(s1 - s0) < 2.0:
            continue
        x0, y0 = np.maximum(np.floor(tgt.min(0)).astype(int) - 1, 0)
        x1, y1 = np.minimum(np.ceil(tgt.max(0)).astype(int) + 2, size)
        if x1 - x0 < 2 or y1 - y0 < 1:
            continue
        cover = coverage(tgt, x0, y0, x1 - x0, y1 - y0) * weight
        if not cover.any():
            continue
        # the eyeball: carried by the eye's corners (target → source similarity) and the gaze
        scale = (s1 - s0) / (t1 - t0)
        iris = topology.IRIS_CENTERS[k]
        gaze = complex(*source[iris, :2]) - (s0 + scale * (complex(*landmarks[iris, :2]) - t0))
        # along the eye only: a lowered lid hides the iris's top, and a tracker's iris centre
        # drops with it; read as gaze, that pulled the eyeball down under the lid
        along = (s1 - s0) / abs(s1 - s0)
        gaze = along * float(np.clip((gaze / along).real, -MAX_GAZE * abs(s1 - s0), MAX_GAZE * abs(s1 - s0)))
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
        at = xx + 1j * yy
        # only what lies between the portrait's own lids is eyeball: a sample past them is held
        # just inside (the lid above an eye gazing down is not part of it)
        z = _inside_lids(s0 + scale * (at - t0) + gaze, src, s0, s1 - s0)
        eye = _sample(image, z)
        # the lowered lid and its lashes shade the eyeball just under them
        below = _below_upper_lid(at, tgt, t0, t1 - t0)
        eye *= (1.0 - SHADOW * (1.0 - ratio) * np.exp(-below / (SHADE_DEPTH * abs(t1 - t0))))[..., None].astype(np.float32)
        _paint(out, mapped, x0, y0, eye, cover)


def lid_skin(out: np.ndarray, image: np.ndarray, source: np.ndarray, landmarks: np.ndarray,
             mapped: np.ndarray | None = None, painted: np.ndarray | None = None) -> None:
    """Cover each upper lid strip of ``out`` ((S, S, 3) uint8, in place) that the target
    ``landmarks`` ((478, 2+) crop px) stretch beyond the portrait's ``source`` ((478+, 2) crop
    px) with the portrait ``image``'s skin above the crease, reflected about it; ``mapped``
    ((S, S) float32, in place): the share of each pixel still sampled through the backward map.
    ``painted`` ((S, S) float32): where ``image`` was painted out (under glasses frames); skin
    sampled there is replaced by the skin below the lower lid, where that is not painted."""
    size = out.shape[0]
    for k, ids in enumerate(topology.mesh()["eye_loops"]):
        ids = np.asarray(ids, np.int64)
        tgt, src = landmarks[ids, :2].astype(np.float64), source[ids, :2].astype(np.float64)
        o, i = _corners(len(ids))
        t0, t1, s0, s1 = complex(*tgt[o]), complex(*tgt[i]), complex(*src[o]), complex(*src[i])
        width = abs(t1 - t0)
        if width < 4.0 or abs(s1 - s0) < 4.0:
            continue
        crease_t = landmarks[list(CREASE[k]), :2].astype(np.float64)
        su, vu, _, _ = _lid_profiles(tgt, t0, t1 - t0)
        cs, cv = _profile(crease_t, t0, t1 - t0)
        ssu, svu, ssl, svl = _lid_profiles(src, s0, s1 - s0)
        scs, scv = _profile(source[list(CREASE[k]), :2].astype(np.float64), s0, s1 - s0)
        sas, sav = _profile(source[list(ABOVE_CREASE[k]), :2].astype(np.float64), s0, s1 - s0)
        # how much taller than the portrait's the strip is: one figure per eye, from its middle
        # half (where the portrait's crease curves away from the lid at the corners the stretch
        # there is lower, and skin cut off there left a hard edge beside the stretched lashes)
        mid = np.linspace(0.25, 0.75, 17)
        h_t = np.abs(np.interp(mid, cs, cv) - np.interp(mid, su, vu))
        h_s = np.abs(np.interp(mid, scs, scv) - np.interp(mid, ssu, svu))
        stretch = float(np.median(h_t / np.maximum(h_s, 1e-3)))
        cover = float(np.clip((stretch - STRETCH[0]) / (STRETCH[1] - STRETCH[0]), 0.0, 1.0))
        if cover <= 0.0:
            continue
        pts = np.concatenate([tgt, crease_t])
        x0, y0 = np.maximum(np.floor(pts.min(0)).astype(int) - 1, 0)
        x1, y1 = np.minimum(np.ceil(pts.max(0)).astype(int) + 2, size)
        if x1 - x0 < 2 or y1 - y0 < 2:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
        e = (xx + 1j * yy - t0) / (t1 - t0)
        sp = np.clip(e.real, 0.0, 1.0)  # past the corners the lid and crease lines hold their ends
        lid, crease = np.interp(sp, su, vu), np.interp(sp, cs, cv)
        span = crease - lid
        t = (e.imag - lid) / np.where(np.abs(span) < 1e-6, 1e-6, span)  # 0 at the lid margin, 1 at the crease
        lash = LASH / np.maximum(np.abs(span), 1e-6)  # the lash line's share of the strip here
        weight = (np.clip((t - lash) / lash, 0.0, 1.0) * np.clip((1.0 - t) / CREASE_FADE, 0.0, 1.0)
                  * np.clip((np.minimum(e.real, 1.0 - e.real) + CORNER_REACH[0]) / CORNER_REACH[1], 0.0, 1.0)
                  * cover)
        if not (weight > 0).any():
            continue
        # reflected about the crease: the strip's lower part takes the skin further above it
        at_crease = np.interp(sp, scs, scv)
        v = at_crease + (1.0 - np.clip(t, 0.0, 1.0)) * SKIN_REACH * (np.interp(sp, sas, sav) - at_crease)
        z = s0 + (sp + 1j * v) * (s1 - s0)
        skin = _sample(image, z)
        if painted is not None:
            above = _sample(painted, z)
            if above.max() > 0.05:
                # the same reach below the lower lid, past its lashes, reflected about it
                down = 1.0 if np.mean(svl) >= np.mean(svu) else -1.0
                reach = SKIN_REACH * float(np.median(np.abs(sav - np.interp(sas, scs, scv))))
                low = np.interp(sp, ssl, svl) + down * (BELOW_GAP + (1.0 - np.clip(t, 0.0, 1.0)) * reach)
                zb = s0 + (sp + 1j * low) * (s1 - s0)
                below = _sample(painted, zb)
                take = (above * (1.0 - below))[..., None]
                skin += take * (_sample(image, zb) - skin)
        _paint(out, mapped, x0, y0, skin, weight.astype(np.float32))
