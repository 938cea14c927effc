"""Rigid things on a face: glasses frames stay straight and move with the head.

A mesh warp bends everything on the face with the skin under it: a squint or a smile kinks a
glasses rim, and a head turn tears it. Prepared once per portrait, :func:`detect_frames` looks
for thin, high-contrast lines (a ridge filter) in a ring around each eye, leaving out the eye
and eyelashes and the brows; where they surround an eye the way a rim does, they are glasses. A
rim that runs through the band left out around an eye (along the lid's crease) is followed there
from the lines found on either side (:func:`_rims_through_eyes`).
The frames are painted out of the portrait (:func:`paint_out`), which the mesh warp then moves,
and drawn over it as a layer of their own (:func:`draw`): the lenses with the head's rigid motion
on the plane of the eyes (fitted in 3-D on landmarks that move with the skull), each temple arm
straight from its hinge to where the warp puts its end (:func:`arm_affine`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np

from ..face import topology
from . import pieces

RING = (0.13, 0.45)   # a rim lies between these radii around an eye centre (× outer inter-ocular distance)
GROW = 0.07
REACH = 1.5       # the frame is followed out to this many ring radii
MIN_COVER = 0.6       # share of the directions around an eye in which a line must be found
RIDGE_MIN = 80.0      # ridge strength of a rim line (Hessian units of :func:`_ridges`)
PAINT_OUT = 0.3       # the frame is painted out of the portrait where its weight exceeds this
# past the face the lines are followed down to FAINT ridge strength where that is FAINT_SNR times
# the ridge level around them, as long as they are lines (FAINT_DEPTH grey levels darker or brighter
# than FAINT_SIDE px to either side), reached from the lines found through FAINT_HOPS pieces
FAINT = 12.0
FAINT_SNR = 4.0
FAINT_SIDE = 3.0
FAINT_DEPTH = 4.0
FAINT_HOPS = 6
FAINT_RADIUS = 0.7  # ... within the lenses' reach (radii as RING's): an arm's far end runs into the hair
# a rim that runs through the band left out around an eye (along the lid's crease, or under the
# lower lid) is followed there from the rim found on either side (see _rims_through_eyes)
RIM_STEP = 20.0      # ridge units a path pays per row it steps
RIM_RIDGE = 0.5      # × RIDGE_MIN along the path ...
RIM_EVIDENCE = 0.6   # ... and a line across it, in this share of its columns
RIM_LENGTH = 0.3     # the path runs inside the band over at least this share of its columns
RIM_LINES = 3        # parallel lines taken at most per side of an eye (a wire, its bevel, a second wire)
COVER_FLOOR = 20.0    # grey levels: a frame pixel's coverage is its difference from the painted-out
                      # portrait over the largest nearby, or over this where that is smaller


@dataclass(frozen=True, eq=False)
class RigidParts:
    """What moves rigidly: a (S, S) float32 weight in source-crop pixels (1 on a frame line,
    fading to 0 within a few pixels) and the plane z = a x + b y + c it lies on (source pixels)."""

    weight: np.ndarray
    plane: np.ndarray
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 of where the weight is non-zero
    # temple arms run back from the lenses to the ears, off the plane of the eyes: each arm's
    # (weight, plane, box), its weight a share of ``weight`` (the lenses keep the rest)
    arms: tuple[tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]], ...] = ()
    # each arm's hinge and end ((2,) source px each), in the order of ``arms``
    axes: tuple[tuple[np.ndarray, np.ndarray], ...] = ()

    @cached_property
    def pieces(self) -> list[tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]]:
        """(weight, plane, box) of each part that moves as one: the lenses, then the arms."""
        if not self.arms:
            return [(self.weight, self.plane, self.box)]
        lens = self.weight - sum(w for w, _, _ in self.arms)
        return [(np.clip(lens, 0.0, 1.0), self.plane, self.box), *self.arms]


@dataclass(frozen=True, eq=False)
class WornPiece:
    """A rigid piece as a layer over the painted-out portrait, on ``box`` (x0, y0, x1, y1) of the
    source crop: premultiplied colour (h, w, 3) float32 and coverage (h, w) float32."""

    colour: np.ndarray
    alpha: np.ndarray
    box: tuple[int, int, int, int]


def _hessian(grey: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dxx, dyy, dxy), float32 like ``grey``, of ``grey`` smoothed by a Gaussian of ``sigma`` px."""
    g = cv2.GaussianBlur(grey, (0, 0), sigma)
    return (cv2.Sobel(g, cv2.CV_32F, 2, 0, ksize=3), cv2.Sobel(g, cv2.CV_32F, 0, 2, ksize=3),
            cv2.Sobel(g, cv2.CV_32F, 1, 1, ksize=3))


