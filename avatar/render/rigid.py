"""Rigid things on a face: glasses frames stay straight and move with the head.

A mesh warp bends everything on the face with the skin under it: a squint or a smile kinks a
glasses rim, and a head turn tears it. Prepared once per portrait, :func:`detect_frames` looks
for thin, high-contrast lines (a ridge filter) in a ring around each eye, leaving out the eye
and eyelashes and the brows; where they surround an eye the way a rim does, they are glasses.
Each frame those pixels then move with the head's rigid motion on the plane of the eyes (fitted
in 3-D on landmarks that move with the skull), blended smoothly back into the mesh warp.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np

from ..face import topology

RING = (0.13, 0.45)   # a rim lies between these radii around an eye centre (× outer inter-ocular distance)
GROW = 0.07
REACH = 1.5       # the frame is followed out to this many ring radii
MIN_COVER = 0.6       # share of the directions around an eye in which a line must be found
RIDGE_MIN = 80.0      # ridge strength of a rim line (Hessian units of :func:`_ridges`)


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

    @cached_property
    def pieces(self) -> list[tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]]:
        """(weight, plane, box) of each part that moves as one: the lenses, then the arms."""
        if not self.arms:
            return [(self.weight, self.plane, self.box)]
        lens = self.weight - sum(w for w, _, _ in self.arms)
        return [(np.clip(lens, 0.0, 1.0), self.plane, self.box), *self.arms]


def _ridges(grey: np.ndarray) -> np.ndarray:
    """Strength (grey levels) of thin lines, dark or bright, 1–4 px wide: the larger Hessian
    eigenvalue magnitude across scales, scale-normalised."""
    out = np.zeros_like(grey)
    for sigma in (1.0, 1.5, 2.0):
        g = cv2.GaussianBlur(grey, (0, 0), sigma)
        dxx = cv2.Sobel(g, cv2.CV_32F, 2, 0, ksize=3)
        dyy = cv2.Sobel(g, cv2.CV_32F, 0, 2, ksize=3)
        dxy = cv2.Sobel(g, cv2.CV_32F, 1, 1, ksize=3)
        tr, det = dxx + dyy, dxx * dyy - dxy**2
        disc = np.sqrt(np.maximum(tr**2 / 4 - det, 0))
        lam = np.maximum(np.abs(tr / 2 + disc), np.abs(tr / 2 - disc))
        other = np.minimum(np.abs(tr / 2 + disc), np.abs(tr / 2 - disc))
        out = np.maximum(out, (lam - other) * sigma**2)  # a line curves across, not along
    return out


def detect_frames(image: np.ndarray, landmarks: np.ndarray) -> RigidParts | None:
    """Glasses frames on a portrait crop (S, S, 3) with (478, 3) landmarks, or None."""
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
    # the frame lines only: what a clear lens shows is the face behind it, which moves with the
    # face (filling each lens to move it as one piece showed, on a turned portrait, a flat patch of
    # skin moved rigidly beside the mesh-warped cheek, with a hard edge along the rim)
    lens_reach = RING[1] * iod
    solid = cv2.dilate(line.astype(np.uint8), np.ones((5, 5), np.uint8))
    eye = np.zeros(line.shape, np.uint8)
    for ids in eyes:
        cv2.fillPoly(eye, [np.round(cv2.convexHull(pts[ids]) - [x0, y0]).astype(np.int32)], 1)
    eye = cv2.dilate(eye, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8))
    soft = cv2.GaussianBlur(solid.astype(np.float32), (0, 0), 2.0) * (1 - cv2.GaussianBlur(eye.astype(np.float32), (0, 0), 0.04 * lens_reach + 1))
    weight = np.zeros((size, size), np.float32)
    weight[y0:y1, x0:x1] = np.clip(soft, 0, 1)
    box = _box(weight)
    # the plane of the eyes: depth as a linear function of position
    ids = np.concatenate([m["eyes"], m["brows"], [6, 168, 197]])
    a = np.column_stack([lm[ids, 0], lm[ids, 1], np.ones(len(ids))])
    plane = np.linalg.lstsq(a, lm[ids, 2] if lm.shape[1] > 2 else np.zeros(len(ids)), rcond=None)[0]
    arms = _arms(weight, plane, lm, centres, iod)
    return RigidParts(weight, plane, box, arms)


def _box(weight: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(weight > 1e-3)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _arms(weight: np.ndarray, plane: np.ndarray, lm: np.ndarray, centres: list[np.ndarray],
          iod: float) -> tuple[tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]], ...]:
    """The temple arms of a frame ``weight`` (S, S): what lies beyond each lens on the far side
    from the nose, with a plane of its own whose depth runs from the lens plane's at the hinge to
    the face outline's nearest the arm's end (the ear), so a turn moves the arm's end with the ear."""
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
            out.append((w, arm_plane, _box(w)))
    return tuple(out)


def plane_affine(plane: np.ndarray, scale: float, rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """(2, 3) forward affine source → target pixels of points on ``plane`` moved by the 3-D
    similarity (scale, rotation, translation): a rigid plane seen head-on stays an affine image."""
    a, b, c = plane
    lin = scale * (rotation[:2, :2] + np.outer(rotation[:2, 2], [a, b]))
    off = scale * rotation[:2, 2] * c + translation[:2]
    return np.column_stack([lin, off])


def rigid_field(weight: np.ndarray, forward: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """At target pixel centres ``xs``, ``ys`` (crop px): a rigid piece's ``weight`` (S, S, source
    px) there and the source coordinates under its rigid motion ``forward`` (2, 3) (weight, sx,
    sy; float32)."""
    inv = cv2.invertAffineTransform(forward.astype(np.float64))
    sx = (inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2]).astype(np.float32)
    sy = (inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]).astype(np.float32)
    w = cv2.remap(weight, sx, sy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return w, sx, sy


def target_box(box: tuple[int, int, int, int], forward: np.ndarray, pad: float = 4.0) -> tuple[float, float, float, float]:
    """Where a rigid piece's source ``box`` lands in the target: (x0, y0, x1, y1) crop px around the moved box."""
    x0, y0, x1, y1 = box
    corners = np.array([[x0, y0, 1], [x1, y0, 1], [x0, y1, 1], [x1, y1, 1]], np.float64) @ forward.T
    return (*(corners.min(0) - pad), *(corners.max(0) + pad))
