"""Layers of a portrait crop: a still background plate and a moving person with a soft matte.

Built once per portrait (:func:`build_layers`), used every frame (:meth:`Layers.composite`):
the warp engine's backward map moves the person (face, hair, ears, neck, clothes) and its
alpha matte, and the result is composited over a background plate that never moves. Where the
person neither is nor goes, the output is the source's pixels, bit for bit.

* the **matte**: mediapipe's person segmentation (bundled) gives a coarse soft mask; a trimap
  (sure person, sure background, an unknown band along the silhouette) keeps its certain parts,
  and inside the band alpha comes from the photo's colours (see :func:`soft_matte`), cleaned by
  a small guided filter (He et al. 2013), so wisps of hair keep a partial alpha instead of being
  cut by a hard mask; it runs in tens of milliseconds. pymatting's closed-form matting was
  measured too (1 s at 512 px) but its numba compilation took 4.5 minutes on first import here.
  Before a plain wall, flyaway hairs the mask leaves out a few pixels past it are taken in too
  (:func:`stray_strands`, 0.06–0.15 s).
* the **plate**: the source wherever the matte is 0; under the person, the background filled
  in by PatchMatch (Barnes et al. 2009, the PyPatchMatch wheel): patches of the photo's own
  background, chosen to agree with each other, so grass, foliage and walls continue as
  themselves, with no seams; where the background is strongly oriented (stripes, a shelf's
  edge) its lines are carried on straight across it. Without PyPatchMatch (Python 3.10), the
  background is mirrored across the silhouette instead, with a pyramid fill deeper in. Only a
  band of the plate ever shows, where the head moves off.
* the **foreground colours**: the compositing equation I = αF + (1-α)B solved for F with the
  plate as B, so a semi-transparent hair edge carries its own colour, not the old background's,
  to its new place; unmoved, αF + (1-α)B gives the source back.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, replace

import cv2
import numpy as np

try:  # PatchMatch for the plate's fill; its wheels need Python 3.11 (see background_plate's fallback)
    import patchmatch as _patchmatch
except ImportError:  # pragma: no cover - exercised on Python 3.10 only
    _patchmatch = None

from ..face import topology
from ..face.crop import distance_inside
from . import pieces
from .triangles import map_stretch

log = logging.getLogger(__name__)

_BAND = 0.04         # half-width of the trimap's unknown band, × the crop side
_GUIDE_RADIUS = 0.016  # guided-filter radius, × the crop side
_GUIDE_EPS = 1e-3    # guided-filter regulariser (image in [0, 1])
_FEATHER = 0.8       # Gaussian sigma of the matte's edge, px at a 512 crop
_RAISE = 2.0        # unmix_foreground raises a thin matte to at most this × its own
_MIN_ALPHA = 0.04    # below: background (the matte is exactly 0 there, so the source stays exact)
_MIN_BACKGROUND = 0.08  # a crop with less background than this share has none worth separating
_CLOSE = 0.016       # gaps in the matte narrower than this (× the crop side) are closed
# beyond the person mask a faint matte (below this) is held to what the pixel's colour implies
# (see _no_more_than_colour); 0.3 also thinned wisps of hair over a textured background, which
# then stayed in the plate as a still haze above a moving head
_FAINT = 0.15
_REACH = 0.08        # × the crop side: how far to look for background and person colours
_SLACK = 1.25        # the colour's alpha is a floor estimate (nearest colours): allow this much more
_OPAQUE_DEPTH = 0.008  # inside the person mask, alpha ramps to 1 between 1 and 2 × this (× the crop side) from its edge
_SOFT_PLATE_SIGMA = 1.0  # px: the plate behind a partial matte keeps only what survives this blur (see _soft_edge_plate)
_PATCH_RADIUS = 2    # PatchMatch compares (2r + 1)² patches: 5 × 5 kept grass and wood grain at 512 px (7 × 7: 2× slower, alike)
# the plate's fill along the background's own orientation (see _line_fill)
_LINE_SIGMA = 0.03      # × the crop side: the neighbourhood whose orientation a hole pixel continues
_LINE_COHERENCE = (0.3, 0.6)  # structure-tensor coherence over which the line fill takes over from the mirror
_LINE_DETOUR = 2.5      # a line may run this × the distance to the nearest background (+ 4 px) to leave the hole
# × the crop side: the plate is also filled this far beyond the matte. Just outside it the photo is
# still a few grey levels off the wall (the lens's and the codec's blur of the hair's edge): left in
# the plate, that rim stayed behind as a thin outline of the head wherever it moved off, and the
# fill continued it into lines across the hole (driving_02). So the rim goes with the person: as a
# faint matte of the person's own colour over the fill, where the photo is such a blend; elsewhere
# (a textured background, stars beside the head) the plate keeps the photo.
_PLATE_GROW = 0.008
_RIM_CONTRAST = 30.0  # the person's colour and the fill must differ by this many levels to tell a blend
_RIM_RESIDUAL = 6.0   # ... and the photo lie this close to the line between them
_PLAIN = 10.0         # grey-level spread below which a background counts as plain (a wall, a backdrop)
# flyaway strands past the matte before a plain wall (see stray_strands)
_STRAY_REACH = 0.08   # × the crop side: how far past the matte strands are looked for
_STRAY_WINDOW = 0.015  # × the crop side: half-width of the median that gives the wall without them
_STRAY_NOISE = 4.0    # a strand lies this many of the wall's own noise σ towards the person's colour
_STRAY_MIN = 6.0      # ... and at least this many grey levels
_STRAY_RESIDUAL = 15.0  # ... and this close to the line between the wall and that colour
_STRAY_PIXELS = 3     # fewer connected pixels are the wall's grain
_FRINGE_REACH = 0.03  # × the crop side: how far past the matte a faint fringe is looked for (see faint_fringe)
_FRINGE_CONTRAST = 10.0  # the hair's tone lies this many × the wall's grain from the wall (and 12 levels)
_FRINGE_SHIFT = 3.0   # a fringe pixel lies this many × the wall's grain towards the hair's tone (and 4 levels)
_FRINGE_TONE = 0.012  # × the crop side: radius of the opaque pixels whose darkest (lightest) is the hair's tone
_STRAY_CHAIN = 12     # strands reached from the person through at most this many others (2 px gaps)
# a strand-like piece that runs into the photo's edge is the wall's line (a panel's edge, a door
# frame) when it is this straight: how far its centre line strays from a straight one (RMS, px)
_EDGE_LINE_BEND = 1.0
# × the crop side: hair narrower than 2 × the first (wisps, strand tips) and further than the
# second from the solid body is fine; it counts fully from the third further on (see fine_structure)
_FINE = (0.012, 0.008, 0.012)
# fine hair where the motion stretches it (output px per source px along the most stretched
# direction) fades from the first stretch to the second, where it is gone: beyond the matte the
# rings let the still background take the head's move, and a wisp there was drawn out into a
# streak from where it was to the head (portrait_02 × driving_01's big sideways moves)
_STRETCH_FADE = (1.6, 3.0)
# hair cut by the photo's top edge goes on past it (shown where the head moves down): at d px
# beyond the edge its sides have drawn in by d² / (the first × the crop side), a rounded dome,
# not a column, over a soft edge of the second (× the crop side); its texture is the hair's own
# (PatchMatch), not the edge row repeated
_DOME = (0.07, 0.01)
_DOME_SLOPE = 0.03     # × the crop side: the rows under the edge whose outline sets how fast the dome's sides draw in
_DOME_SLOPE_MAX = 2.0  # px in per px up, at most
# × the crop side: within the first of a photo edge that cuts the person, the coarse mask (already
# read with the photo mirrored past the edge) is trusted over the colour matte, which has
# background colour on one side only there; the trust tapers to none at the second
_ACROSS_EDGE = (0.03, 0.06)
_ACROSS_MASK = (0.25, 0.4)  # coarse mask values over which that trust ramps from 0 to 1
# px: a pixel of the person's edge the backward map keeps within the first of its own place shows
# the photo's own colour, fading to the layers' over the second (see StillEdge)
_STILL = (1.0, 2.0)
_STILL_OFF = 2  # grey levels: a smaller difference from the photo is left as it is


@dataclass(frozen=True, eq=False)
class Layers:
    """A portrait crop split into layers (all (S, S), source-crop pixels)."""

    rgba: np.ndarray    # (S, S, 4) uint8: premultiplied foreground colours (αF) and the matte (× 255), warped
                        # together; past ``alpha`` it also holds the faint rim of the person's edge
    plate: np.ndarray   # (S, S, 3) uint8 background plate: the source where alpha is 0 (but a faint rim, see _PLATE_GROW)
    alpha: np.ndarray   # (S, S) float32 matte in [0, 1]
    fine: np.ndarray | None = None  # (S, S) uint8: how much each pixel is fine hair (× 255, see fine_structure); None: none
    still: StillEdge | None = None  # what the person's edge lacks of the photo where it stays put

    def composite(self, backward_map: np.ndarray | tuple[np.ndarray, np.ndarray], fade: FineFade | None = None,
                  at: np.ndarray | None = None) -> np.ndarray:
        """The person moved by ``backward_map`` ((S, S, 2) source coordinates per output pixel, or
        that map as the pair ``cv2.convertMaps`` makes of it) over the still plate: (S, S, 3)
        uint8; ``fade``: how much of it is taken out where the map draws fine hair out (see
        :meth:`fine_fade`); ``at``: the float map when ``backward_map`` is the pair, for
        :class:`StillEdge` (where the edge stays put, the photo's own pixels)."""
        maps = backward_map if isinstance(backward_map, tuple) else (backward_map, None)
        out = self._over_plate(maps, fade)
        if at is None and not isinstance(backward_map, tuple):
            at = backward_map
        if self.still is not None and at is not None:
            self.still.restore(out, at)
        return out

    def _over_plate(self, maps: tuple[np.ndarray, np.ndarray | None], fade: FineFade | None) -> np.ndarray:
        # premultiplied colours resample without bleeding the transparent pixels' colour in, and
        # composite with two saturating uint8 operations: αF + (1 - α)·plate
        moved = cv2.remap(self.rgba, *maps, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        if fade is not None:
            x0, y0 = fade.origin
            h, w = fade.gone.shape
            kept = np.round(255.0 - 255.0 * fade.gone).astype(np.uint8)
            kept = cv2.merge([kept] * 4)
            box = moved[y0:y0 + h, x0:x0 + w]
            box[:] = cv2.multiply(box, kept, scale=1.0 / 255.0)
        a = cv2.extractChannel(moved, 3)
        out = self.plate.copy()
        x, y, w, h = cv2.boundingRect(a)
        if w == 0 or h == 0:
            return out
        roi = (slice(y, y + h), slice(x, x + w))
        behind = cv2.multiply(self.plate[roi], cv2.cvtColor(255 - a[roi], cv2.COLOR_GRAY2RGB), scale=1.0 / 255.0)
        out[roi] = cv2.add(behind, cv2.cvtColor(moved[roi], cv2.COLOR_RGBA2RGB))
        return out

    def fine_fade(self, mx: np.ndarray, my: np.ndarray) -> FineFade | None:
        """How much of the person to take out where the backward map ``mx``, ``my`` ((s, s)
        float32 source px, a map at s / S of the crop's resolution, pixel centres aligned) draws
        its fine hair out past :data:`_STRETCH_FADE`; None where it draws none out."""
        if self.fine is None:
            return None
        size, small = self.fine.shape[0], mx.shape[0]
        here = cv2.remap(self.fine, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        found = cv2.findNonZero(here)  # a few thousand pixels along the hair's edge: far quicker than np.nonzero
        if found is None:
            return None
        xs, ys = found[:, 0, 0], found[:, 0, 1]
        lo, hi = _STRETCH_FADE
        stretch = map_stretch(mx, my, ys, xs, size / small)
        gone = np.clip((stretch - lo) * (1.0 / (hi - lo)), 0.0, 1.0) * (here[ys, xs] * (1.0 / 255.0))
        keep = gone > 0
        if not keep.any():
            return None
        ys, xs, gone = ys[keep], xs[keep], gone[keep]
        # a box of whole small pixels (one more each side, so the fade eases out), resized: the
        # same as that part of the whole small field resized
        y0, x0 = max(int(ys.min()) - 1, 0), max(int(xs.min()) - 1, 0)
        y1, x1 = min(int(ys.max()) + 2, small), min(int(xs.max()) + 2, small)
        field = np.zeros((y1 - y0, x1 - x0), np.float32)
        field[ys - y0, xs - x0] = gone
        scale = size // small
        if scale > 1:
            field = cv2.resize(field, ((x1 - x0) * scale, (y1 - y0) * scale), interpolation=cv2.INTER_LINEAR)
        return FineFade(field, (x0 * scale, y0 * scale))


@dataclass(frozen=True, eq=False)
class StillEdge:
    """The photo less the layers composited unmoved, at the pixels of the person's edge where they
    differ (``ys``, ``xs``: (K,) int32; ``residual``: (K, 3) int16).

    Before a textured background the edge's colours are averaged (see :func:`unmix_foreground`):
    the exact ones, moved, would flash as specks. So the edge was off the photo even where it did
    not move (a fifth of `portrait_01`'s edge pixels by more than 12 levels: a soft, paler outline
    round her hair against the foliage, in every frame, and in talking, where the head hardly moves,
    all the time). Where the backward map leaves such a pixel within :data:`_STILL` of its own
    place, it takes the photo's own colour back; moving further, it fades to the averaged one."""

    ys: np.ndarray
    xs: np.ndarray
    residual: np.ndarray

    def restore(self, out: np.ndarray, backward_map: np.ndarray) -> None:
        """Add (in place, (S, S, 3) uint8 ``out``) the residual where the (S, S, 2) float
        ``backward_map`` keeps the pixel in place."""
        size = out.shape[1]
        flat = self.ys * size + self.xs  # flat indices: a quarter of 2-D fancy indexing's time
        src = backward_map.reshape(-1, 2)[flat]
        dx, dy = src[:, 0] - self.xs, src[:, 1] - self.ys
        lo, hi = _STILL
        near = np.flatnonzero(dx * dx + dy * dy < hi * hi)  # moving, none: nothing more to do
        if not len(near):
            return
        moved = np.sqrt(dx[near] * dx[near] + dy[near] * dy[near])
        weight = np.minimum((hi - moved) * (1.0 / (hi - lo)), 1.0)
        pixels = out.reshape(-1, 3)
        at = flat[near]
        pixels[at] = np.clip(pixels[at] + np.round(self.residual[near] * weight[:, None]), 0, 255).astype(np.uint8)


def still_edge(image: np.ndarray, layers: Layers, inside: np.ndarray | None = None) -> StillEdge | None:
    """The :class:`StillEdge` of ``layers`` for the crop ``image``: where the unmoved composite is
    more than :data:`_STILL_OFF` levels off the photo, within ``inside`` ((S, S) bool: the crop's
    pixels in the photo; past it the crop repeats the photo's edge, which the layers make into
    more hair, never to be undone); None where it is nowhere."""
    size = image.shape[0]
    grid = np.stack(np.meshgrid(np.arange(size, dtype=np.float32), np.arange(size, dtype=np.float32)), -1)
    residual = image.astype(np.int16) - layers.composite(grid).astype(np.int16)
    off = np.abs(residual).max(-1) > _STILL_OFF
    if inside is not None:
        off &= inside
    ys, xs = np.nonzero(off)
    if not len(ys):
        return None
    return StillEdge(ys.astype(np.int32), xs.astype(np.int32), np.ascontiguousarray(residual[ys, xs]))


@dataclass(frozen=True, eq=False)
class FineFade:
    """The share of the moved person taken out over a box of the crop where the motion draws
    fine hair out: ``gone`` (h, w) float32 in [0, 1], its top-left pixel ``origin`` (x, y)."""

    gone: np.ndarray
    origin: tuple[int, int]


def _hair_above(fg: np.ndarray, alpha: np.ndarray, rim_alpha: np.ndarray, top: int,
                face: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The person's colours ``fg`` and mattes above the photo's top edge (crop rows < ``top``)
    made into the rest of a head of hair: the crop repeated the edge's last row there, which a
    head moving down drew in as a dark column of vertical streaks (portrait_05 × driving_01).
    Its colours are filled with the hair's own patches (PatchMatch; the edge row is kept where
    it is missing), and the matte draws in away from the edge (:data:`_DOME`)."""
    size = alpha.shape[0]
    above = np.zeros(alpha.shape, bool)
    above[:top] = True
    person = np.maximum(alpha, rim_alpha)
    beyond = above & (person > 0)
    if not beyond.any():
        return fg, alpha, rim_alpha
    # the hair's own patches: opaque person in the photo, away from the face and above the chin
    # (below it lie the collar and the shoulders)
    grow = 2 * int(round(0.03 * size)) + 1
    near_face = cv2.dilate(face.astype(np.uint8), np.ones((grow, grow), np.uint8)) > 0
    rows = np.flatnonzero(face.any(1))
    if len(rows):
        near_face[rows[-1]:] = True
    # ... and a few px inside its silhouette: patches across the edge brought specks of wall in
    solid = cv2.erode((alpha > 0.9).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    sources = ~above & solid & ~near_face
    if sources.sum() > 200:
        never = ~(sources | beyond)  # _patch_fill ignores "never" pixels outside the hole it is handed
        filled = _patch_fill(np.ascontiguousarray(fg), beyond | never, never)
        if filled is not None:
            fg = np.where(beyond[..., None], filled, fg)
    past = np.maximum(top - np.arange(size, dtype=np.float32), 0.0)[:, None]  # px beyond the edge
    soft = _DOME[1] * size
    sides = _sides_at_edge(person > 0.5, top, size)
    if sides is None:
        to_side = cv2.distanceTransform((person > 0.5).astype(np.uint8), cv2.DIST_L2, 3)  # from the silhouette's sides
        dome = np.clip(1.0 + (to_side - past * past / (_DOME[0] * size)) / soft, 0.0, 1.0)
    else:
        # its sides go on as the silhouette's met the edge: where they were drawing in (the top of
        # a head cut just short of its crown), a dome that started straight up stood on the head as
        # a narrower bun, a ridge where the two met; and it closes in a round top, not a point
        (left, left_in), (right, right_in) = sides
        middle, half = 0.5 * (left + right), max(0.5 * (right - left), 0.0)
        d = past[:, 0]
        x = np.arange(size, dtype=np.float32)[None, :]
        w_left, w_right = _dome_arc(half, left_in, d, size), _dome_arc(half, right_in, d, size)
        inside = np.minimum(x - (middle - w_left)[:, None], (middle + w_right)[:, None] - x)
        # half the soft edge inside the arc once past the edge row (the matte's own edge is soft
        # already there), and nothing once both sides have closed
        inside -= (0.5 * soft * np.clip(d / soft, 0.0, 1.0))[:, None]
        inside[(w_left <= 0) & (w_right <= 0) & (d > 0)] = -np.inf
        dome = np.clip(1.0 + inside / soft, 0.0, 1.0)
    dome[~above] = 1.0
    return fg, alpha * dome, rim_alpha * dome


def _dome_arc(half: float, slope: float, past: np.ndarray, size: int) -> np.ndarray:
    """Half-widths (px) of one side of the hair dome at ``past`` px beyond the photo's edge: from
    ``half`` there, leaving the edge drawing in by ``slope`` px per px, and closing, rounded, as
    high as a side drawn in by slope × d + d² / (:data:`_DOME` [0] × the crop) would meet the middle
    (a conic w² = half² − 2·slope·half·d − q·d²; for a round head cut under its crown, that circle)."""
    if half <= 0.0:
        return np.zeros(past.shape, np.float32)
    k = _DOME[0] * size
    top = 0.5 * (-slope * k + np.sqrt((slope * k) ** 2 + 4.0 * k * half))  # where it closes
    q = (half * half - 2.0 * slope * half * top) / (top * top)
    w = np.sqrt(np.maximum(half * half - 2.0 * slope * half * past - q * past * past, 0.0))
    w = np.where(past < top, w, 0.0)
    order = np.argsort(past, kind="stable")  # never wider further out
    w[order] = np.minimum.accumulate(w[order])
    return w.astype(np.float32)


def _sides_at_edge(person: np.ndarray, top: int, size: int) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """Where the silhouette ``person`` (bool) meets the photo's top edge (crop row ``top``) and how
    fast it was drawing in there: ((left x, px in per px up), (right x, px in per px up)), from
    parabolas fitted to its outermost columns over the :data:`_DOME_SLOPE` rows below the edge (the
    draw-in clamped to 0..:data:`_DOME_SLOPE_MAX`); None where it does not reach the edge."""
    rows = np.arange(top, min(top + max(int(round(_DOME_SLOPE * size)), 3), size))
    band = person[rows]
    has = band.any(1)
    if len(rows) < 3 or not has[0] or has.sum() < 3:
        return None
    ys = rows[has].astype(np.float64) - top
    lefts = band[has].argmax(1).astype(np.float64)
    rights = (size - 1 - band[has][:, ::-1].argmax(1)).astype(np.float64)
    # a parabola: a curving outline's slope at the edge itself, not its mean over the rows
    deg = 2 if len(ys) >= 5 else 1
    fl, fr = np.polyfit(ys, lefts, deg), np.polyfit(ys, rights, deg)
    bl, br = fl[-2], fr[-2]  # d x / d y at the edge row (y − top = 0)
    # a row up (y − 1) moves the left side by −bl and the right by −br; inwards is +x and −x
    left_in = float(np.clip(-bl, 0.0, _DOME_SLOPE_MAX))
    right_in = float(np.clip(br, 0.0, _DOME_SLOPE_MAX))
    return (float(fl[-1]), left_in), (float(fr[-1]), right_in)


def _across_edge(alpha: np.ndarray, mask: np.ndarray, frame: tuple[int, int, int, int]) -> np.ndarray:
    """``alpha`` raised to the coarse ``mask`` near the edges of the photo (``frame``: its
    x0, y0, x1, y1 in the crop) and past them. Dark hair cut by the photo's top edge before a
    dark wall came out of the colour matte at 0 in its last 10 rows (the mask there: 0.42–0.54), so
    they stayed in the plate as a dark smear that the head left behind when it moved down
    (portrait_05 × driving_02)."""
    size = alpha.shape[0]
    edge = distance_inside(frame, size)
    full, end = _ACROSS_EDGE[0] * size, _ACROSS_EDGE[1] * size
    taper = np.clip((end - edge) / (end - full), 0.0, 1.0)
    coarse = np.clip((mask - _ACROSS_MASK[0]) / (_ACROSS_MASK[1] - _ACROSS_MASK[0]), 0.0, 1.0).astype(np.float32)
    # dips a few px wide (the mask repeated up a column past the edge) would be streaks in the hair
    coarse = cv2.morphologyEx(coarse, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7)))
    return np.maximum(alpha, (coarse * taper).astype(np.float32))


def fine_structure(alpha: np.ndarray) -> np.ndarray:
    """(S, S) uint8: how much each pixel of the matte ``alpha`` ((S, S) float32) is fine hair
    (× 255): wisps and strand tips narrower than 2 × :data:`_FINE`[0] × S, away from the solid
    body (the head of hair, the shoulders), which the opening of the opaque matte keeps."""
    size = alpha.shape[0]
    r = max(int(round(_FINE[0] * size)), 1)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    solid = cv2.morphologyEx((alpha > 0.5).astype(np.uint8), cv2.MORPH_OPEN, disc)
    away = cv2.distanceTransform(1 - solid, cv2.DIST_L2, 3)
    fine = np.clip((away - _FINE[1] * size) * (1.0 / (_FINE[2] * size)), 0.0, 1.0) * (alpha > 0)
    return np.round(fine * 255).astype(np.uint8)


def _pyramid_fill(image: np.ndarray, known: np.ndarray) -> np.ndarray:
    """``image`` (float32) with the pixels outside ``known`` filled by a push-pull pyramid:
    mask-weighted averages at coarser and coarser scales, pulled back down where unknown."""
    img = image * known[..., None]
    w = known.astype(np.float32)
    levels = []
    while min(w.shape) > 4:
        levels.append((img, w))
        img = cv2.pyrDown(img)
        w = cv2.pyrDown(w)
    filled = img / np.maximum(w, 1e-6)[..., None]
    for img_l, w_l in reversed(levels):
        up = cv2.pyrUp(filled, dstsize=(w_l.shape[1], w_l.shape[0]))
        conf = np.clip(w_l * 4, 0, 1)[..., None]
        filled = conf * (img_l / np.maximum(w_l, 1e-6)[..., None]) + (1 - conf) * up
    return filled


def _mirror_fill(image: np.ndarray, hole: np.ndarray, reach: float) -> tuple[np.ndarray, np.ndarray]:
    """Each hole pixel within ``reach`` px of the background takes the background pixel mirrored
    across the nearest hole edge (p → 2q - p, q the nearest known pixel): the fill continues the
    background's own texture and grain, seamless at the edge. Returns (filled, where it worked)."""
    h, w = hole.shape
    dist, labels = cv2.distanceTransformWithLabels(hole.astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    known_y, known_x = np.nonzero(~hole)
    # labels number the known pixels in row-major scan order, which is np.nonzero's order too
    lut_x = np.zeros(int(labels.max()) + 1, np.float32)
    lut_y = np.zeros_like(lut_x)
    lut_x[labels[known_y, known_x]] = known_x
    lut_y[labels[known_y, known_x]] = known_y
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    qx, qy = lut_x[labels], lut_y[labels]
    rx, ry = 2 * qx - xx, 2 * qy - yy
    # nearest-pixel labels jump along the hole's medial lines: smooth the mirrored coordinates
    # a little so the texture does not shatter into fragments there
    k = max(int(reach / 16) | 1, 3)
    rx, ry = cv2.GaussianBlur(rx, (k, k), 0), cv2.GaussianBlur(ry, (k, k), 0)
    ix, iy = np.round(rx).astype(int), np.round(ry).astype(int)
    inside = (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)
    ok = hole & (dist <= reach) & inside
    ok[ok] = ~hole[iy[ok], ix[ok]]
    filled = cv2.remap(image, rx, ry, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return filled, ok


def _line_fill(image: np.ndarray, hole: np.ndarray, reach: float) -> tuple[np.ndarray, np.ndarray]:
    """Each ``hole`` pixel within ``reach`` px of the background interpolated along the
    background's own local orientation, between where that line leaves the hole on either side
    (the nearer end weighs more): stripes, shelf edges and rows of bricks carry on straight
    behind the person, where a mirror across the silhouette bends them into a V. Returns
    (filled float32, weight): the weight is how strongly oriented the background around is
    (structure-tensor coherence; grass and foliage have none and keep the mirror), and 0 where
    the line runs much further than the nearest background (along the silhouette)."""
    h, w = hole.shape
    out = image.astype(np.float32)
    weight = np.zeros((h, w), np.float32)
    dist = cv2.distanceTransform(hole.astype(np.uint8), cv2.DIST_L2, 5)
    ys, xs = np.nonzero(hole & (dist <= reach))
    if not len(ys):
        return out, weight
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    gx, gy = cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1)
    # the tensor of the background only (the silhouette's own edge is no texture of it), averaged
    # locally and pushed into the hole
    inner = cv2.erode((~hole).astype(np.float32), np.ones((5, 5), np.uint8))
    sigma = _LINE_SIGMA * h
    tensor = cv2.GaussianBlur(np.dstack([gx * gx, gx * gy, gy * gy]) * inner[..., None], (0, 0), sigma)
    support = cv2.GaussianBlur(inner, (0, 0), sigma)
    tensor = _pyramid_fill(tensor / np.maximum(support, 1e-6)[..., None], support > 0.05)
    jxx, jxy, jyy = tensor[ys, xs, 0], tensor[ys, xs, 1], tensor[ys, xs, 2]
    spread = np.sqrt((jxx - jyy) ** 2 / 4 + jxy ** 2)
    coherence = (2 * spread / np.maximum(jxx + jyy, 1e-6)) ** 2
    lo, hi = _LINE_COHERENCE
    oriented = coherence > lo  # elsewhere the mirror stays: no line to follow
    ys, xs, coherence = ys[oriented], xs[oriented], coherence[oriented]
    theta = 0.5 * np.arctan2(2 * jxy[oriented], (jxx - jyy)[oriented])  # the dominant gradient; lines run across it
    ux, uy = -np.sin(theta), np.cos(theta)
    limit = _LINE_DETOUR * dist[ys, xs] + 4  # a line running further than this is not used
    steps = int(min(_LINE_DETOUR * reach + 4, 2 * max(h, w)))  # both ends, the far one too: they are averaged
    ends, values = [], []
    for sign in (1.0, -1.0):
        found = np.full(len(ys), np.inf, np.float32)
        todo = np.arange(len(ys))
        for k in range(1, steps + 1):
            qx = np.round(xs[todo] + sign * k * ux[todo]).astype(int)
            qy = np.round(ys[todo] + sign * k * uy[todo]).astype(int)
            inside = (qx >= 0) & (qx < w) & (qy >= 0) & (qy < h)
            hit = np.zeros(len(todo), bool)
            hit[inside] = ~hole[qy[inside], qx[inside]]
            found[todo[hit]] = k
            todo = todo[~hit & inside]
            if not len(todo):
                break
        # one pixel past the hole's edge (the image's hole holds background colours already)
        at = np.where(np.isfinite(found), found + 1.0, 0.0)
        px = np.clip(xs + sign * at * ux, 0, w - 1.001)
        py = np.clip(ys + sign * at * uy, 0, h - 1.001)
        x0, y0 = px.astype(int), py.astype(int)
        fx, fy = (px - x0)[:, None], (py - y0)[:, None]
        values.append((1 - fy) * ((1 - fx) * out[y0, x0] + fx * out[y0, x0 + 1])
                      + fy * ((1 - fx) * out[y0 + 1, x0] + fx * out[y0 + 1, x0 + 1]))
        ends.append(found)
    wa, wb = (np.where(np.isfinite(f), 1.0 / np.maximum(f, 1.0), 0.0) for f in ends)
    out[ys, xs] = (values[0] * wa[:, None] + values[1] * wb[:, None]) / np.maximum(wa + wb, 1e-9)[:, None]
    ok = np.minimum(*ends) <= limit
    weight[ys, xs] = np.where(ok, np.clip((coherence - lo) / (hi - lo), 0.0, 1.0), 0.0)
    return out, weight


@functools.cache
def _say_mirror_fill() -> None:
    log.info("PyPatchMatch is not installed (its wheels need Python 3.11+): the background plate is "
             "filled by mirroring the background across the silhouette")


def _patch_fill(image: np.ndarray, hole: np.ndarray, never: np.ndarray | None) -> np.ndarray | None:
    """``image`` (uint8) with ``hole`` filled by PatchMatch from the rest, ``never`` (part of the
    hole) neither filled nor used as a source; None where PyPatchMatch is missing or fails."""
    global _patchmatch
    if _patchmatch is None or not getattr(_patchmatch, "patchmatch_available", False):
        _say_mirror_fill()
        return None
    fill = hole if never is None else hole & ~never
    if not fill.any():
        return image
    kept = None if never is None or not (never & hole).any() else (never & hole).astype(np.uint8)
    try:
        return _patchmatch.inpaint(np.ascontiguousarray(image), fill.astype(np.uint8), global_mask=kept,
                                   patch_size=_PATCH_RADIUS)
    except (RuntimeError, ValueError, OSError) as err:  # its native library: keep the mirror fill from now on
        log.warning("PatchMatch failed (%s): the background plate is filled by mirroring from now on", err)
        _patchmatch = None
        return None


def background_plate(image: np.ndarray, hole: np.ndarray, never: np.ndarray | None = None) -> np.ndarray:
    """(S, S, 3) uint8: ``image`` with the ``hole`` (bool) filled from the background around it.

    PatchMatch fills it with the background's own patches (:func:`_patch_fill`); where the
    background is strongly oriented, its lines carry on straight across the hole instead
    (:func:`_line_fill`). ``never`` (bool, inside the hole): pixels nobody sees (the crop outside
    the photo), given the smooth pyramid fill only. Without PatchMatch: next to the silhouette
    (the only part that ever shows, where the head moves off) the background is mirrored across
    the edge, which keeps its texture; deeper inside, and where a mirror lands in the hole again,
    the smooth fill; the two are cross-faded."""
    size = image.shape[0]
    smooth = _pyramid_fill(image.astype(np.float32), ~hole)
    # the fills read a picture whose hole already holds the smooth fill: a reflection landing on
    # the hole's edge then interpolates background colours, not the person's (dotted dark lines)
    clean = np.where(hole[..., None], np.clip(smooth + 0.5, 0, 255), image).astype(np.uint8)
    patched = _patch_fill(clean, hole, never)
    if patched is not None:
        plate = patched.astype(np.float32)
    else:
        mirrored, ok = _mirror_fill(clean, hole, reach=0.3 * size)
        weight = cv2.GaussianBlur(ok.astype(np.float32), (0, 0), max(size / 256, 1.0))
        weight = np.where(ok, weight, 0.0)[..., None]
        plate = weight * mirrored.astype(np.float32) + (1 - weight) * smooth
    # where the background is strongly oriented (stripes, a shelf's edge), along its lines instead
    lined, along = _line_fill(clean, hole, reach=0.3 * size)
    along = cv2.GaussianBlur(along, (0, 0), max(size / 256, 1.0))[..., None] * hole[..., None]
    plate = along * lined + (1 - along) * plate
    return np.where(hole[..., None], np.clip(plate + 0.5, 0, 255), image).astype(np.uint8)


def soft_matte(image: np.ndarray, mask: np.ndarray, sure_person: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """(S, S) float32 alpha in [0, 1] from a coarse person ``mask``, exactly 0 in the background,
    and (S, S) bool: the pixels at the silhouette's edge that it gave up to the background
    because of their colour (the wall between flyaway strands).

    A trimap keeps the mask's certain parts; inside the unknown band along the silhouette each
    pixel's alpha is where its colour lies between the local person colour and the local
    background colour (both spread from the certain regions by a pyramid fill): I ≈ αF + (1-α)B
    solved for α. Where the two colours are too alike to tell, the coarse mask decides. A small
    guided filter on the photo then removes the noise without blurring hair strands. Last, a
    faint matte beyond the mask and any partial matte at the silhouette's edge are held to the
    alpha their colour implies (:func:`_no_more_than_colour`)."""
    size = image.shape[0]
    band = max(int(round(_BAND * size)), 2)
    hard = (mask > 0.5).astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band + 1, 2 * band + 1))
    fg = cv2.erode(hard, kernel) > 0
    if sure_person is not None:
        fg |= sure_person
    bg = cv2.dilate(hard, kernel) == 0
    if sure_person is not None:
        bg &= ~sure_person
    img = image.astype(np.float32)
    f_col = _pyramid_fill(img, fg)
    b_col = _pyramid_fill(img, bg)
    d = f_col - b_col
    norm2 = (d * d).sum(-1)
    by_colour = np.clip(((img - b_col) * d).sum(-1) / np.maximum(norm2, 1.0), 0.0, 1.0)
    trust = np.clip((np.sqrt(norm2) - 15.0) / 30.0, 0.0, 1.0)  # colour difference of 15..45 levels
    # a colour off the line between the two (a bright waterfall behind brown hair on green)
    # is neither: the coarse mask decides there, or bits of background would travel with the hair
    residual = np.linalg.norm(img - (b_col + by_colour[..., None] * d), axis=-1)
    trust *= np.clip(1.0 - (residual - 20.0) / 30.0, 0.0, 1.0)
    alpha = trust * by_colour + (1 - trust) * np.clip(mask, 0.0, 1.0)
    radius = max(int(round(_GUIDE_RADIUS * size / 4)), 1)
    alpha = np.clip(cv2.ximgproc.guidedFilter(img / 255.0, alpha.astype(np.float32), radius, _GUIDE_EPS), 0.0, 1.0)
    # dots and slits of "background" inside hair (strands whose colour lies near the background's)
    # are closed: left out of the person they would stay behind, frozen, when the head moves,
    # and the plate's fill would mirror their hair across the silhouette
    k = 2 * max(int(round(_CLOSE * size / 2)), 1) + 1
    alpha = np.where(bg, 0.0, cv2.morphologyEx(alpha.astype(np.float32), cv2.MORPH_CLOSE,
                                               cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))))
    # the band's own borders must not step: blend towards the certain values over a few pixels
    d_fg = cv2.distanceTransform((~fg).astype(np.uint8), cv2.DIST_L2, 3)
    d_bg = cv2.distanceTransform((~bg).astype(np.uint8), cv2.DIST_L2, 3)
    ramp = max(band / 4.0, 1.0)
    alpha = np.maximum(alpha, np.clip(1.0 - d_fg / ramp, 0, 1))
    alpha = np.minimum(alpha, np.clip(d_bg / ramp, 0, 1))
    # inside the person mask, colour may thin the matte only near its edge: deeper in, hair whose
    # highlights match the background's colour (grey-violet strands before a grey-blue wall) is
    # still hair, and a matte of 0.5 there showed the plate through it once the head moved
    depth = cv2.distanceTransform(hard, cv2.DIST_L2, 3)
    alpha = np.maximum(alpha, np.clip(depth / max(_OPAQUE_DEPTH * size, 1.0) - 1.0, 0.0, 1.0))
    # a floor of softness on every edge (about 1.5 px wide): a hard step would flicker between
    # person and plate under a tracker's sub-pixel jitter, and stair-step on diagonals
    alpha = cv2.GaussianBlur(alpha.astype(np.float32), (0, 0), _FEATHER * size / 512)
    alpha[alpha < _MIN_ALPHA] = 0.0
    alpha[alpha > 1.0 - _MIN_ALPHA] = 1.0
    # the colour line above runs to the background's average colour: beside white stars on dark
    # blue it is a pale blue, so the plain dark blue reads as part person and a faint halo of it
    # (and of the stars) travelled with the head, and the plate under it was filled in
    faint = (alpha > 0) & (alpha < _FAINT) & (mask < 0.5)
    # the guided filter, the closing and the coarse mask spread flyaway strands before a plain wall
    # into one grey blob, and the wall inside it (unmixed, the wall's own colour) travelled with the
    # head as a pale veil beside the hair (driving_02); the wall between strands is background.
    # Only before a plain background: before grass the nearest colours thinned the hair's edge,
    # and the plate's fill, smoother than the photo, showed as dull patches where it moved off
    plain = _local_spread(image, bg, _REACH * size / 2) < _PLAIN
    edge = (alpha > 0) & (alpha < 1) & ~fg & (depth < _OPAQUE_DEPTH * size) & plain
    alpha = _no_more_than_colour(img, alpha, faint | edge, bg, fg, size)
    return alpha.astype(np.float32), edge & (alpha == 0)


def _local_spread(image: np.ndarray, known: np.ndarray, sigma: float) -> np.ndarray:
    """(S, S) float32: the standard deviation of the grey levels of the ``known`` (bool) pixels
    around each pixel (Gaussian window of ``sigma`` px); inf where none lies near."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    w = known.astype(np.float32)
    n = cv2.GaussianBlur(w, (0, 0), sigma)
    m1 = cv2.GaussianBlur(grey * w, (0, 0), sigma) / np.maximum(n, 1e-3)
    m2 = cv2.GaussianBlur(grey * grey * w, (0, 0), sigma) / np.maximum(n, 1e-3)
    return np.where(n > 0.05, np.sqrt(np.maximum(m2 - m1 * m1, 0.0)), np.inf).astype(np.float32)


def _nearest_colours(image: np.ndarray, ys: np.ndarray, xs: np.ndarray, labels: np.ndarray, count: int,
                     radius: int) -> np.ndarray:
    """(count, N) distance from each pixel (ys, xs)'s colour to the closest colour among the
    pixels labelled k + 1 in ``labels`` within ``radius`` (sampled every third pixel); inf where
    none lies within reach."""
    h, w = labels.shape
    colour = image[ys, xs]
    best = np.full((count, len(ys)), np.inf, np.float32)
    for dy in range(-radius, radius + 1, 3):
        for dx in range(-radius, radius + 1, 3):
            if dy * dy + dx * dx > radius * radius:
                continue
            y2, x2 = (ys + dy).clip(0, h - 1), (xs + dx).clip(0, w - 1)
            d2 = np.square(image[y2, x2] - colour).sum(1)
            lab = labels[y2, x2]
            for k in range(count):
                np.minimum(best[k], np.where(lab == k + 1, d2, np.inf), out=best[k])
    return np.sqrt(best)


def _no_more_than_colour(image: np.ndarray, alpha: np.ndarray, candidates: np.ndarray, bg: np.ndarray,
                         fg: np.ndarray, size: int) -> np.ndarray:
    """``alpha`` with each of the ``candidates`` capped at the alpha its colour implies,
    d_bg / (d_bg + d_fg), d being the distance to the closest colour among the certain background
    (``bg``) or person (``fg``) pixels nearby; a pixel whose colour is some nearby background
    pixel's, and no nearby person pixel's, becomes background (alpha 0, the source kept)."""
    ys, xs = np.nonzero(candidates)
    if len(ys) == 0:
        return alpha
    radius = max(int(round(_REACH * size)), 2)
    labels = np.where(bg, 1, np.where(fg, 2, 0)).astype(np.uint8)
    d_bg, d_fg = _nearest_colours(image, ys, xs, labels, 2, radius)
    # no background colour within reach: nothing to hold the matte to; no person colour: background
    far = np.float32(4 * 255)
    implied = np.minimum(d_bg, far) / np.maximum(np.minimum(d_bg, far) + np.minimum(d_fg, far), 1e-3)
    implied = np.where(np.isfinite(d_bg), implied, 1.0)
    implied = np.where(np.isfinite(d_fg), implied, 0.0)
    out = alpha.copy()
    capped = np.minimum(alpha[ys, xs], _SLACK * implied)
    out[ys, xs] = np.where(capped < 1.5 * _MIN_ALPHA, 0.0, capped)
    return out


def person_colour(image: np.ndarray, alpha: np.ndarray) -> np.ndarray | None:
    """(S, S, 3) float32: the nearest opaque person colour at every pixel (pushed and pulled
    from the pixels where ``alpha`` is opaque), or None where none is."""
    opaque = alpha >= 1.0 - _MIN_ALPHA
    return _pyramid_fill(image.astype(np.float32), opaque) if opaque.any() else None


def unmix_foreground(image: np.ndarray, alpha: np.ndarray, plate: np.ndarray, spread: float = 48.0,
                     near: np.ndarray | None = None, exact: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(S, S, 3) uint8 foreground colours F with image ≈ αF + (1-α)·plate where α > 0, and the
    (S, S) float32 matte they go with. ``near``: :func:`person_colour` of ``image`` and ``alpha``,
    where the caller has it already; ``exact`` (bool): where the photo is to be given back exactly.

    At a low alpha the equation divides the background's grain by α, and those extreme colours,
    resampled as the person moves, would flash as one-frame specks along the edge: there F is
    averaged with its neighbours and kept within ``spread`` levels of the nearest opaque person
    colour. Both fade out as alpha rises from 0.5 to 0.95, so a nearly opaque pixel keeps its
    own colour. (Limited to the colour of the face a band further in, dark hair at a temple came
    out orange-brown, earrings silver-grey.)

    Before a plain wall there is no grain to divide up, and the averaging only cost the edge its
    shade: portrait_02's curls came back up to 50 levels paler than the photo, a grey haze round
    the hair at rest and moving. Where ``exact``, F solves the equation, and where no colour in
    range can (a dark strand over a light wall whose matte is thin), α is raised to the least
    that does, at most :data:`_RAISE` × its own: the strand covers that much of the wall. The
    returned matte is ``alpha`` but there."""
    img, back = image.astype(np.float32), plate.astype(np.float32)
    f = back + (img - back) / np.maximum(alpha, _MIN_ALPHA)[..., None]
    # pushed and pulled from the opaque pixels: each edge pixel gets the colour of the person
    # right beside it (the hair at a temple, not the forehead's skin a band further in)
    near = person_colour(image, alpha) if near is None else near
    if near is not None:
        # and averaged with its neighbours, weighted by α², which keeps the strand's colour and
        # drops the background's grain that the division amplified
        w2 = (alpha * alpha).astype(np.float32)
        smooth = cv2.GaussianBlur(f * w2[..., None], (0, 0), 1.5) / np.maximum(cv2.GaussianBlur(w2, (0, 0), 1.5), 1e-4)[..., None]
        limited = np.clip(smooth, near - spread, near + spread)
        keep = np.clip((alpha - 0.5) / 0.45, 0.0, 1.0)[..., None]
        if exact is not None:
            keep = np.where(exact[..., None], 1.0, keep)
        f = keep * f + (1 - keep) * limited
    if exact is not None and exact.any():
        need = np.maximum((back - img) / np.maximum(back, 1.0), (img - back) / np.maximum(255.0 - back, 1.0)).max(-1)
        raised = exact & (alpha > 0) & (need > alpha)
        # as stored (× 255), rounded up: rounded down, F would leave the range again; at most
        # _RAISE × the matte's own (raised further, a hair's soft tip before a dark wall, where a
        # few levels of shade ask for much of it, was drawn out by a turn into a dark wedge)
        alpha = np.where(raised, np.ceil(np.minimum(np.minimum(need, _RAISE * alpha), 1.0) * 255.0 - 1e-3) / 255.0, alpha).astype(np.float32)
        f = np.where(raised[..., None], back + (img - back) / np.maximum(alpha, _MIN_ALPHA)[..., None], f)
    return np.where(alpha[..., None] > 0, np.clip(f + 0.5, 0, 255), image).astype(np.uint8), alpha


def _rim_blend(image: np.ndarray, fill: np.ndarray, hole: np.ndarray, rim: np.ndarray, near: np.ndarray | None,
               released: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The photo's ``rim`` (bool, just past the matte) as a blend of the background and ``near``
    (:func:`person_colour`): (plate, (S, S) float32 rim alpha, (S, S, 3) uint8 rim colour).
    ``fill`` is the background filled under ``hole`` and the rim both. The plate is that fill
    under the person and where the rim is such a blend; where the photo is no such blend (a
    textured background, a star beside the head), the plate keeps it and the rim alpha is 0.
    ``released`` (bool, part of ``rim``): pixels past the matte's grown edge, taken only where
    they carry some of the person's shade (rim alpha ≥ _MIN_ALPHA)."""
    rim_alpha = np.zeros(rim.shape, np.float32)
    if not rim.any() or near is None:
        return np.where(hole[..., None], fill, image), rim_alpha, image
    img, bg = image.astype(np.float32), fill.astype(np.float32)
    d = near - bg
    n2 = (d * d).sum(-1)
    rel = img - bg
    a = np.clip((rel * d).sum(-1) / np.maximum(n2, 1.0), 0.0, 1.0)
    residual = np.linalg.norm(rel - a[..., None] * d, axis=-1)
    blend = rim & (n2 > _RIM_CONTRAST ** 2) & (residual < _RIM_RESIDUAL)
    if released is not None:
        blend &= ~released | (a >= _MIN_ALPHA)
    rim_alpha[blend] = a[blend]
    plate = np.where((hole | blend)[..., None], fill, image)
    return plate, rim_alpha, np.clip(near + 0.5, 0, 255).astype(np.uint8)


def _wall_without_strands(image: np.ndarray, hole: np.ndarray, known: np.ndarray) -> np.ndarray:
    """(S, S, 3) uint8: the wall around the person without thin strands on it, a median over a
    window wider than a strand; under the person (``hole``), the smooth fill of the ``known`` wall,
    so the person's own pixels do not pull the median."""
    filled = np.where(hole[..., None], np.clip(_pyramid_fill(image.astype(np.float32), known) + 0.5, 0, 255), image).astype(np.uint8)
    return cv2.medianBlur(filled, 2 * max(int(round(_STRAY_WINDOW * image.shape[0])), 1) + 1)


def stray_strands(image: np.ndarray, alpha: np.ndarray, near: np.ndarray, inside: np.ndarray | None = None) -> np.ndarray:
    """(S, S) float32 alpha of thin strands lying on a plain background within
    :data:`_STRAY_REACH` past the matte ``alpha``, 0 elsewhere; ``near`` is
    :func:`person_colour`, ``inside`` (bool) the crop pixels inside the photo.

    The segmentation leaves out flyaway hairs a few pixels past a head of curls. Kept in the
    plate, they stayed on the wall, still, when the head moved off (portrait_02 × driving_02).
    The wall without them is a median over a window wider than a strand. A strand is a thin
    line darkened (or lightened) from that wall towards the person's colour by well over the
    wall's own grain, and its alpha is how far: I ≈ αF + (1-α)B along that line."""
    size = alpha.shape[0]
    out = np.zeros(alpha.shape, np.float32)
    img = image.astype(np.float32)
    hole = plate_hole(alpha)
    known = ~hole if inside is None else ~hole & inside
    dist = cv2.distanceTransform((~hole).astype(np.uint8), cv2.DIST_L2, 3)
    reach = _STRAY_REACH * size
    near_wall = known & (dist <= 2 * reach)
    if not near_wall.any():
        return out
    # plain: judged on the wall beyond the strands' reach (dense dark strands are no wall texture)
    plain = _local_spread(image, known & (dist > reach), _REACH * size) < _PLAIN
    if not (plain & near_wall).any():  # foliage, a painting, a crowd: no strands told from the wall here
        return out
    wall = _wall_without_strands(image, hole, known).astype(np.float32)
    towards = near - wall
    contrast = np.linalg.norm(towards, axis=-1)
    unit = towards / np.maximum(contrast, 1e-3)[..., None]
    along = ((img - wall) * unit).sum(-1)
    residual = np.linalg.norm(img - wall - along[..., None] * unit, axis=-1)
    usable = plain & (contrast > _RIM_CONTRAST)
    # the wall's own grain along that line, away from the head (robust: strands are few)
    sample = known & usable & (dist > reach) & (dist < 3 * reach)
    if sample.sum() < 100:
        return out
    noise = 1.4826 * float(np.median(np.abs(along[sample])))
    line = near_wall & usable & (along > max(_STRAY_NOISE * noise, _STRAY_MIN)) & (residual < _STRAY_RESIDUAL)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(line.astype(np.uint8), connectivity=8)
    # hair hangs from the head: a strand is a line near it, reached from the person through other
    # strands; a line that runs on away from the head (a door's edge, the wood's grain) is the wall's
    usable_line = stats[:, cv2.CC_STAT_AREA] >= _STRAY_PIXELS
    usable_line[np.unique(labels[line & (dist > reach)])] = False
    usable_line[0] = False
    strand = pieces.reached(labels, usable_line, hole, _STRAY_CHAIN)[labels]
    if not strand.any():
        return out
    # and the strand's anti-aliased fringe beside it
    strand = cv2.dilate(strand.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    strand &= near_wall & usable & (along > 2.0 * noise)
    out[strand] = np.clip(along[strand] / contrast[strand], 0.0, 1.0)
    out[out < _MIN_ALPHA] = 0.0
    return out


def faint_fringe(image: np.ndarray, alpha: np.ndarray, inside: np.ndarray | None = None) -> np.ndarray:
    """(S, S) float32 alpha of the hair's faint fringe just past the matte ``alpha`` before a plain
    wall, 0 elsewhere; ``inside`` (bool) the crop pixels inside the photo.

    Dark hair before a dark wall (a studio backdrop, a painted ground) ends in strands only a
    dozen grey levels darker than the wall, a few px past where the segmentation stops. The
    nearest opaque person colour is no guide there: the matte's own edge pixels are half wall
    (portrait_05: the hair's edge 2-12 levels off the wall), so the colour line of
    :func:`stray_strands` and the rim has too little contrast to use. Left in the plate, the
    strands stayed on the wall as a dark outline of the head's old place whenever it moved.
    Here a pixel darker than the wall is read against the hair's darkest opaque tone nearby, a
    lighter one against its lightest (smoothed over the hair's grain); the strands are what lies
    well beyond the wall's grain towards that tone within :data:`_FRINGE_REACH`, reached from the
    matte, and their alpha is how far towards it they lie (on luminance: I ≈ αF + (1-α)B)."""
    size = alpha.shape[0]
    out = np.zeros(alpha.shape, np.float32)
    hole = plate_hole(alpha)
    known = ~hole if inside is None else ~hole & inside
    # from the matte itself: the rim just past it (plate_hole's growth) is where most of the fringe lies
    person = alpha > 0
    dist = cv2.distanceTransform((~person).astype(np.uint8), cv2.DIST_L2, 3)
    reach = _FRINGE_REACH * size
    band = ~person & (dist <= reach)
    if inside is not None:
        band &= inside
    if not band.any():
        return out
    far = known & (dist > _STRAY_REACH * size)
    plain = _local_spread(image, far, _REACH * size) < _PLAIN
    band &= plain
    opaque = alpha >= 1.0 - _MIN_ALPHA
    if not band.any() or not opaque.any():
        return out
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    wall = cv2.cvtColor(_wall_without_strands(image, hole, known), cv2.COLOR_RGB2GRAY).astype(np.float32)
    sample = far & plain & (dist < 3 * _STRAY_REACH * size)
    if sample.sum() < 100:
        return out
    noise = 1.4826 * float(np.median(np.abs(grey[sample] - wall[sample])))
    # the hair's darkest and lightest tones near the edge
    k = 2 * max(int(round(_FRINGE_TONE * size)), 1) + 1
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    # of the hair's smoothed tone: its single darkest grain would put the strands' own colour past black
    soft = cv2.GaussianBlur(grey, (0, 0), 1.0)
    tones = np.dstack([cv2.erode(np.where(opaque, soft, 255.0).astype(np.float32), disc),
                       cv2.dilate(np.where(opaque, soft, 0.0).astype(np.float32), disc)])
    darkest, lightest = np.moveaxis(_pyramid_fill(tones, opaque), -1, 0)
    # darker or lighter than the wall, each towards the hair's tone that way (at a temple the
    # skin beside the hair is lighter than a dark wall, the strands darker)
    darker = grey < wall
    contrast = np.where(darker, np.minimum(wall - darkest, wall), np.minimum(lightest - wall, 255.0 - wall))
    shift = np.abs(grey - wall)
    # alpha is shift / contrast: the wall's grain over the contrast is its error (a tenth at most)
    usable = band & (contrast > max(_FRINGE_CONTRAST * noise, 2 * _STRAY_MIN))
    line = usable & (shift > max(_FRINGE_SHIFT * noise, _STRAY_MIN / 1.5))
    _, labels, stats, _ = cv2.connectedComponentsWithStats(line.astype(np.uint8), connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= _STRAY_PIXELS
    keep[np.unique(labels[line & (dist > reach - 1.0)])] = False  # runs on past the band: the wall's own line
    keep[0] = False
    strand = pieces.reached(labels, keep, person, _STRAY_CHAIN)[labels]
    out[strand] = np.clip(shift[strand] / contrast[strand], 0.0, 1.0)
    out[out < _MIN_ALPHA] = 0.0
    return out


def lines_into_the_edge(found: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """(S, S) bool: the pieces of ``found`` (bool, strands told from a plain wall) that are the
    wall's own straight lines: each connected piece that reaches the photo's edge (``inside``,
    bool: the crop pixels inside the photo; the crop's own border counts too) and whose centre
    line bends by no more than :data:`_EDGE_LINE_BEND` px (:func:`_bend`).

    :func:`stray_strands` and :func:`faint_fringe` leave out a line that runs on past their reach
    (a door's edge); one cut by the photo's edge cannot be seen to run on. A wall panel's soft
    vertical edge above a head near the photo's top (a news-studio portrait) was taken as a strand:
    it stood up from the hair like an antenna wherever the head went, and the plate was filled
    under it with a dark seam."""
    out = np.zeros(found.shape, bool)
    if not found.any():
        return out
    to_edge = cv2.distanceTransform(np.pad(inside, 1).astype(np.uint8), cv2.DIST_L2, 3)[1:-1, 1:-1]
    _, labels = cv2.connectedComponents(found.astype(np.uint8), connectivity=8)
    for i in np.unique(labels[found & (to_edge <= 1.5)]):
        piece = labels == i
        if _bend(piece) <= _EDGE_LINE_BEND:
            out |= piece
    return out


def _bend(piece: np.ndarray) -> float:
    """How far (px, RMS) the centre line of a thin ``piece`` (bool) strays from a straight line:
    its pixels binned along their principal axis, each bin's mean offset across it against the
    line fitted through those means (the piece's width does not count)."""
    ys, xs = np.nonzero(piece)
    if len(xs) < 3:
        return 0.0
    pts = np.stack([xs, ys], 1).astype(np.float64)
    pts -= pts.mean(0)
    _, vecs = np.linalg.eigh(np.cov(pts.T))
    along, across = pts @ vecs[:, 1], pts @ vecs[:, 0]
    bins = np.round(along).astype(np.int64)
    bins -= bins.min()
    count = np.bincount(bins)
    used = count > 0
    t = np.flatnonzero(used).astype(np.float64)
    centre = np.bincount(bins, across)[used] / count[used]
    if len(t) < 3:
        return 0.0
    fit = np.polyval(np.polyfit(t, centre, 1), t)
    return float(np.sqrt(np.mean((centre - fit) ** 2)))


def _soft_edge_plate(plate: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``plate`` with only its low frequencies where the matte is partial (0 < α < 1).

    There the unmixed colour F holds the plate's grain, negated ((I - (1-α)B) / α); moved by a
    fraction of a pixel it no longer cancels the still plate's grain, and the edge shimmers in
    proportion to (1 - α) × the plate's gradient. The true background behind a soft edge is
    unknown anyway: its colour is kept, its grain is not."""
    soft = ((alpha > 0) & (alpha < 1)).astype(np.float32)
    if not soft.any():
        return plate
    weight = np.minimum(cv2.GaussianBlur(soft, (0, 0), _SOFT_PLATE_SIGMA) * 2.0, 1.0) * (alpha > 0)
    smooth = cv2.GaussianBlur(plate.astype(np.float32), (0, 0), _SOFT_PLATE_SIGMA)
    out = weight[..., None] * smooth + (1 - weight[..., None]) * plate
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def plate_hole(alpha: np.ndarray) -> np.ndarray:
    """(S, S) bool: where the plate may be filled for an (S, S) matte: the matte and
    :data:`_PLATE_GROW` of the crop side (at least 1 px) beyond it. Elsewhere the plate is the photo."""
    grow = max(_PLATE_GROW * alpha.shape[0], 1.0)
    return cv2.distanceTransform((alpha == 0).astype(np.uint8), cv2.DIST_L2, 3) <= grow


def build_layers(image: np.ndarray, landmarks: np.ndarray, mask: np.ndarray | None,
                 frame: tuple[int, int, int, int] | None = None) -> tuple[Layers | None, str]:
    """Split a portrait crop into layers, or say why not: (layers, "") or (None, reason).

    ``mask``: the crop's person mask ((S, S) float32), None when segmentation failed.
    ``frame``: (x0, y0, x1, y1), the crop pixels inside the photo; the rest is never shown and
    never fills the plate (what lies there was made up from the photo's edge).
    """
    if mask is None:
        return None, "the person segmentation is unavailable or missed the face"
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or image.shape[0] != image.shape[1]:
        return None, f"the crop is not a square 8-bit RGB image ({image.shape}, {image.dtype})"
    if float((mask < 0.5).mean()) < _MIN_BACKGROUND:
        return None, "the person fills the picture: there is no background to separate"
    oval = np.zeros(mask.shape, np.uint8)
    cv2.fillPoly(oval, [landmarks[topology.mesh()["oval"], :2].round().astype(np.int32)], 1)
    alpha, released = soft_matte(image, mask, sure_person=oval > 0)
    if frame is not None:
        alpha = _across_edge(alpha, mask, frame)
        released &= alpha == 0
    if not (alpha == 0).any():
        return None, "the matte leaves no background"
    outside = np.zeros(alpha.shape, bool)
    if frame is not None:
        x0, y0, x1, y1 = frame
        outside[:] = True
        outside[y0:y1, x0:x1] = False
    near = person_colour(image, alpha)  # read by the strands, the rim and the unmixing (a pyramid fill of the whole crop)
    stray = np.zeros(alpha.shape, np.float32) if near is None else stray_strands(image, alpha, near, ~outside)
    fringe = faint_fringe(image, np.maximum(alpha, stray), ~outside)
    wall = lines_into_the_edge((stray > 0) | (fringe > 0), ~outside)
    stray[wall] = 0.0
    fringe[wall] = 0.0
    alpha = np.maximum(np.maximum(alpha, stray), fringe)
    hole = alpha > 0
    if outside.any() and not (hole | outside).all():
        hole |= outside
    # filled past the matte too, over its blurred rim and what it gave up at the silhouette: the
    # photo there still holds the strands' faint shade, which left in the plate stayed behind as a
    # haze of hair; as the rim, it goes with the person. The background in the photo stays the source's, exactly.
    grown = plate_hole(alpha)
    rim = (grown | released) & ~hole
    fill = background_plate(image, hole | rim, outside)
    plate, rim_alpha, rim_colour = _rim_blend(image, fill, hole, rim, near, released & ~grown)
    plate = _soft_edge_plate(plate, alpha)
    # exact before a plain background (see unmix_foreground): judged on the background near the edge
    exact = _local_spread(image, alpha == 0, _REACH * image.shape[0] / 2) < _PLAIN
    fg, unmixed = unmix_foreground(image, alpha, plate, near=near, exact=exact)
    thin = unmixed > alpha  # a thin matte raised to carry the photo's shade
    alpha = unmixed
    fg = np.where(rim_alpha[..., None] > 0, rim_colour, fg)
    if frame is not None and frame[1] > 0:
        fg, alpha, rim_alpha = _hair_above(fg, alpha, rim_alpha, frame[1], oval > 0)
    person = np.maximum(alpha, rim_alpha)
    a8 = np.round(person * 255).astype(np.uint8)
    premultiplied = np.round(fg.astype(np.float32) * (a8.astype(np.float32) / 255.0)[..., None]).astype(np.uint8)
    # the fringe and a raised thin matte are fine hair wherever they lie: stretched by a move, they
    # fade rather than smear into dark wedges
    fine = np.maximum(fine_structure(person), ((fringe > 0) | thin).astype(np.uint8) * 255)
    # none at all: no frame need look for it (Layers.fine_fade's remap each frame)
    layers = Layers(np.ascontiguousarray(np.dstack([premultiplied, a8])), np.ascontiguousarray(plate), alpha,
                    fine if fine.any() else None)
    return replace(layers, still=still_edge(image, layers, ~outside)), ""
