"""Which way each face-mesh triangle faces, and texture for the side that turns into view.

A 2-D warp of a turning head folds the side that turns away (its triangles flip over and drag
their texture across the cheek) and stretches the side that turns into view out of a few
foreshortened pixels (a sliver of cheek and hair boundary blown up into a streaked band).
Depth order fixes the first: triangles that face away from the camera in the target are
culled and the rest are drawn far to near, so the nearest surface wins. The mesh's left-right
correspondence fixes the second: a triangle that the portrait shows foreshortened and the target
shows larger takes its mirror partner's texture (the near side, seen well in the portrait),
brightness matched to its own side's light. All of it is computed from areas of the mesh's triangles, so it
costs a few vector operations per frame; the colour match is prepared once per portrait.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from ..face import topology
from .triangles import signed_areas

_MIRROR = Path(__file__).resolve().parent.parent / "assets" / "face_mirror.npy"
VISIBLE_START = 0.6   # a triangle seen at less than this share of its frontal area may borrow its mirror's texture
VISIBLE_FULL = 0.3    # ... and borrows it fully from here on
GAIN_RANGE = (0.6, 1.6)


@lru_cache(maxsize=1)
def mirror_ids() -> np.ndarray:
    """(478,) int64: the left-right partner of every landmark (midline points map to themselves)."""
    return np.load(_MIRROR).astype(np.int64)


def face_triangles() -> np.ndarray:
    """(F, 3) the drawn face triangles: the mesh, then the fans that close the eyes."""
    m = topology.mesh()
    return np.concatenate([m["triangles"], m["eye_triangles"]])


@lru_cache(maxsize=1)
def reference_orientation() -> np.ndarray:
    """(F,) ±1: the winding of each face triangle on the frontal canonical face (front-facing)."""
    from ..motion.decompose import canonical_template

    return np.where(signed_areas(canonical_template()[:, :2], face_triangles()) >= 0, 1.0, -1.0)


def front_facing(points: np.ndarray, triangles: np.ndarray, orientation: np.ndarray) -> np.ndarray:
    """(T,) bool: the triangle keeps its frontal winding at ``points`` (a back-facing one has flipped)."""
    return signed_areas(points, triangles) * orientation > 0


@lru_cache(maxsize=1)
def reference_areas() -> np.ndarray:
    """(F,) area of each face triangle on the frontal canonical face."""
    from ..motion.decompose import canonical_template

    return np.abs(signed_areas(canonical_template()[:, :2], face_triangles()))


GROW_FLOOR = 3e-4  # × the face's box area: a triangle must grow by at least this many px² to lend


def mirror_weights(source: np.ndarray, target: np.ndarray, triangles: np.ndarray, orientation: np.ndarray) -> np.ndarray:
    """(T,) in [0, 1]: how much each face triangle takes its mirror partner's texture.

    A triangle lends from its partner where three things hold: the source sees it foreshortened
    (its area, relative to the frontal face's at the same scale, under :data:`VISIBLE_FULL`; one
    that faces away in the source has no texture of its own at all), the target shows it larger
    than the source does (relative to the whole face, so zoom stretches nothing), and the partner
    is seen well (at least 1.5× the visibility). A frontal portrait never lends: a side that turns
    into view was seen well enough. ``triangles`` are :func:`face_triangles` (same rows).
    """
    perm = mirror_ids()
    frontal = reference_areas()
    a_t = np.abs(signed_areas(target, triangles))
    own = signed_areas(source, triangles) * orientation
    mirror = -signed_areas(source, perm[triangles]) * orientation  # a mirror image winds the other way
    k_src = max(float(np.clip(own, 0, None).sum()), 1e-6) / float(frontal.sum())
    k_tgt = max(float(a_t.sum()), 1e-6) / max(float(np.clip(own, 0, None).sum()), 1e-6)
    vis_own = own / (frontal * k_src + 1e-9)
    vis_mirror = mirror / (frontal * k_src + 1e-9)
    need = np.clip((VISIBLE_START - vis_own) / (VISIBLE_START - VISIBLE_FULL), 0.0, 1.0)
    # growth must also be large in pixels: a sliver's area ratio is tracker noise (a nostril's side
    # flips between "grown 3x" and "not grown" under 0.1 px jitter and the fill would flicker)
    used = target[np.unique(triangles), :2]
    floor = GROW_FLOOR * float(np.prod(used.max(0) - used.min(0)))
    expected = np.clip(own, 0, None) * k_tgt
    grow = np.clip((a_t - 1.3 * expected - floor) / (0.7 * expected + floor), 0.0, 1.0)
    better = np.clip((vis_mirror / np.maximum(vis_own, 1e-3) - 1.5) / 1.5, 0.0, 1.0)
    return need * grow * better


def vertex_weights(triangle_weights: np.ndarray, triangles: np.ndarray, n_vertices: int) -> np.ndarray:
    """(V,) per-vertex weight: the largest of the triangles around it, so a mirrored triangle is
    mirrored throughout and its neighbours ramp down across one triangle (no seam)."""
    w = np.zeros(n_vertices)
    np.maximum.at(w, triangles.ravel(), np.repeat(triangle_weights, 3))
    return w


def mirror_texture(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """(S, S, 3) uint8: the portrait with every face triangle's texture scaled to the light of
    its mirror partner's side: what the partner shows when it lends its texture there.

    The light of a place is a wide, skin-only average (eyes, brows and lips left out), so a
    foreshortened sliver of a cheek gets the light of the skin around it, not its hair edge.
    Glasses frames are painted out of ``image`` beforehand (:func:`avatar.render.rigid.paint_out`):
    a mirrored copy of the near rim and temple arm on the far temple is a second pair of glasses.
    """
    size = image.shape[0]
    m = topology.mesh()
    pts = landmarks[:, :2].astype(np.float32)
    skin = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(skin, [pts[m["oval"]].round().astype(np.int32)], 1)
    hull = lambda ids: cv2.convexHull(pts[ids]).round().astype(np.int32)  # noqa: E731
    for loop in m["eye_loops"]:
        cv2.fillPoly(skin, [hull(np.asarray(loop, int))], 0)
    cv2.fillPoly(skin, [hull(m["lips"])], 0)
    face_w = float(np.ptp(pts[m["oval"], 0])) or size / 2
    sigma = 0.08 * face_w
    img = image.astype(np.float32)
    wsum = cv2.GaussianBlur(skin.astype(np.float32), (0, 0), sigma)
    light = cv2.GaussianBlur(img * skin[..., None], (0, 0), sigma) / np.maximum(wsum, 1e-3)[..., None]
    tris = face_triangles()
    perm = mirror_ids()
    centres = np.clip(pts[tris].mean(1).round().astype(int), 0, size - 1)
    partner = np.clip(pts[perm[tris]].mean(1).round().astype(int), 0, size - 1)
    gain = (light[centres[:, 1], centres[:, 0]] + 1.0) / (light[partner[:, 1], partner[:, 0]] + 1.0)
    gain = np.clip(gain, *GAIN_RANGE)
    # the gain lives where the partner's texture is read from: paint it on the partner's triangles
    field = np.zeros(image.shape, np.float32)
    cover = np.zeros(image.shape[:2], np.float32)
    order = np.argsort(-landmarks[perm[tris], 2].mean(1)) if landmarks.shape[1] > 2 else np.arange(len(tris))
    for k in order:
        poly = np.round(pts[perm[tris[k]]] * 16).astype(np.int32)
        cv2.fillConvexPoly(field, poly, gain[k].tolist(), lineType=cv2.LINE_8, shift=4)
        cv2.fillConvexPoly(cover, poly, 1.0, lineType=cv2.LINE_8, shift=4)
    blur = 0.02 * face_w
    field = cv2.GaussianBlur(field, (0, 0), blur) / np.maximum(cv2.GaussianBlur(cover, (0, 0), blur), 1e-3)[..., None]
    field = np.where(cover[..., None] > 0, field, 1.0)
    return np.clip(img * field + 0.5, 0, 255).astype(np.uint8)