def _ridges(grey: np.ndarray) -> np.ndarray:
    """Strength (grey levels) of thin lines, dark or bright, 1–4 px wide: the larger Hessian
    eigenvalue magnitude across scales, scale-normalised."""
    out = np.zeros_like(grey)
    for sigma in (1.0, 1.5, 2.0):
        dxx, dyy, dxy = _hessian(grey, sigma)
        tr, det = dxx + dyy, dxx * dyy - dxy**2
        disc = np.sqrt(np.maximum(tr**2 / 4 - det, 0))
        lam = np.maximum(np.abs(tr / 2 + disc), np.abs(tr / 2 - disc))
        other = np.minimum(np.abs(tr / 2 + disc), np.abs(tr / 2 - disc))
        out = np.maximum(out, (lam - other) * sigma**2)  # a line curves across, not along
    return out


def detect_frames(image: np.ndarray, landmarks: np.ndarray, background: np.ndarray | None = None) -> RigidParts | None:
    """Glasses frames on a portrait crop (S, S, 3) with (478, 3) landmarks, or None.
    ``background``: (S, S) bool, where the crop shows what is behind the person (from the person
    segmentation); the frame's lines are followed over it at a lower contrast."""
    lm = landmarks.astype(np.float64)
    size = image.shape[0]
    iod = float(np.linalg.norm(lm[topology.EYE_OUTER[1], :2] - lm[topology.EYE_OUTER[0], :2]))
    if iod < 8:
        return None
    m = topology.mesh()
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    pts = lm[:, :2].astype(np.float32)
    eyes = [np.asarray(loop, int) for loop in m["eye_loops"]]
    centres = [pts[e].mean(0) for e in eyes]
    reach = RING[1] * REACH * iod  # the whole frame: lenses, the bridge and the temples near the face
    lo = np.floor(np.min(centres, 0) - reach).astype(int).clip(0, size)
    hi = np.ceil(np.max(centres, 0) + reach).astype(int).clip(0, size)
    x0, y0, x1, y1 = int(lo[0]), int(lo[1]), int(hi[0]), int(hi[1])
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None
    ridge = _ridges(grey[y0:y1, x0:x1])
    # not the eyes, their lashes or the brows: thin dark lines that belong to the face
    skip = np.zeros(ridge.shape, np.uint8)
    grow = max(int(GROW * iod), 2)
    for ids in eyes + [m["brows"][lm[m["brows"], 0] < lm[topology.NOSE_TIP, 0]], m["brows"][lm[m["brows"], 0] >= lm[topology.NOSE_TIP, 0]]]:
        cv2.fillPoly(skip, [np.round(cv2.convexHull(pts[ids]) - [x0, y0]).astype(np.int32)], 1)
    skip = cv2.dilate(skip, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8)) > 0
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    band = np.zeros(ridge.shape, bool)
    covers = []
    for c in centres:
        rx, ry = (xx - c[0]) / iod, (yy - c[1]) / iod
        r = np.hypot(rx, ry / 0.75)  # lenses are wider than tall
        ring = (r > RING[0]) & (r < RING[1]) & ~skip
        line = ring & (ridge > RIDGE_MIN) & (ry > 0)
        ang = ((np.arctan2(ry[line], rx[line]) + np.pi) / (2 * np.pi) * 24).astype(int) % 24
        seen = np.zeros(24, bool)
        seen[ang] = True
        possible = np.zeros(24, bool)
        low = ring & (ry > 0)
        possible[((np.arctan2(ry[low], rx[low]) + np.pi) / (2 * np.pi) * 24).astype(int) % 24] = True
        covers.append(seen.sum() / max(possible.sum(), 1))
        band |= ring
    if max(covers) < MIN_COVER:
        return None
    # the frame: every line that reaches into the rings, followed as far as it goes nearby (the
    # far lens of a turned head, the bridge, the temples); lines that never enter a ring are not it
    lines = ((ridge > RIDGE_MIN) & ~skip).astype(np.uint8)
    n, labels = cv2.connectedComponents(lines, connectivity=8)
    keep = np.zeros(n, bool)
    keep[np.unique(labels[band & (lines > 0)])] = True
    keep[0] = False
    line = keep[labels].astype(np.float32)
    if line.sum() < 0.5 * iod:
        return None
    if background is not None:
        lens = np.min([np.hypot((xx - c[0]) / iod, (yy - c[1]) / (0.75 * iod)) for c in centres], 0) < FAINT_RADIUS
        line = np.maximum(line, _faint_continuation(grey[y0:y1, x0:x1], ridge, line > 0, skip | ~lens | ~background[y0:y1, x0:x1]))
    # the frame lines only: what a clear lens shows is the face behind it, which moves with the
    # face (filling each lens to move it as one piece showed, on a turned portrait, a flat patch of
    # skin moved rigidly beside the mesh-warped cheek, with a hard edge along the rim)
    lens_reach = RING[1] * iod
    solid = cv2.dilate(line.astype(np.uint8), np.ones((5, 5), np.uint8))
    hulls = []
    for ids in eyes:
        one = np.zeros(line.shape, np.uint8)
        cv2.fillPoly(one, [np.round(cv2.convexHull(pts[ids]) - [x0, y0]).astype(np.int32)], 1)
        hulls.append(one)
    hull = np.maximum.reduce(hulls)
    eye = cv2.dilate(hull, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8))
    soft = cv2.GaussianBlur(solid.astype(np.float32), (0, 0), 2.0) * (1 - cv2.GaussianBlur(eye.astype(np.float32), (0, 0), 0.04 * lens_reach + 1))
    # where the rim crosses that band around an eye, only the eye itself is kept out: left in the
    # portrait there, the rim was bent and stretched with the lid under its rigid copy, a second,
    # kinked rim line and, on a closing lid, a grey smear (portrait_05's near lens along the crease)
    through = _rims_through_eyes(grey[y0:y1, x0:x1], ridge, line > 0, hulls, grow)
    if through.any():
        bridged = cv2.dilate(through.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(np.float32)  # as wide as the lines found
        soft = np.maximum(soft, cv2.GaussianBlur(bridged, (0, 0), 1.0) * (1 - cv2.GaussianBlur(hull.astype(np.float32), (0, 0), 1.0)))
    weight = np.zeros((size, size), np.float32)
    weight[y0:y1, x0:x1] = np.clip(soft, 0, 1)
    box = _box(weight)
    # the plane of the eyes: depth as a linear function of position
    ids = np.concatenate([m["eyes"], m["brows"], [6, 168, 197]])
    a = np.column_stack([lm[ids, 0], lm[ids, 1], np.ones(len(ids))])
    plane = np.linalg.lstsq(a, lm[ids, 2] if lm.shape[1] > 2 else np.zeros(len(ids)), rcond=None)[0]
    arms = _arms(weight, plane, lm, centres, iod)
    return RigidParts(weight, plane, box, tuple(a[:3] for a in arms), tuple(a[3] for a in arms))


def _faint_continuation(grey: np.ndarray, ridge: np.ndarray, found: np.ndarray, skip: np.ndarray) -> np.ndarray:
    """(h, w) float32: 1 where the frame lines ``found`` go on as fainter thin lines over a quiet
    background (``grey``, ``ridge`` and ``skip``, where not to look: the person, the eyes and brows,
    beyond the lenses' reach; all over the same box).

    Over skin a rim stands out clearly; past the face, before a dark wall, it can be a quarter as
    strong (portrait_05's far lens: ridge 20-50, where RIDGE_MIN is 80 and the rim over skin
    reaches 150-200) while the wall around it is quieter still (1-3). Left out, that arc of the rim stayed in the background
    plate while the rest of the frame moved: a loose fragment of the lens beside the head."""
    h, w = ridge.shape
    # the level around a thin line: what an opening (wider than the line) leaves of the ridge
    quiet = cv2.morphologyEx(ridge, cv2.MORPH_OPEN, np.ones((15, 15), np.uint8))
    cand = (ridge > np.maximum(FAINT, FAINT_SNR * (quiet + 1.0))) & ~skip
    ys, xs = np.nonzero(cand)
    if not len(ys):
        return np.zeros((h, w), np.float32)
    # a line, not an edge (the person's outline answers the ridge filter too): the picture is
    # darker (or brighter) here than on both sides across it
    g = cv2.GaussianBlur(grey, (0, 0), 1.0)
    dxx, dyy, dxy = (d[ys, xs] for d in _hessian(grey, 1.5))
    # the direction across the line: the Hessian's eigenvector of the larger |eigenvalue|
    theta = 0.5 * np.arctan2(2 * dxy, dxx - dyy)
    half = np.sqrt(((dxx - dyy) / 2) ** 2 + dxy**2)
    first = (dxx + dyy) / 2 + half  # eigenvalue along theta
    second = (dxx + dyy) / 2 - half
    theta = np.where(np.abs(first) >= np.abs(second), theta, theta + np.pi / 2)
    dark, bright = _line_polarity(g, xs, ys, np.cos(theta), np.sin(theta))
    line = dark | bright
    thin = np.zeros((h, w), np.uint8)
    thin[ys[line], xs[line]] = 1
    # followed from the lines found: pieces that touch them (2 px gaps), then pieces that touch those
    n, labels = cv2.connectedComponents(thin, connectivity=8)
    if n <= 1:
        return np.zeros((h, w), np.float32)
    usable = np.arange(n) > 0
    return pieces.reached(labels, usable, found, FAINT_HOPS)[labels].astype(np.float32)


def _line_polarity(g: np.ndarray, xs: np.ndarray, ys: np.ndarray, nx: np.ndarray | float,
                   ny: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Per point (``xs``, ``ys``) of the smoothed picture ``g``: (darker, brighter) than it is
    :data:`FAINT_SIDE` px to both sides along the direction (``nx``, ``ny``) across a line, by
    more than :data:`FAINT_DEPTH`: a line, not an edge (one side darker, the other brighter)."""
    h, w = g.shape
    here = g[ys, xs]
    sides = []
    for sgn in (-1, 1):
        sx = np.clip(np.round(xs + sgn * FAINT_SIDE * nx).astype(int), 0, w - 1)
        sy = np.clip(np.round(ys + sgn * FAINT_SIDE * ny).astype(int), 0, h - 1)
        sides.append(g[sy, sx] - here)
    lo, hi = np.minimum(*sides), np.maximum(*sides)
    return lo > FAINT_DEPTH, hi < -FAINT_DEPTH


def _rims_through_eyes(grey: np.ndarray, ridge: np.ndarray, found: np.ndarray, hulls: list[np.ndarray],
                       grow: int) -> np.ndarray:
    """(h, w) bool: where a lens rim runs through the band left out around an eye (its ``hulls``,
    (h, w) uint8 each, grown by ``grow`` px, less the hull), above or below it, continued from the
    rim lines ``found`` at both ends (``grey``, ``ridge``: the same box).

    Across the band's columns, the path of strongest ridge (dynamic programming, at most one row
    per column, each row step costing :data:`RIM_STEP` ridge units) from a found line on one side
    to one on the other. It is a rim only where it is one line: at least :data:`RIM_RIDGE` ×
    RIDGE_MIN of ridge and darker (or, all along, brighter) than the picture
    :data:`FAINT_SIDE` px above and below it in :data:`RIM_EVIDENCE` of its columns. Eyelashes
    stop at the hull and a crease alone reaches no line found outside the band."""
    h, w = ridge.shape
    out = np.zeros((h, w), bool)
    g = cv2.GaussianBlur(grey, (0, 0), 1.0)
    near = cv2.dilate(found.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0  # a found line 2 px away
    yy = np.arange(h)[:, None]
    for hull in hulls:
        band = (cv2.dilate(hull, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8)) > 0) & (hull == 0)
        cols = np.flatnonzero(band.any(0))
        rows_in = np.flatnonzero(hull.any(1))
        if len(cols) < 3 or not len(rows_in):
            continue
        mid = 0.5 * (rows_in[0] + rows_in[-1])
        reach = cv2.dilate(band.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
        xs = np.arange(cols[0], cols[-1] + 1)  # columns over the band
        for upper in (True, False):
            # the path may leave the band (where a rim crosses it near the corners, the band's
            # rows jump); only what lies in it is judged and kept
            allowed = (reach & ((yy < mid) if upper else (yy > mid)) & (hull == 0))[:, xs]
            for _ in range(RIM_LINES):  # a wire and its bevel are parallel lines: each is taken
                path = _strongest_path(ridge[:, xs], allowed, near[:, xs[0]], near[:, xs[-1]])
                if path is None:
                    break
                inside = band[path, xs]
                if inside.sum() < RIM_LENGTH * len(xs):
                    break  # a few pixels of skin texture can pass for a line
                r = ridge[path, xs][inside]
                dark, bright = _line_polarity(g, xs[inside], path[inside], 0.0, 1.0)  # across: up and down
                if (r > RIM_RIDGE * RIDGE_MIN).mean() < RIM_EVIDENCE or max(dark.mean(), bright.mean()) < RIM_EVIDENCE:
                    break
                near_band = reach[path, xs]  # kept next to the band too: the blurred eye mask thins the lines found there
                out[path[near_band], xs[near_band]] = True
                for dy in range(-2, 3):  # the next line lies beside this one (where the two meet a found line, they may touch)
                    allowed[np.clip(path[inside] + dy, 0, h - 1), np.flatnonzero(inside)] = False
    return out


def _strongest_path(ridge: np.ndarray, allowed: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray | None:
    """Row per column of the (h, n) ``allowed`` pixels' path of largest summed ``ridge`` that steps
    at most one row a column (each step costing :data:`RIM_STEP`), starting in a ``start`` row and
    ending in an ``end`` row ((h,) bool each); None where there is no such path."""
    h, n = ridge.shape
    score = np.where(allowed[:, 0] & start, ridge[:, 0], -np.inf)
    back = np.zeros((h, n), np.int64)
    rows = np.arange(h)
    for j in range(1, n):
        prev = np.stack([np.roll(score, 1), score, np.roll(score, -1)])  # from the row above, same, below
        prev[0, 0], prev[2, -1] = -np.inf, -np.inf
        prev[[0, 2]] -= RIM_STEP
        k = np.argmax(prev, 0)
        score = np.where(allowed[:, j], prev[k, rows] + ridge[:, j], -np.inf)
        back[:, j] = k - 1
    last = np.where(end, score, -np.inf)
    if not np.isfinite(last.max()):
        return None
    y = int(np.argmax(last))
    path = np.empty(n, np.int64)
    for j in range(n - 1, -1, -1):
        path[j] = y
        y += int(back[y, j])
    return path


def _box(weight: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(weight > 1e-3)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _arms(weight: np.ndarray, plane: np.ndarray, lm: np.ndarray, centres: list[np.ndarray],
          iod: float) -> tuple[tuple[np.ndarray, np.ndarray, tuple[int, int, int, int], tuple[np.ndarray, np.ndarray]], ...]:
    """The temple arms of a frame ``weight`` (S, S): what lies beyond each lens on the far side
    from the nose, with a plane of its own whose depth runs from the lens plane's at the hinge to
    the face outline's nearest the arm's end (the ear), so a turn moves the arm's end with the ear;
    each as (weight, plane, box, (hinge, end))."""
    if lm.shape[1] < 3:
        return ()
    size = weight.shape[0]
    oval = lm[topology.mesh()["oval"]]
    nose_x = lm[topology.NOSE_TIP, 0]
    out = []
    ys, xs = np.nonzero(weight > 0.5)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    for c in centres:
        side = np.sign(c[0] - nose_x)
        if side == 0:
            continue
        hinge_x = c[0] + side * RING[1] * 0.75 * iod  # about where the lens ends and the arm starts
        on = side * (xs - hinge_x) > 0
        if on.sum() < 0.1 * iod:
            continue
        pts = np.column_stack([xs[on], ys[on]]).astype(np.float64)
        ends = pts[np.argsort(side * pts[:, 0])]
        hinge, end = ends[: max(len(ends) // 10, 1)].mean(0), ends[-max(len(ends) // 10, 1):].mean(0)
        length = float(np.linalg.norm(end - hinge))
        if length < 0.1 * iod:
            continue
        u = (end - hinge) / length
        z_hinge = float(plane @ [hinge[0], hinge[1], 1.0])
        z_end = float(oval[np.argmin(np.linalg.norm(oval[:, :2] - end, axis=1)), 2])
        k = (z_end - z_hinge) / length
        arm_plane = np.array([k * u[0], k * u[1], z_hinge - k * float(hinge @ u)])
        # the arm's share of the weight ramps in over a few pixels past the hinge
        along = (xx - hinge[0]) * u[0] + (yy - hinge[1]) * u[1]
        share = np.clip(along / max(0.05 * iod, 2.0), 0.0, 1.0) * (side * (xx - hinge_x) > -0.05 * iod)
        w = (weight * share).astype(np.float32)
        if (w > 1e-3).any():
            out.append((w, arm_plane, _box(w), (hinge, end)))
    return tuple(out)


def plane_affine(plane: np.ndarray, scale: float, rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """(2, 3) forward affine source → target pixels of points on ``plane`` moved by the 3-D
    similarity (scale, rotation, translation): a rigid plane seen head-on stays an affine image."""
    a, b, c = plane
    lin = scale * (rotation[:2, :2] + np.outer(rotation[:2, 2], [a, b]))
    off = scale * rotation[:2, 2] * c + translation[:2]
    return np.column_stack([lin, off])


def paint_out(image: np.ndarray, parts: RigidParts) -> tuple[np.ndarray, tuple[WornPiece | None, ...]]:
    """The portrait crop (S, S, 3) uint8 with the frames painted out, and the frames as layers of
    their own, one per piece of :attr:`RigidParts.pieces` (None where a piece has no pixels).

    Drawn rigidly over the painted-out portrait's warp, a frame line is never also stretched by
    the warp: where a rim stood out over the hair or the background, the stretch between the
    moving head and the still wall drew a long ghost of it."""
    where = (parts.weight > PAINT_OUT).astype(np.uint8)
    clean = cv2.inpaint(image, where, 3, cv2.INPAINT_TELEA)
    # coverage: a pixel's difference from what lies behind, over the line's full contrast nearby
    diff = np.abs(image.astype(np.float32) - clean).max(-1)
    full = cv2.dilate(diff, np.ones((5, 5), np.uint8))
    alpha = np.where(where > 0, np.clip(diff / np.maximum(full, COVER_FLOOR), 0.0, 1.0), 0.0).astype(np.float32)
    premultiplied = image.astype(np.float32) - (1.0 - alpha)[..., None] * clean  # image = it + (1 - alpha) clean
    total = np.maximum(parts.weight, 1e-6)
    pieces: list[WornPiece | None] = []
    for weight, _, _ in parts.pieces:
        share = np.clip(weight / total, 0.0, 1.0)
        if not (share * alpha > 1e-3).any():
            pieces.append(None)
            continue
        x0, y0, x1, y1 = _box(share * alpha)
        s = share[y0:y1, x0:x1]
        pieces.append(WornPiece(np.ascontiguousarray(premultiplied[y0:y1, x0:x1] * s[..., None]),
                                np.ascontiguousarray(s * alpha[y0:y1, x0:x1]), (x0, y0, x1, y1)))
    return clean, tuple(pieces)


def arm_affine(rigid: np.ndarray, hinge: np.ndarray, end: np.ndarray, end_target: np.ndarray) -> np.ndarray:
    """(2, 3) forward affine of a temple arm whose hinge moves with ``rigid`` (2, 3) and whose end
    lands at ``end_target``: straight from the one to the other, as thick as ``rigid`` makes it."""
    length = float(np.linalg.norm(end - hinge))
    u = (end - hinge) / max(length, 1e-6)
    n = np.array([-u[1], u[0]])
    hinge_target = rigid[:, :2] @ hinge + rigid[:, 2]
    lin = np.column_stack([(end_target - hinge_target) / max(length, 1e-6), rigid[:, :2] @ n]) @ np.linalg.inv(np.column_stack([u, n]))
    return np.column_stack([lin, hinge_target - lin @ hinge])


def draw(out: np.ndarray, pieces: tuple[WornPiece | None, ...], forwards: list[np.ndarray],
         mapped: np.ndarray | None = None) -> None:
    """Composite (in place) each piece, moved by its forward affine (2, 3) source → target crop
    px, over ``out`` (S, S, 3) uint8. Pieces are summed before compositing: where an arm's share
    ramps in past the hinge the two together cover the line once. ``mapped`` ((S, S) float32, in
    place): the share of each pixel that is still what lay under the pieces."""
    h, w = out.shape[:2]
    placed = []
    for piece, forward in zip(pieces, forwards):
        if piece is None:
            continue
        bx0, by0, bx1, by1 = target_box(piece.box, forward)
        x0, y0 = max(int(np.floor(bx0)), 0), max(int(np.floor(by0)), 0)
        x1, y1 = min(int(np.ceil(bx1)), w), min(int(np.ceil(by1)), h)
        if x1 > x0 and y1 > y0:
            placed.append((piece, forward, (x0, y0, x1, y1)))
    if not placed:
        return
    ux0, uy0 = min(p[2][0] for p in placed), min(p[2][1] for p in placed)
    ux1, uy1 = max(p[2][2] for p in placed), max(p[2][3] for p in placed)
    cover = np.zeros((uy1 - uy0, ux1 - ux0), np.float32)
    colour = np.zeros((uy1 - uy0, ux1 - ux0, 3), np.float32)
    for piece, forward, (x0, y0, x1, y1) in placed:
        m = forward.astype(np.float64).copy()
        m[:, 2] += m[:, :2] @ piece.box[:2] - [x0, y0]  # piece-box pixels → target-box pixels
        size = (x1 - x0, y1 - y0)
        cover[y0 - uy0:y1 - uy0, x0 - ux0:x1 - ux0] += cv2.warpAffine(piece.alpha, m, size, flags=cv2.INTER_LINEAR,
                                                                      borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        colour[y0 - uy0:y1 - uy0, x0 - ux0:x1 - ux0] += cv2.warpAffine(piece.colour, m, size, flags=cv2.INTER_LINEAR,
                                                                       borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    roi = out[uy0:uy1, ux0:ux1].astype(np.float32)
    out[uy0:uy1, ux0:ux1] = np.clip(colour + (1.0 - np.minimum(cover, 1.0))[..., None] * roi + 0.5, 0, 255).astype(np.uint8)
    if mapped is not None:
        mapped[uy0:uy1, ux0:ux1] *= 1.0 - np.minimum(cover, 1.0)


def target_box(box: tuple[int, int, int, int], forward: np.ndarray, pad: float = 4.0) -> tuple[float, float, float, float]:
    """Where a rigid piece's source ``box`` lands in the target: (x0, y0, x1, y1) crop px around the moved box."""
    x0, y0, x1, y1 = box
    corners = np.array([[x0, y0, 1], [x1, y0, 1], [x0, y1, 1], [x1, y1, 1]], np.float64) @ forward.T
    return (*(corners.min(0) - pad), *(corners.max(0) + pad))
