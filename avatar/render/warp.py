"""The default engine: a landmark-driven dense backward warp. Needs no downloaded weights.

Inside the face, each face-mesh triangle maps affinely from the target to the source
(piecewise-affine warp, eyes closed over by fans from the iris centres, so eyelids meet on
blinks; a narrowing eye shows the portrait's eyeball at rest, cut by the lids,
:mod:`avatar.render.eyelids`). Around the face, rings of control points follow the head's rigid 3-D motion with
falling weights; above the chin they hug the portrait's person mask, so hair and ears move
fully with the head and the stretch lands on the background beyond them, while the still
outer ring keeps the background in place. The motion there is smoothed (no sawtooth on
straight background edges) and rings are kept from folding over each other.
Face triangles that turn away are culled and the rest drawn far to near; the side of a turned
portrait that turns into view borrows its mirror side's texture (:mod:`avatar.render.facing`);
glasses frames move rigidly with the head (:mod:`avatar.render.rigid`).
The open mouth is drawn: the source's own mouth interior where it has one, teeth, an oral
cavity and a tongue where the target opens wider than the source (:mod:`avatar.render.mouth`).
Driven by a video or a webcam, the face also takes the fine motion of the driver's skin that
the landmarks miss, from optical flow (:mod:`avatar.render.detail`).
The backward map is rasterised at half resolution and upsampled; everything is vectorised.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Sequence

import logging

import cv2
import numpy as np
from scipy.ndimage import map_coordinates, maximum_filter1d
from scipy.spatial import Delaunay

from ..config import RenderConfig
from ..face import topology
from ..face.crop import distance_inside, frame_rect, mirror_outside
from ..face.blend import MappedCrop
from ..face.segment import person_mask
from ..motion import rig
from ..motion.decompose import fit_similarity, stable_ids
from ..types import DriveTarget, FaceCrop
from .base import Engine
from .detail import FaceDetail
from .layers import FineFade, Layers, build_layers
from .shading import ShadingTransfer
from . import eyelids, facing, mouth, outline, rigid
from .triangles import dense_field, dense_map, inverse_homogeneous, polygon_area, rasterise, signed_areas

# control rings around the face: (radial factor, weight of the head's rigid motion)
_RINGS = ((1.2, 0.8), (1.45, 0.2), (1.75, 0.0))
# rings that follow a person mask's silhouette: weights of the inner (hair), middle and outer ring
_SILHOUETTE_WEIGHTS = (1.0, 0.25, 0.0)
# with layers the background is a still plate: hair moves rigidly out past its edge, and the
# stretch lands beyond it, where the matte is 0 and nothing of it shows
_LAYERED_WEIGHTS = (1.0, 1.0, 0.0)
_EDGE_FADE = 0.15  # with layers, ring motion fades to 0 over this distance (× crop side) from the crop's edge
log = logging.getLogger(__name__)
_HAIR_MARGIN = 0.06  # the inner ring sits this far (× oval radius) inside the silhouette
_BG_BAND = 0.35      # background band beyond the silhouette (× oval radius) that absorbs the stretch
_HAIR_MAX = 2.2      # silhouette search limit (× oval radius)
# with layers, the stretch must land where the matte is 0: along each ring direction the matte
# (alpha above the first value) is followed out past gaps shorter than the second (× oval radius:
# between curls), and the rings that take the stretch start the third beyond where it ends
_MATTE_REACH = (0.1, 0.08, 0.05)
_OUTER_SMOOTH = 0.03  # Gaussian sigma of the motion around the face, × the map size
_MIN_GAP = 0.35      # a ring gap never shrinks below this fraction of its source size
_RING_POINTS = 24
# beside the face (|cos| of the direction from the oval's centre: none below the first value,
# fully from the second) and above the mouth (sin, image y down: fully up to the first, none
# from the second), the cheek's outline keeps its gap to the head's (see _hold_outline)
_HOLD_SIDE = (0.6, 0.85)
_HOLD_BELOW = (0.35, 0.65)
_LIKE_PLATE = 20  # grey levels: a pixel within this of the plate behind it shows background
_HOLD_RINGS = 2  # the rings that move with the head there (the outermost stays with the plate)
# A face drawn over the outer ring (a turned cheek over the background): a smaller step between
# them is already a visible edge, drawn along the map's 2-px blocks unless made a seam (measured
# on portrait_05 × driving_02: a third of the outline's pairs stepped over 2 spacings, a tenth over 4)
_OUTLINE_JUMP = 1.5
_OWN_TO_DRAWN = 0.1  # the drawn interior fades in as the opening grows from 1 to 1.1 × the portrait's own
# a portrait's own dark gap between parted lips gives way to drawn teeth as the opening grows from
# its own area to this × it
_OWN_GAP_FADE = 2.0
_SEALED_GAP = (0.5, 2.5)  # mean gap between the inner lips (px at a 512 crop): drawn interior fades in over this
_EDGE_BAND = 0.06   # × crop side: how near the photo's edge the mask may grow from the mirrored view
_SEAM_JUMP = 4.0    # neighbouring map pixels further apart in the source than this × their own spacing: a seam
_ISLAND_JUMP = 2.0  # a map pixel this × the spacing off its 3×3 neighbourhood's median: a sliver of a fold (dropped)
# the map squeezes the portrait from this many source px per output px on (fully at twice that;
# 0 switches the prefilter off), up to the second value (a larger step is an edge); the
# prefilter's sigma (source px)
_MINIFY = (1.5, 8.0, 1.2)
# × the face's size: islands are also looked for this far around it. Squeezed ring triangles at a
# temple (a head tilted down and aside) made one there, of forehead skin and the plate beside the
# hair: a speck in the hair (driving_02 frame 250)
_ISLAND_MARGIN = 0.25
_ISLAND_COVERED = 5  # an island next to uncovered pixels: judged where it and this many of its 9 are covered
_SKULL_DEPTH = 1.0   # depth of the ring points straight above the face, × the oval radius there, behind the outline
_SIDE_DEPTH = 0.5    # the same beside the face: the head's outline there lies behind the face's, about the ears
# from this far above the chin (× the oval radius: below the ear lobes) the rings' share of the
# head's motion falls by the second value per 0.3 oval radii, to the third: beside and below the
# jaw lie the neck, the shoulders and the collar, which stay with the body while the neck takes
# the stretch (a steeper fall folded the chin over the neck on a big lean; a fall from 0.1 above
# the chin swung the neck's outline with the face, and the background beside it)
_NECK_FALL = (0.4, 1.0, 0.1)
# along the target's inner lips, neighbouring map pixels this far apart in the source (× their
# spacing) are a seam: lips closed over a wider own opening meet there, and a half-resolution map
# blended across that jump drew the line as 2 px stair-steps with the own teeth between them
_LIP_JUMP = 2.0
_UPPER_MIDDLE = (82, 13, 312)  # the inner upper lip's middle: how far it rises shows more upper teeth
_BORDER_POINTS = 6  # per side of the outer frame; the frame lies outside the crop and stays still
_ARM_SEARCH = 0.06  # × crop side: how far from its rigid place a temple arm's end is looked for in the warp
_FORWARD_TOLERANCE = 3.0  # source px: the warp shows a point where it samples this near it (see _forward_point)
# a gap in the mirror's weight at most this many map pixels wide is closed: a fold's thin
# triangles drawn over a lending part (the far nose wing's rim) lend nothing of their own, and
# the line of stretched sliver between them showed as light specks (portrait_05 × driving_02)
_MIRROR_GAP = 2
_BAND_SPREAD = 2   # oval points: the skin band narrows this far along the oval beyond where the face is lent
_MIRROR_EDGE = 0.7  # Gaussian sigma (map pixels) of the face's coverage that cuts the lent texture off


@dataclass(frozen=True, eq=False)
class WarpState:
    """Per-source precomputation (all positions in source-crop pixels)."""

    image: np.ndarray            # (S, S, 3) uint8
    vertices: np.ndarray         # (V, 2) source positions of landmarks + ring + frame points
    depth: np.ndarray            # (V,) their depth (z, x-pixel units; rings take the oval's)
    ring_weights: np.ndarray     # (V - 478,) rigid-motion weight of the extra points
    ring_gaps: np.ndarray        # (R, A) source radial gaps oval → ring 1 → … → ring R (px)
    face_triangles: np.ndarray   # (F, 3) into vertices (mesh + eye fans)
    outer_triangles: np.ndarray  # (O, 3) into vertices
    cavity_rgb: np.ndarray       # (3,) float32 colour of the synthetic oral cavity
    tongue_rgb: np.ndarray       # (3,) float32 colour of its tongue
    teeth_rgb: np.ndarray        # (3,) float32 colour of synthetic teeth
    # depth-aware face (avatar.render.facing)
    face_orientation: np.ndarray  # (F,) ±1 frontal winding of face_triangles
    grain: float = 0.0            # the portrait's grain (grey levels), added to the drawn mouth
    rigid: rigid.RigidParts | None = None  # glasses frames found on the portrait (avatar.render.rigid)
    worn: tuple[rigid.WornPiece | None, ...] = ()  # those frames as layers (``image`` has them painted out)
    own_mouth: np.ndarray | None = None    # (S, S) where the portrait shows its own open mouth
    own_teeth: float = 0.0        # how surely that mouth shows teeth (mouth.teeth_shown), 0..1
    own_lower: np.ndarray | None = None  # (S, S) its part the lower lip carries (mouth.own_lower_part)
    own_teeth_lower: float = 0.0  # how surely that part shows teeth (mouth.teeth_shown), 0..1
    crease: mouth.LipCrease | None = None  # the dark crease between its lips (mouth.lip_crease)
    layers: Layers | None = None  # background plate + matted person (None: one warp of the crop)
    # (V - 478, 2) per extra point: the share of the head's motion its weight holds back near a
    # crop edge, times that edge's inward normal (motion away from the edge is given back)
    ring_release: np.ndarray | None = None
    # (N,) per point of the face oval: px of the portrait's skin beyond it (avatar.render.outline);
    # the last ``(skin_band > 0).sum()`` vertices are those band's outer ends, riding on the oval
    skin_band: np.ndarray | None = None
    # (N,) per point of the face oval: how far the head's outline beside it follows the face in a
    # turn (the background's share of the way out to it, beside the face; see open_beside)
    open_beside: np.ndarray | None = None

    @cached_property
    def own_upper(self) -> np.ndarray | None:
        """(S, S) float32: the part of ``own_mouth`` the upper lip carries (all of it but
        ``own_lower``); made on first use, once per portrait."""
        if self.own_mouth is None or self.own_lower is None:
            return self.own_mouth
        return self.own_mouth - self.own_lower

    @cached_property
    def detail_source(self) -> np.ndarray:
        """(S, S) float32: where the source's own fine detail belongs to what the backward map
        moves: the person's matte (all of the crop without layers), less the glasses frames
        painted out of ``image`` (drawn as layers of their own, their detail would ghost)."""
        out = np.ones(self.image.shape[:2], np.float32) if self.layers is None else self.layers.alpha.copy()
        if self.rigid is not None:
            out[cv2.dilate((self.rigid.weight > 0.05).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0] = 0.0
        return out

    @cached_property
    def painted(self) -> np.ndarray | None:
        """(S, S) float32 share of each pixel of ``image`` that was painted out under a glasses
        frame (the inpainting's guess, not the portrait), softened by a pixel; None without
        frames. Made on first use."""
        if self.rigid is None:
            return None
        where = cv2.dilate((self.rigid.weight > rigid.PAINT_OUT).astype(np.uint8), np.ones((3, 3), np.uint8))
        return cv2.GaussianBlur(where.astype(np.float32), (0, 0), 1.0)

    @cached_property
    def prefiltered(self) -> np.ndarray:
        """(S, S, 3) uint8 portrait blurred for sampling where the map squeezes it (see
        :func:`_minify`); made on first use."""
        return cv2.GaussianBlur(self.image, (0, 0), _MINIFY[2])

    @cached_property
    def mirror_image(self) -> np.ndarray:
        """(S, S, 3) uint8 texture lent to the mirror side, in its light; made on first use (a
        frontal target never needs it, and a video avatar prepares a state per keyframe)."""
        n = len(facing.mirror_ids())
        landmarks = np.column_stack([self.vertices[:n], self.depth[:n]])
        return facing.mirror_texture(self.image, landmarks)


@dataclass(frozen=True, eq=False)
class FaceMaps:
    """One frame's backward maps: ``own`` (S, S, 2) source coordinates; where the face's far side
    turns into view, ``mirror`` coordinates into the state's mirror image and its ``weight``
    over the pixel box ``box`` (x0, y0, x1, y1); None when nothing is mirrored. ``seams``: (S, S)
    bool, the pixels along a jump of the map (see :func:`_seams`), or None where it has none."""

    own: np.ndarray
    mirror: np.ndarray | None = None
    weight: np.ndarray | None = None
    box: tuple[int, int, int, int] | None = None
    seams: np.ndarray | None = None
    fade: FineFade | None = None  # where the map draws fine hair out (see Layers.fine_fade)


def _around_oval(oval: np.ndarray, centre: np.ndarray, angles: np.ndarray, values: np.ndarray | None = None) -> np.ndarray:
    """At each of ``angles`` around ``centre``: the oval's radius in that direction, or the
    per-oval-point ``values`` interpolated there (oval: (N, 2+) points in order of the mesh)."""
    rel = oval[:, :2] - centre
    ang = np.arctan2(rel[:, 1], rel[:, 0])
    order = np.argsort(ang)
    v = np.hypot(rel[:, 0], rel[:, 1]) if values is None else values
    return np.interp(angles, ang[order], v[order], period=2 * np.pi)


def _along_rays(image: np.ndarray, centre: np.ndarray, directions: np.ndarray,
                rad: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(K,) distances from ``centre`` (× the oval radius ``rad``, from the oval out to
    ``_HAIR_MAX``), and per direction and distance the (S, S) ``image``'s value there and the
    row it lies on ((A, K) each)."""
    ks = np.linspace(1.0, _HAIR_MAX, 61)
    pts = centre + directions[:, None, :] * (rad[:, None, None] * ks[None, :, None])  # (A, K, 2)
    h, w = image.shape
    xi = np.clip(np.round(pts[..., 0]).astype(int), 0, w - 1)  # beyond the crop: its edge continues
    yi = np.clip(np.round(pts[..., 1]).astype(int), 0, h - 1)
    return ks, image[yi, xi], pts[..., 1]


def _silhouette(mask: np.ndarray, centre: np.ndarray, directions: np.ndarray, rad: np.ndarray) -> np.ndarray:
    """Per direction, the distance from ``centre`` at which the person mask ends, searched from
    the oval outwards up to ``_HAIR_MAX`` × the oval radius (returned as a multiple of it)."""
    ks, values, _ = _along_rays(mask, centre, directions, rad)
    outside = values < 0.5
    outside[:, -1] = True
    return ks[np.argmax(outside, axis=1)]


def _matte_reach(alpha: np.ndarray, centre: np.ndarray, directions: np.ndarray, rad: np.ndarray,
                 start: np.ndarray, floor: float) -> np.ndarray:
    """Per direction, how far from ``centre`` (× the oval radius ``rad``) the matte ``alpha`` goes
    on beyond ``start`` (the silhouette there): past gaps shorter than :data:`_MATTE_REACH`'s, up
    to ``_HAIR_MAX``, and never below the row ``floor`` (the shoulders go on down there: rings
    followed them out, and the shoulder moved with the head). The segmentation's edge lies inside
    wispy hair, and at a dip in it (curls) far inside the hair's outline."""
    ks, values, rows = _along_rays(alpha, centre, directions, rad)
    on = (values > _MATTE_REACH[0]) & (rows < floor)
    reach = start.astype(np.float64).copy()
    for a in range(len(directions)):
        for k in np.flatnonzero(ks > start[a]):
            if on[a, k]:
                reach[a] = ks[k]
            elif ks[k] - reach[a] > _MATTE_REACH[1]:
                break
    return reach


def _beyond_oval(mesh: np.ndarray, poly: np.ndarray, margin: float = 0.5) -> np.ndarray:
    """Indices of the mesh landmarks that lie outside the face's ``poly`` (the oval) by more
    than ``margin`` px: on a turned face the oval cuts through the far eye and brow."""
    return np.array([i for i, (x, y) in enumerate(mesh[:, :2])
                     if cv2.pointPolygonTest(poly, (float(x), float(y)), True) < -margin], dtype=np.int64)


def _face_cover(vertices: np.ndarray, size: int, poly: np.ndarray) -> np.ndarray:
    """(S, S) bool: the oval and every face triangle, in source pixels."""
    cover = np.zeros((size, size), np.uint8)
    cv2.fillPoly(cover, [np.round(poly[:, 0]).astype(np.int32)], 1)
    tris = np.round(vertices[facing.face_triangles()][..., :2]).astype(np.int32)
    for t in tris:
        cv2.fillConvexPoly(cover, t, 1)
    return cover > 0


def _forward_point(mp: np.ndarray, point: np.ndarray, guess: np.ndarray, reach: float) -> np.ndarray | None:
    """Where the backward map ``mp`` (S, S, 2) puts the source ``point`` (2,): the target pixel
    within ``reach`` px of ``guess`` whose source is nearest it, refined to a fraction of a pixel
    by the map's local gradient (a whole-pixel answer made a long arm shimmer), or None where
    none lies within ``_FORWARD_TOLERANCE`` source px (the point is hidden, or not near the guess)."""
    x0, y0 = np.maximum(np.floor(guess - reach).astype(int), 1)
    x1, y1 = np.minimum(np.ceil(guess + reach).astype(int) + 1, np.array(mp.shape[1::-1]) - 1)
    if x1 <= x0 or y1 <= y0:
        return None
    d = np.hypot(mp[y0:y1, x0:x1, 0] - point[0], mp[y0:y1, x0:x1, 1] - point[1])
    i = int(np.argmin(d))
    if d.flat[i] > _FORWARD_TOLERANCE:
        return None
    x, y = x0 + i % (x1 - x0), y0 + i // (x1 - x0)
    jac = np.column_stack([(mp[y, x + 1] - mp[y, x - 1]) / 2, (mp[y + 1, x] - mp[y - 1, x]) / 2]).astype(np.float64)
    step = np.zeros(2)
    if abs(np.linalg.det(jac)) > 1e-3:
        step = np.clip(np.linalg.solve(jac, point - mp[y, x]), -1.0, 1.0)
    return np.array([x, y], np.float64) + step


def _reaches_edges(mask: np.ndarray | None, size: int) -> list[np.ndarray]:
    """Per crop edge (left, right, top, bottom), a (size,) bool along it: the person mask comes
    within 2 % of the crop of that edge there, or within :data:`_EDGE_FADE` / 2 of such a place
    along it (everywhere when there is no mask)."""
    if mask is None:
        return [np.ones(size, bool)] * 4
    band = max(int(round(0.02 * size)), 1)
    person = mask > 0.5
    strips = (person[:, :band].any(1), person[:, -band:].any(1), person[:band].any(0), person[-band:].any(0))
    k = 2 * int(round(_EDGE_FADE * size / 2)) + 1
    return [cv2.dilate(s.astype(np.uint8)[:, None], np.ones((k, 1), np.uint8))[:, 0] > 0 for s in strips]


def _ring_points(landmarks: np.ndarray, size: int, mask: np.ndarray | None = None,
                 silhouette_weights: tuple[float, float, float] = _SILHOUETTE_WEIGHTS,
                 photo: tuple[int, int, int, int] | None = None,
                 matte: np.ndarray | None = None,
                 band: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Control points around the face oval and on a still outer frame.

    Returns ((P, 3) points, (P,) rigid-motion weights, (R, A) radial gaps in pixels between
    the oval and the first ring and between consecutive rings, per direction, and (P, 2) the
    release: per point, the share of the head's motion held back near a crop edge (see below),
    times that edge's inward normal).

    With a person ``mask``, the rings above the chin hug the silhouette: the inner one sits just
    inside it and moves fully with the head (hair is attached to the skull), the outer ones
    stand in the background beyond it, so the stretch lands on background rather than smearing
    hair. With the person layer's ``matte`` ((S, S) alpha), the outer rings stand beyond where
    it ends, so the stretch lands where only the still plate shows. Without a mask, and below
    the chin (the neck follows the head only partly), fixed rings at :data:`_RINGS` × the oval
    radius, moved out by the skin ``band`` beyond the oval ((N,) px per oval point, see
    :mod:`avatar.render.outline`): the band rides on the oval, and the rings keep their room
    beyond it.
    A ring point's depth is that of the oval in its direction plus some: above the face it lies
    further back (:data:`_SKULL_DEPTH`), where the skull curves towards the crown, and beside it
    (:data:`_SIDE_DEPTH`) the head's outline, hair over the ears, lies behind the face's, so a
    turn moves it less than the cheek (the deeper of the two in between).
    """
    oval = landmarks[topology.mesh()["oval"]]
    centre = oval[:, :2].mean(0)
    chin_y = landmarks[topology.CHIN, 1]
    angles = np.linspace(0, 2 * np.pi, _RING_POINTS, endpoint=False)
    directions = np.stack([np.cos(angles), np.sin(angles)], 1)
    rad = _around_oval(oval, centre, angles)
    # the hair above the forehead covers the skull, which curves back from the hairline: deeper
    # towards the crown, so a nod moves the crown far less than the face (it turns about it); beside
    # the face the head's outline (hair over the ears) lies behind the face's, so a turn moves it
    # less than the cheek (tracked person outlines of real turning heads sit 0.5-0.75 radii back)
    depth = _around_oval(oval, centre, angles, oval[:, 2]) + rad * np.maximum(
        _SKULL_DEPTH * np.clip(-np.sin(angles), 0.0, None), _SIDE_DEPTH * np.cos(angles) ** 2)
    # fixed rings: more room above (hair) than below (neck)
    factors = np.array([f for f, _ in _RINGS])[:, None] * np.where(np.sin(angles) < 0, 1.0 + 0.25 * (-np.sin(angles)), 1.0)
    if band is not None:
        factors = factors + _around_oval(oval, centre, angles, band) / rad
    weights = np.repeat(np.array([w for _, w in _RINGS])[:, None], _RING_POINTS, axis=1)
    reach = float(rad.mean())
    # 1 above the chin, 0 below it, with a ramp in between: neighbouring directions must not
    # switch schemes abruptly, or the background between them shears into a zigzag
    above = np.clip((chin_y - (centre[1] + directions[:, 1] * rad * _RINGS[0][0])) / (0.4 * reach) + 0.5, 0.0, 1.0)
    if mask is not None:
        sil = _silhouette(mask, centre, directions, rad)
        inner = np.maximum(1.12, sil - _HAIR_MARGIN)
        middle = np.maximum(inner + 0.1, sil + 0.5 * _BG_BAND)
        if matte is not None:
            floor = chin_y - _NECK_FALL[0] * reach  # where the rings' share of the head's motion starts to fall
            middle = np.maximum(middle, _matte_reach(matte, centre, directions, rad, sil, floor) + _MATTE_REACH[2])
        outer = np.maximum(middle + 0.15, sil + _BG_BAND)
        factors = above * np.stack([inner, middle, outer]) + (1 - above) * factors
        weights = above * np.array(silhouette_weights)[:, None] + (1 - above) * weights
    pts, release = [], []
    if silhouette_weights is _LAYERED_WEIGHTS:
        reaches = _reaches_edges(mask, size)
        x0, y0, x1, y1 = photo if photo is not None else (0, 0, size, size)  # the crop pixels inside the photo
    for f, w in zip(factors, weights):
        ring = centre + directions * (rad * f)[:, None]
        w *= np.clip(1.0 - _NECK_FALL[1] * (ring[:, 1] - chin_y + _NECK_FALL[0] * reach) / (0.3 * reach), _NECK_FALL[2], 1.0)
        inward = np.zeros((len(ring), 2))
        if silhouette_weights is _LAYERED_WEIGHTS:
            # hair reaching past the crop continues outside, where nothing moves: fade its motion
            # out towards the crop's edges that lie inside the photo, or the paste-back would show
            # it cut and doubled there (an edge beyond the photo's own has nothing outside it: hair
            # near the top of a photo held still there stretched into a spike when the head moved).
            # Where the person does not reach the edge, only motion towards it and along it needs
            # holding back: what the fade takes from a motion away from it is released each frame
            # (WarpEngine.target_vertices); hair that crosses the edge stays held either way
            inside = np.full(len(ring), np.inf)
            for k, (seam, dist, normal, along) in enumerate((
                    (x0 <= 0, ring[:, 0], (1.0, 0.0), ring[:, 1]), (x1 >= size, size - ring[:, 0], (-1.0, 0.0), ring[:, 1]),
                    (y0 <= 0, ring[:, 1], (0.0, 1.0), ring[:, 0]), (y1 >= size, size - ring[:, 1], (0.0, -1.0), ring[:, 0]))):
                if seam:
                    nearest = dist < inside
                    inward[nearest] = normal
                    inward[nearest & reaches[k][np.clip(np.round(along), 0, size - 1).astype(int)]] = 0.0
                    inside = np.minimum(inside, dist)
            fade = np.clip(inside / (_EDGE_FADE * size), 0.0, 1.0)
            inward *= (w * (1.0 - fade))[:, None]
            w *= fade
        pts.append(np.column_stack([ring, depth]))
        release.append(inward)
    lo, hi = -0.35 * size, 1.35 * size
    edge = np.linspace(lo, hi, _BORDER_POINTS + 1)[:-1]
    frame = np.concatenate([
        np.stack([edge, np.full_like(edge, lo)], 1),
        np.stack([np.full_like(edge, hi), edge], 1),
        np.stack([edge[::-1] + (hi - lo) / _BORDER_POINTS, np.full_like(edge, hi)], 1),
        np.stack([np.full_like(edge, lo), edge[::-1] + (hi - lo) / _BORDER_POINTS], 1),
    ])
    pts = np.concatenate(pts + [np.column_stack([frame, np.zeros(len(frame))])])
    pts[:, :2] = np.clip(pts[:, :2], lo, hi)
    gaps = np.diff(np.concatenate([np.ones((1, _RING_POINTS)), factors]), axis=0) * rad
    return (pts, np.concatenate([weights.ravel(), np.zeros(len(frame))]), gaps,
            np.concatenate(release + [np.zeros((len(frame), 2))]))


def _ring_beside(oval: np.ndarray, ring: np.ndarray) -> np.ndarray:
    """(N, 2) per point of the source ``oval`` ((N, 2)), the point of the first ``ring`` ((A, 2), at
    even angles about the oval's centroid) in its direction, or of ``ring`` moved (same order)."""
    rel = oval - oval.mean(0)
    phi = np.arctan2(rel[:, 1], rel[:, 0])
    at = np.arange(len(ring)) * (2 * np.pi / len(ring))
    return np.stack([np.interp(phi, at, c, period=2 * np.pi) for c in ring.T], 1)


def open_beside(mask: np.ndarray, oval: np.ndarray, ring: np.ndarray, image: np.ndarray | None = None,
                plate: np.ndarray | None = None) -> np.ndarray:
    """(N,) per point of the face ``oval`` ((N, 2) source px), 0..1: how much of the way out to the
    first ``ring`` beside it (see :func:`_ring_beside`) is background in the person ``mask``
    ((S, S) in [0, 1]; the person layer's matte where there is one: it decides what shows),
    beside the face and above the mouth only (0 elsewhere; see :func:`_hold_outline`). With the
    crop ``image`` and the background ``plate`` ((S, S, 3) uint8), a pixel the matte takes in but
    coloured like the plate behind it (the wall within a soft matte's edge) counts as background
    too. Hair or an ear there can turn into view; the background cannot."""
    at = _ring_beside(oval, ring)
    t = np.linspace(0.15, 0.85, 8)[None, :, None]
    pts = oval[:, None, :] + t * (at - oval)[:, None, :]
    size = mask.shape[0]
    x = np.clip(np.round(pts[..., 0]).astype(int), 0, size - 1)
    y = np.clip(np.round(pts[..., 1]).astype(int), 0, size - 1)
    rel = oval - oval.mean(0)
    rel /= np.maximum(np.linalg.norm(rel, axis=1, keepdims=True), 1e-9)
    side = np.clip((np.abs(rel[:, 0]) - _HOLD_SIDE[0]) / (_HOLD_SIDE[1] - _HOLD_SIDE[0]), 0.0, 1.0)
    side *= np.clip((_HOLD_BELOW[1] - rel[:, 1]) / (_HOLD_BELOW[1] - _HOLD_BELOW[0]), 0.0, 1.0)
    background = mask[y, x] < 0.5
    if image is not None and plate is not None:
        diff = np.abs(image[y, x].astype(np.int16) - plate[y, x].astype(np.int16)).max(-1)
        background |= diff < _LIKE_PLATE
    return side * background.mean(1)


def _hold_outline(oval_src: np.ndarray, oval_tgt: np.ndarray, ring_src: np.ndarray, ring_moved: np.ndarray,
                  scale: float, hold: np.ndarray) -> np.ndarray:
    """(A, 2) how far to move the target rings, per ring direction, where a turn opened the gap
    between the face's outline and the head's wider than the portrait shows it (× the head's
    ``scale``), by ``hold`` ((N,) per oval point, see :func:`open_beside`).

    ``oval_src``/``oval_tgt``: (N, 2) the face oval; ``ring_src``: (A, 2) the first ring, at
    :data:`_RING_POINTS` even angles about ``oval_src``'s centroid, and ``ring_moved`` where the
    head's rigid motion alone takes it. The face's landmarks are points on its skin: as the head
    turns, those on the side that comes into view move in towards the nose while the head's
    outline, further back, moves less, and the side of the head turns into view between them.
    Where the portrait shows background there (a face as wide as its head, hair above the
    temple), the gap opened on that background and the cheek stood inside the hair's outline as
    a cut-out with the wall behind it. Nothing in the portrait shows what turns into view there
    (stretching the cheek out to the outline dragged the wall and the hair at the oval's edge
    into it), so there the outline follows the face instead.
    """
    room = scale * np.linalg.norm(_ring_beside(oval_src, ring_src) - oval_src, axis=1)
    towards = _ring_beside(oval_src, ring_moved) - oval_tgt
    gap = np.linalg.norm(towards, axis=1)
    outwards = (towards * (oval_src - oval_src.mean(0))).sum(1) > 0  # a ring the oval has passed is the rings' to mend
    excess = np.where(outwards, hold * np.maximum(gap - room, 0.0), 0.0)
    shift = towards / np.maximum(gap, 1e-9)[:, None] * excess[:, None]  # (N, 2) oval → ring
    # per ring direction, the oval's shift at that angle
    angles = np.arange(len(ring_src)) * (2 * np.pi / len(ring_src))
    return -np.stack([_around_oval(oval_src, oval_src.mean(0), angles, c) for c in shift.T], 1)


def _keep_rings_apart(extra: np.ndarray, oval: np.ndarray, gaps: np.ndarray) -> None:
    """Push target ring points outwards (in place) where a head movement would squeeze a ring
    into the oval or into the next ring: a fold shows as torn, doubled texture, while letting
    a ring give way moves a little background. Each gap keeps at least ``_MIN_GAP`` of its size."""
    rings, count = gaps.shape
    pts = extra[: rings * count].reshape(rings, count, 2)
    centre = oval.mean(0)
    u = pts[0] - centre
    u /= np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-6)
    inner = _around_oval(oval, centre, np.arctan2(u[:, 1], u[:, 0]))
    for k in range(rings):
        rho = ((pts[k] - centre) * u).sum(1)
        push = np.maximum(inner + _MIN_GAP * gaps[k] - rho, 0.0)
        pts[k] += push[:, None] * u
        inner = rho + push


def _untangle(target: np.ndarray, source: np.ndarray, triangles: np.ndarray, movable: np.ndarray, first: int,
              iterations: int = 12) -> None:
    """Smooth the displacement of ring points (in place) around outer triangles that a large
    movement turned inside out, until none is (or ``iterations`` ran out): each such ring point
    takes the mean displacement of its neighbours, so a fold becomes a gentler stretch."""
    orient = np.sign(signed_areas(source, triangles))
    edges = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    edges = np.concatenate([edges, edges[:, ::-1]])
    degree = np.bincount(edges[:, 0], minlength=len(source)).astype(np.float64)
    ids = first + np.flatnonzero(movable)  # the still rings and the frame keep the background in place
    for _ in range(iterations):
        flipped = np.sign(signed_areas(target, triangles)) != orient
        if not flipped.any():
            return
        touched = np.zeros(len(source), bool)
        touched[triangles[flipped].ravel()] = True
        shift = target - source
        # bincount sums in the order np.add.at does, at a fifth of its time
        mean = np.stack([np.bincount(edges[:, 0], shift[edges[:, 1], c], len(source)) for c in range(shift.shape[1])], 1)
        mean /= np.maximum(degree, 1)[:, None]
        sel = ids[touched[ids]]
        target[sel] = source[sel] + mean[sel]


_NEAR_Y, _NEAR_X = (d.ravel() for d in np.mgrid[-1:2, -1:2])  # a pixel's 3×3 neighbourhood


def island_box(face: np.ndarray, side: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) map pixels where :func:`_drop_islands` looks, for the (478, 2+) face
    landmarks in a ``side``-pixel map: their box grown by :data:`_ISLAND_MARGIN` of its size."""
    lo, hi = face[:, :2].min(0), face[:, :2].max(0)
    margin = _ISLAND_MARGIN * float((hi - lo).max()) + 2
    lo, hi = np.floor(lo - margin).astype(int), np.ceil(hi + margin).astype(int) + 1
    return (*np.maximum(lo, 0).tolist(), *np.minimum(hi, side).tolist())


def _row_medians(values: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Median of each row of (n, k) ``values`` over its ``count`` (n,) numbers, NaN elsewhere
    (count >= 1): what ``np.nanmedian(values, axis=1)`` gives, in a quarter of its time."""
    ordered = np.sort(values, axis=1)  # NaN sorts last
    rows = np.arange(len(values))
    return (ordered[rows, (count - 1) // 2] + ordered[rows, count // 2]) * values.dtype.type(0.5)


def _drop_islands(index: np.ndarray, mx: np.ndarray, my: np.ndarray, affine: np.ndarray, spacing: float,
                  box: tuple[int, int, int, int] | None = None) -> None:
    """Hand map pixels that lie off their 3×3 neighbourhood's median by more than
    :data:`_ISLAND_JUMP` × ``spacing`` (source px) to the neighbour's triangle nearest that
    median, in place: ``index`` (triangle ids, 0 = none), and ``mx``, ``my`` from that triangle's
    ``affine`` ((T, 3, 2), as :func:`dense_map` takes it).

    Where the face folds over itself (a cheek pressed against the nose wing, the lips against
    their corners), a triangle of the nearer layer can cover one or two map pixels alone. Such
    an island is too narrow for :func:`_seams` (it jumps twice in a row) and, upsampled, samples
    a spot of unrelated texture a few pixels across, and lends it the sliver's mirror weight: a
    speck that lasts a frame or two. A 3×3 median keeps every linear stretch (the median of a
    plane's samples is its centre) and every straight occlusion edge (5 of the 9 pixels lie on
    the centre's side); it only rounds the corner of a region by a map pixel. Only pixels with a
    large Laplacian are looked at, and only where the pixel and :data:`_ISLAND_COVERED` of the nine
    are covered (the median over those: a sliver at a lip corner borders the mouth hole); with ``box`` (x0, y0,
    x1, y1: map pixels), only inside it (the face and around it: its folds make the islands).
    """
    x0 = y0 = 0
    if box is not None:
        x0, y0, x1, y1 = box
        if x1 - x0 < 3 or y1 - y0 < 3:
            return
        index, mx, my = index[y0:y1, x0:x1], mx[y0:y1, x0:x1], my[y0:y1, x0:x1]  # views: edited in place
    limit = (_ISLAND_JUMP * spacing) ** 2
    # candidates: a large Laplacian (an island of offset D gives 2-4 D, an edge of jump J gives J;
    # a stretch gives none), so the median is taken at few pixels
    lx = cv2.Laplacian(mx, cv2.CV_32F, ksize=1, borderType=cv2.BORDER_REPLICATE)
    ly = cv2.Laplacian(my, cv2.CV_32F, ksize=1, borderType=cv2.BORDER_REPLICATE)
    cand = cv2.magnitude(lx, ly) > 2.0 * _ISLAND_JUMP * spacing
    cand[[0, -1], :] = False
    cand[:, [0, -1]] = False
    ys, xs = np.divmod(np.flatnonzero(cand), cand.shape[1])
    if not len(ys):
        return
    ny, nx = ys[:, None] + _NEAR_Y, xs[:, None] + _NEAR_X
    covered = index[ny, nx] > 0  # (n, 9)
    enough = covered[:, 4] & (covered.sum(1) >= _ISLAND_COVERED)
    ys, xs, ny, nx, covered = ys[enough], xs[enough], ny[enough], nx[enough], covered[enough]
    if not len(ys):
        return
    vx = np.where(covered, mx[ny, nx], np.nan)  # (n, 9): the mouth hole beside a lip corner holds no value
    vy = np.where(covered, my[ny, nx], np.nan)
    count = covered.sum(1)
    medx, medy = _row_medians(vx, count), _row_medians(vy, count)
    off = np.square(mx[ys, xs] - medx) + np.square(my[ys, xs] - medy) > limit
    if not off.any():
        return
    ys, xs, ny, nx = ys[off], xs[off], ny[off], nx[off]
    dist = np.square(vx[off] - medx[off, None]) + np.square(vy[off] - medy[off, None])
    best = np.argmin(np.where(np.isnan(dist), np.inf, dist), axis=1)
    k = np.arange(len(ys))
    tri = index[ny[k, best], nx[k, best]]
    index[ys, xs] = tri
    a = affine[tri - 1].astype(np.float32)
    u, v = (xs + x0).astype(np.float32), (ys + y0).astype(np.float32)
    nx_, ny_ = u * a[:, 0, 0] + v * a[:, 1, 0] + a[:, 2, 0], u * a[:, 0, 1] + v * a[:, 1, 1] + a[:, 2, 1]
    # a sliver's affine, carried a pixel past the sliver, lands far off (a triangle a pixel wide
    # spanning ten source pixels): there the island takes the neighbourhood's median itself
    far = np.square(nx_ - medx[off]) + np.square(ny_ - medy[off]) > limit
    mx[ys, xs] = np.where(far, medx[off], nx_)
    my[ys, xs] = np.where(far, medy[off], ny_)


def _seams(mx: np.ndarray, my: np.ndarray, spacing: float, covered: np.ndarray | None = None,
           face: np.ndarray | None = None, lips: np.ndarray | None = None) -> np.ndarray | None:
    """(h, w) bool over a backward map: both pixels of every 4-neighbour pair whose source
    coordinates lie more than :data:`_SEAM_JUMP` × ``spacing`` apart, or None when none do;
    with ``covered`` (bool), only pairs of covered pixels count; with ``face`` (bool: pixels a
    face triangle covers), pairs across the face's outline count from :data:`_OUTLINE_JUMP` ×
    ``spacing`` on, without the neighbour test of :func:`_jumps`; with ``lips`` (bool: a band
    along the target's inner lips), pairs inside it from :data:`_LIP_JUMP` × ``spacing`` on.

    Such a jump is an occlusion edge (depth order, a fold where a lip or a turned cheek overlaps
    what lies behind it). Upsampled bilinearly, the map would sample the source between the two
    sides there, a line of unrelated texture (a dark 1-px outline around the lips). The mouth
    hole is not covered: filled from the nearest lip, its upper half maps to the upper lip and
    its lower half to the lower one, and between them the source's own line between the lips is
    what a closed mouth should show.
    """
    limit = (_SEAM_JUMP * spacing) ** 2
    step_across = np.square(np.diff(mx, axis=1)) + np.square(np.diff(my, axis=1))
    step_down = np.square(np.diff(mx, axis=0)) + np.square(np.diff(my, axis=0))
    across = _jumps(step_across, limit, axis=1)
    down = _jumps(step_down, limit, axis=0)
    if face is not None:  # the face's outline over what lies beside it: a smaller jump is already an edge
        low = (_OUTLINE_JUMP * spacing) ** 2
        across |= (face[:, :-1] != face[:, 1:]) & (step_across > low)
        down |= (face[:-1] != face[1:]) & (step_down > low)
    if lips is not None:
        low = (_LIP_JUMP * spacing) ** 2
        across |= lips[:, :-1] & lips[:, 1:] & (step_across > low)
        down |= lips[:-1] & lips[1:] & (step_down > low)
    if covered is not None:
        across &= covered[:, :-1] & covered[:, 1:]
        down &= covered[:-1] & covered[1:]
    if not (across.any() or down.any()):
        return None
    seam = np.zeros(mx.shape, bool)
    seam[:, :-1] |= across
    seam[:, 1:] |= across
    seam[:-1] |= down
    seam[1:] |= down
    return seam


@lru_cache(maxsize=4)
def _identity(small: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(small, small) float32 x and y source-crop coordinates of the small map's pixel centres
    (read-only: shared by every frame)."""
    vv, uu = np.mgrid[0:small, 0:small].astype(np.float32)
    scale = size / small
    ix, iy = (uu + 0.5) * scale - 0.5, (vv + 0.5) * scale - 0.5
    ix.setflags(write=False)
    iy.setflags(write=False)
    return ix, iy


def _jumps(step2: np.ndarray, limit: float, axis: int) -> np.ndarray:
    """Which of the squared steps ``step2`` (along ``axis``) are jumps: above ``limit`` and over
    3× both neighbouring steps along the same line. A strongly stretched or squeezed region (the
    lips of an opening mouth) has large steps too, but so are its neighbours': no seam there,
    and the lips keep their own bilinear look. (A fold one map pixel wide jumps twice in a row
    and is not caught: it may still show as a small ring.)"""
    big = step2 > limit
    rows, cols = np.nonzero(big)  # few: only these are compared with their neighbours
    if not len(rows):
        return big
    n = step2.shape[axis]
    at = cols if axis == 1 else rows
    lo, hi = np.maximum(at - 1, 0), np.minimum(at + 1, n - 1)
    before = step2[rows, lo] if axis == 1 else step2[lo, cols]
    after = step2[rows, hi] if axis == 1 else step2[hi, cols]
    here = step2[rows, cols]
    big[rows, cols] = here > 9.0 * np.maximum(before, after)  # squared: 3× the step
    return big


def upsample_map(mx: np.ndarray, my: np.ndarray, size: int, covered: np.ndarray | None = None,
                 face: np.ndarray | None = None, lips: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """A (small, small) backward map → ((size, size, 2) map, (size, size) bool seams or None);
    ``covered``, ``face`` and ``lips``: see :func:`_seams`.

    Bilinear, except along seams (:func:`_seams`): there each output pixel takes one side's
    coordinates (nearest), never a blend of both; :meth:`WarpEngine.render_one` then feathers
    the colours there by a pixel.
    """
    coords = np.dstack([mx, my])
    full = cv2.resize(coords, (size, size), interpolation=cv2.INTER_LINEAR)
    seam = _seams(mx, my, size / mx.shape[0], covered, face, lips)
    if seam is None:
        return full, None
    k = size // mx.shape[0]
    if k * mx.shape[0] != size:  # not a whole factor: the whole map, nearest
        seam = cv2.resize(seam.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST) > 0
        full[seam] = cv2.resize(coords, (size, size), interpolation=cv2.INTER_NEAREST)[seam]
        return full, seam
    rows, cols = np.flatnonzero(seam.any(1)), np.flatnonzero(seam.any(0))
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    block = np.repeat(np.repeat(seam[y0:y1, x0:x1], k, 0), k, 1)  # nearest upsampling by k, in the seams' box only
    near = np.repeat(np.repeat(coords[y0:y1, x0:x1], k, 0), k, 1)
    full[y0 * k:y1 * k, x0 * k:x1 * k][block] = near[block]
    out = np.zeros((size, size), bool)
    out[y0 * k:y1 * k, x0 * k:x1 * k] = block
    return full, out


def _reads_a_seam(seam: np.ndarray, mx: np.ndarray, my: np.ndarray) -> np.ndarray:
    """(S, S) bool: ``seam`` and the pixels beside it whose bilinear reading of the (small, small)
    map ``mx``, ``my`` spans a jump diagonally (:data:`_SEAM_JUMP`), in a map cell touching the
    seam. Such a pixel read the far side's coordinates at a sixteenth through its diagonal
    neighbour: a fold of 18 px put it a pixel off its neighbours, a dark speck on a lip's edge (a
    dotted line under a stretched lower lip). Across the face's outline the steps are small, the
    error with them, and those pixels keep the bilinear reading (the triangles' own edge there,
    unfeathered, showed single pixels of cheek in the hair)."""
    size, small = seam.shape[0], mx.shape[0]
    k = size // small
    if k * small != size:  # not block-upsampled: the seam mask is already the nearest's
        return seam
    on = seam[::k, ::k]
    rows, cols = np.flatnonzero(on.any(1)), np.flatnonzero(on.any(0))
    if not len(rows):
        return seam
    # only the cells around the seam's map pixels: (y0, x0) .. (y1, x1) map pixels, corners included
    y0, y1 = max(int(rows[0]) - 1, 0), min(int(rows[-1]) + 2, small)
    x0, x1 = max(int(cols[0]) - 1, 0), min(int(cols[-1]) + 2, small)
    bx, by, near = mx[y0:y1, x0:x1], my[y0:y1, x0:x1], on[y0:y1, x0:x1]
    limit = (_SEAM_JUMP * k) ** 2
    d1 = np.square(bx[1:, 1:] - bx[:-1, :-1]) + np.square(by[1:, 1:] - by[:-1, :-1])
    d2 = np.square(bx[1:, :-1] - bx[:-1, 1:]) + np.square(by[1:, :-1] - by[:-1, 1:])
    cells = ((d1 > limit) | (d2 > limit)) & (near[:-1, :-1] | near[1:, 1:] | near[:-1, 1:] | near[1:, :-1])
    out = seam.copy()
    if cells.any():
        # map cell (i, j) is what full pixels k·i + k/2 ... k·(i + 1) + k/2 - 1 read, in each direction
        h = k // 2
        out[k * y0 + h:k * (y1 - 1) + h, k * x0 + h:k * (x1 - 1) + h] |= np.repeat(np.repeat(cells, k, 0), k, 1)
    return out


def _exact_at_seams(full: np.ndarray, seam: np.ndarray, index: np.ndarray, points: np.ndarray,
                    affine: np.ndarray, final: tuple[np.ndarray, np.ndarray], dense: tuple[np.ndarray, np.ndarray]) -> None:
    """Along seams, give each pixel of the (S, S, 2) map ``full`` (in place) the coordinates of the
    triangle that covers it at full resolution, so an occlusion edge (a turned cheek over the
    background) runs where the triangle's edge runs, not along the map's 2-px blocks.

    ``index``, ``points`` ((T, 3, 2) triangles) and ``affine`` ((T, 3, 2)) are at the small map's
    resolution, as :func:`rasterise` and :func:`dense_map` take them. ``final`` - ``dense`` (the
    small map's (mx, my) as used, and as :func:`dense_map` gave them) is what was added after
    (detail, smoothing, rigid parts): read bilinearly at each pixel's own place, uncovered map
    pixels adding nothing. Only the triangles around the seams are drawn again, in their order.
    """
    size, small = full.shape[0], index.shape[0]
    rows, cols = np.flatnonzero(seam.any(1)), np.flatnonzero(seam.any(0))
    if not len(rows):
        return
    y0, x0 = int(rows[0]), int(cols[0])
    window = np.zeros((int(rows[-1]) + 1 - y0, int(cols[-1]) + 1 - x0), np.int32)
    ys, xs = np.nonzero(seam[y0:y0 + window.shape[0], x0:x0 + window.shape[1]])
    ys, xs = ys + y0, xs + x0
    qy, qx = np.minimum(ys * small // size, small - 1), np.minimum(xs * small // size, small - 1)
    touched = np.zeros((small, small), np.uint8)
    touched[qy, qx] = 1
    ids = np.unique(index[cv2.dilate(touched, np.ones((3, 3), np.uint8)) > 0])
    ids = ids[ids > 0]
    if not len(ids):
        return
    scale = size / small
    pts = np.round(((points[ids - 1] + 0.5) * scale - 0.5 - (x0, y0)) * 16).astype(np.int32)  # 4 fractional bits
    fill = cv2.fillConvexPoly
    for t, tri in zip(ids.tolist(), pts):  # ascending ids: later triangles over earlier ones, as in the map
        fill(window, tri, t, cv2.LINE_8, 4)
    tri = window[ys - y0, xs - x0]
    on = tri > 0
    if not on.any():  # the triangles around the seam drawn again cover none of its pixels (slivers)
        return
    ys, xs, qy, qx, tri = ys[on], xs[on], qy[on], qx[on], tri[on]
    a = affine[tri - 1].astype(np.float32)
    u = ((xs + 0.5) / scale - 0.5).astype(np.float32)[:, None]
    v = ((ys + 0.5) / scale - 0.5).astype(np.float32)[:, None]
    # what was added after is read bilinearly, as the map beside these pixels reads it (from the
    # nearest map pixel, it set them apart from their neighbours by up to a pixel where it varies)
    # (over the map pixels these read only: the rest of the map is not needed each frame)
    ry0, rx0 = max(int(np.floor(v.min())), 0), max(int(np.floor(u.min())), 0)
    ry1, rx1 = min(int(np.floor(v.max())) + 2, small), min(int(np.floor(u.max())) + 2, small)
    win = (slice(ry0, ry1), slice(rx0, rx1))
    covered = (index[win] > 0).astype(np.float32)  # uncovered map pixels hold no dense value to adjust
    at = [v[:, 0] - ry0, u[:, 0] - rx0]  # scipy's bilinear: cv2.remap refuses more than 32767 points in a row
    adjust = np.column_stack([map_coordinates((f[win] - d[win]) * covered, at, order=1, mode="nearest")
                              for f, d in zip(final, dense)])
    full[ys, xs] = u * a[:, 0] + v * a[:, 1] + a[:, 2] + adjust


def _unsqueezed(full: np.ndarray) -> np.ndarray:
    """(S, S) float32: 1 where the backward map ``full`` keeps the source's scale or enlarges it,
    falling to 0 where it squeezes it 2× (measured at a quarter of the resolution): detail finer
    than the crop, put back through a squeeze, would alias into specks."""
    size = full.shape[0]
    q = np.ascontiguousarray(full[::4, ::4])
    dx = cv2.Sobel(q, cv2.CV_32F, 1, 0, ksize=1, scale=0.125, borderType=cv2.BORDER_REPLICATE)  # central differences
    dy = cv2.Sobel(q, cv2.CV_32F, 0, 1, ksize=1, scale=0.125, borderType=cv2.BORDER_REPLICATE)
    squeeze = np.maximum(cv2.magnitude(dx[..., 0], dx[..., 1]), cv2.magnitude(dy[..., 0], dy[..., 1]))
    return cv2.resize(np.clip(2.0 - squeeze, 0.0, 1.0), (size, size), interpolation=cv2.INTER_LINEAR)


def _minify(out: np.ndarray, state: WarpState, full: np.ndarray, outline: np.ndarray, seams: np.ndarray | None,
            fixed: tuple[np.ndarray, np.ndarray] | None = None) -> None:
    """Where the (S, S, 2) backward map ``full`` squeezes the portrait (lips pressed together, an
    eye closing, a cheek turning away), blend ``out`` (in place) towards the
    portrait's :attr:`WarpState.prefiltered` copy sampled there: a bilinear sample of a region
    squeezed 3× skips two pixels in three, and its fine texture (lip lines, lashes, grain)
    aliased into specks that come and go from frame to frame. Only inside the face's ``outline``
    ((N, 2) target px), 3 px clear of it; jumps (seams, and any step of over :data:`_MINIFY` [1]
    px) are occlusion edges, not squeezes, and stay sharp. ``fixed``: ``full`` as
    ``cv2.convertMaps`` gives it (the same samples, without converting the window again)."""
    size = out.shape[0]
    x0, y0 = np.clip(np.floor(outline.min(0)).astype(int), 0, size)
    x1, y1 = np.clip(np.ceil(outline.max(0)).astype(int) + 1, 0, size)
    if x1 - x0 < 8 or y1 - y0 < 8:
        return
    # measured on every other pixel (the squeeze varies smoothly; a quarter of the work)
    half = full[y0:y1:2, x0:x1:2]
    inside = np.zeros(half.shape[:2], np.uint8)
    cv2.fillPoly(inside, [np.round((outline - (x0, y0)) / 2).astype(np.int32)], 1)
    inside = cv2.erode(inside, np.ones((3, 3), np.uint8)) > 0
    dx = cv2.Sobel(half, cv2.CV_32F, 1, 0, ksize=1, scale=0.25, borderType=cv2.BORDER_REPLICATE)  # central differences
    dy = cv2.Sobel(half, cv2.CV_32F, 0, 1, ksize=1, scale=0.25, borderType=cv2.BORDER_REPLICATE)
    squeeze = np.maximum(cv2.magnitude(dx[..., 0], dx[..., 1]), cv2.magnitude(dy[..., 0], dy[..., 1]))
    w = np.clip((squeeze - _MINIFY[0]) / _MINIFY[0], 0.0, 1.0) * ((squeeze < _MINIFY[1]) & inside)
    if seams is not None:
        w[seams[y0:y1:2, x0:x1:2]] = 0.0
    rows, cols = np.flatnonzero(w.any(1)), np.flatnonzero(w.any(0))
    if not len(rows):
        return
    # only around what is squeezed, 2 px more for the blur below
    r0, r1 = max(int(rows[0]) - 2, 0), min(int(rows[-1]) + 3, w.shape[0])
    c0, c1 = max(int(cols[0]) - 2, 0), min(int(cols[-1]) + 3, w.shape[1])
    w = cv2.GaussianBlur(w[r0:r1, c0:c1].astype(np.float32), (0, 0), 0.5)  # no hard edge where the blend starts
    y0, x0 = y0 + 2 * r0, x0 + 2 * c0
    h, wd = min(2 * (r1 - r0), size - y0), min(2 * (c1 - c0), size - x0)
    w = cv2.resize(w, (2 * (c1 - c0), 2 * (r1 - r0)), interpolation=cv2.INTER_LINEAR)[:h, :wd]
    win = (slice(y0, y0 + h), slice(x0, x0 + wd))
    m = (full[win], None) if fixed is None else (fixed[0][win], fixed[1][win])
    soft = cv2.remap(state.prefiltered, *m, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    roi = out[y0:y0 + h, x0:x0 + wd]
    roi[...] = cv2.blendLinear(roi, soft, np.ascontiguousarray(1.0 - w), np.ascontiguousarray(w))


def _feather(image: np.ndarray, where: np.ndarray) -> None:
    """Soften ``image`` (in place) by a 3×3 box filter at the pixels ``where`` is True: a 1-px
    anti-aliased edge in place of the nearest-coordinate stair-steps along a seam."""
    rows, cols = np.flatnonzero(where.any(1)), np.flatnonzero(where.any(0))
    if not len(rows):
        return
    y0, y1 = max(int(rows[0]) - 1, 0), min(int(rows[-1]) + 2, image.shape[0])
    x0, x1 = max(int(cols[0]) - 1, 0), min(int(cols[-1]) + 2, image.shape[1])
    roi = image[y0:y1, x0:x1]
    mask = where[y0:y1, x0:x1]
    roi[mask] = cv2.blur(roi, (3, 3))[mask]


def _mouth_gap(loop: np.ndarray, size: int) -> float:
    """Mean gap between the inner lips of ``loop`` ((K, 2) crop px), in px at a 512 crop."""
    return polygon_area(loop) / max(float(np.ptp(loop[:, 0])), 1.0) * (512.0 / size)


def _inner_lip_fit(landmarks: np.ndarray, source: np.ndarray) -> np.ndarray:
    """(3, 2) affine, target → source crop px ([x y 1] @ it), fitted on the inner-lip loops of the
    target ``landmarks`` and the ``source`` vertices."""
    ids = topology.mesh()["mouth_loop"]
    loop = landmarks[ids, :2].astype(np.float64)
    aff, *_ = np.linalg.lstsq(np.column_stack([loop, np.ones(len(loop))]), source[ids, :2].astype(np.float64), rcond=None)
    return aff


def _own_mouth_hole(empty: np.ndarray, mx: np.ndarray, my: np.ndarray, ix: np.ndarray, iy: np.ndarray,
                    landmarks: np.ndarray, source: np.ndarray) -> None:
    """Map (in place) the mouth hole onto the portrait's own open mouth by the affine fit of the
    inner-lip loops, the fit its drawn interior uses too: the lips' mapping carried into the hole
    put lip colour into the interior's anti-aliased edge, a ring round even an unmoved mouth."""
    loop = landmarks[topology.mesh()["mouth_loop"], :2].astype(np.float64)
    scale = float(ix[0, 1] - ix[0, 0])  # crop px per map px
    inside = np.zeros(empty.shape, np.uint8)
    cv2.fillPoly(inside, [((loop + 0.5) / scale - 0.5).round().astype(np.int32)], 1)
    hole = empty & (cv2.dilate(inside, np.ones((3, 3), np.uint8)) > 0)
    if not hole.any():
        return
    aff = _inner_lip_fit(landmarks, source)
    mx[hole] = ix[hole] * aff[0, 0] + iy[hole] * aff[1, 0] + aff[2, 0]
    my[hole] = ix[hole] * aff[0, 1] + iy[hole] * aff[1, 1] + aff[2, 1]


def _fill_from_nearest(empty: np.ndarray, *fields: np.ndarray) -> None:
    """Give the ``empty`` pixels of each field (in place) the value of the nearest covered one:
    e.g. the lips' mapping continues into the mouth hole, so the drawn mouth's anti-aliased edge
    blends into lip instead of whatever lies under the hole in the source (a dashed seam along
    the inner lip)."""
    x, y, w, h = cv2.boundingRect(empty.view(np.uint8))  # the box of the empty pixels, 2 px more
    if w == 0 or h == 0:
        return
    y0, y1 = max(y - 2, 0), min(y + h + 2, empty.shape[0])
    x0, x1 = max(x - 2, 0), min(x + w + 2, empty.shape[1])
    hole = empty[y0:y1, x0:x1]
    if hole.all():  # nothing covered nearby: the caller's identity stays
        return
    _, labels = cv2.distanceTransformWithLabels(hole.astype(np.uint8), cv2.DIST_L2, 3, labelType=cv2.DIST_LABEL_PIXEL)
    for m in fields:
        sub = m[y0:y1, x0:x1]
        lut = np.zeros(int(labels.max()) + 1, sub.dtype)
        lut[labels[~hole]] = sub[~hole]
        sub[hole] = lut[labels[hole]]


class WarpEngine(Engine):
    """Landmark-driven piecewise-affine warp with a synthetic mouth interior.

    Args:
        config: render settings (``mouth_interior`` switches the synthetic mouth).
        map_scale: resolution of the rasterised backward map relative to the crop.
        follow_silhouette: place the rings around the hair by a person mask of the source
            (mediapipe selfie segmentation); False uses fixed rings.
        outer_smoothing: Gaussian sigma (× map size) of the motion field around the face; 0 keeps
            it piecewise linear.
        rigid_parts: find glasses frames in prepare and move them rigidly with the head.
        teeth_fade: where the drawn upper row fades out towards the mouth's corners (see
            :data:`avatar.render.mouth.UPPER_FADE`; a video avatar keeps its fuller row).
    """

    name = "warp"
    needs_driving_image = False
    concurrent_frames = True  # per-frame work only; the shading and flow caches swap atomically

    def __init__(self, config: RenderConfig | None = None, map_scale: float = 0.5, follow_silhouette: bool = True,
                 outer_smoothing: float = _OUTER_SMOOTH, rigid_parts: bool = True,
                 teeth_fade: tuple[float, float] = mouth.UPPER_FADE) -> None:
        self.config = config or RenderConfig()
        self.teeth_fade = teeth_fade
        self.map_scale = map_scale
        self.follow_silhouette = follow_silhouette
        self.outer_smoothing = outer_smoothing
        self.rigid_parts = rigid_parts
        self.wants_driving_image = self.config.shading or self.config.detail
        self._shading = ShadingTransfer()
        self._detail = FaceDetail()

    def prepare(self, source: FaceCrop) -> WarpState:
        lm = source.landmarks.astype(np.float64)
        m = topology.mesh()
        # Where the crop leaves the frame, make_crop replicated the frame's edge: hair cut by the top
        # of the photo became streaks that the segmentation called background, so the hair's top
        # was left in the still plate (a ghost of it stayed behind when the head moved). Near that
        # edge the segmentation is also asked with the frame mirrored beyond it, and the person mask
        # goes on past the edge; the person layer keeps the replicated edge (hair goes on as hair:
        # mirrored, the forehead under the hairline came down as a pale patch), and the plate is
        # filled from the photo's own background only.
        rect = frame_rect(source.crop_from_frame, source.frame_size, source.size)
        mask = self._silhouette_mask(source.image, source.landmarks, rect) if self.follow_silhouette or self.config.layers else None
        frames = rigid.detect_frames(source.image, lm, None if mask is None else mask < 0.5) if self.rigid_parts else None
        image, worn = (source.image, ()) if frames is None else rigid.paint_out(source.image, frames)
        layers = self._layers(image, source.landmarks, mask, rect)
        band = outline.skin_band(source.image, lm)
        extra, weights, gaps, release = _ring_points(lm, source.size, mask if self.follow_silhouette else None,
                                            _SILHOUETTE_WEIGHTS if layers is None else _LAYERED_WEIGHTS, rect,
                                            None if layers is None else layers.rgba[..., 3] * (1.0 / 255.0), band)
        on = np.flatnonzero(band)
        skin = outline.pushed_out(lm[m["oval"], :2], band)[on]
        vertices = np.concatenate([lm[:, :2], extra[:, :2], skin])
        z = lm[:, 2] if lm.shape[1] > 2 else np.zeros(len(lm))
        depth = np.concatenate([z, extra[:, 2], z[m["oval"]][on]])
        weights = np.concatenate([weights, np.zeros(len(on))])  # moved with the oval, not the rings
        release = np.concatenate([release, np.zeros((len(on), 2))])
        # outer triangles: Delaunay over oval (and the mesh points beyond it) + rings + frame,
        # minus what lies inside the face
        oval = m["oval"]
        poly = vertices[oval].astype(np.float32).reshape(-1, 1, 2)
        beyond = _beyond_oval(vertices[: topology.IRIS_CENTERS[0]], poly)  # the mesh, not the irises
        ids = np.concatenate([oval, beyond, np.arange(len(lm), len(vertices))])
        tri = ids[Delaunay(vertices[ids]).simplices]
        centroids = vertices[tri].mean(1).astype(np.float32)
        # inside the face: the oval, and where a turned face's mesh reaches past it (the far eye's
        # corner, a lens); left to the outer triangles, that part of the face stayed behind with
        # the hair when the face turned back (a third eye, a torn far cheek on portrait_05)
        face = _face_cover(vertices, source.size, poly)
        at = np.round(centroids).astype(int)
        within = ((at >= 0) & (at < source.size)).all(1)
        inside = np.zeros(len(tri), bool)
        inside[within] = face[at[within, 1], at[within, 0]]
        cavity, tongue, teeth = mouth.colours(source.image, lm)
        own_mouth = mouth.own_mouth_mask(lm[m["mouth_loop"], :2], source.size)
        own_lower = mouth.own_lower_part(source.image, own_mouth)
        return WarpState(
            image=np.ascontiguousarray(image),
            vertices=vertices,
            depth=depth,
            ring_weights=weights,
            ring_release=release,
            ring_gaps=gaps,
            skin_band=band if len(on) else None,
            open_beside=None if mask is None or not self.follow_silhouette else (
                open_beside(mask, lm[m["oval"], :2], extra[:_RING_POINTS, :2]) if layers is None else
                open_beside(layers.alpha, lm[m["oval"], :2], extra[:_RING_POINTS, :2], image, layers.plate)),
            face_triangles=facing.face_triangles(),
            outer_triangles=tri[~inside],
            cavity_rgb=cavity,
            tongue_rgb=tongue,
            teeth_rgb=teeth,
            layers=layers,
            face_orientation=facing.reference_orientation(),
            grain=mouth.grain(source.image, lm),
            rigid=frames,
            worn=worn,
            own_mouth=own_mouth,
            own_teeth=mouth.teeth_shown(source.image, own_mouth, cavity, teeth),
            own_lower=own_lower,
            own_teeth_lower=mouth.teeth_shown(source.image, own_lower, cavity, teeth),
            crease=mouth.lip_crease(source.image, lm),
        )

    def background_plate(self, state: WarpState) -> np.ndarray | None:
        return None if state.layers is None else state.layers.plate

    def render(self, state: WarpState, targets: Sequence[DriveTarget]) -> list[np.ndarray]:
        # each crop carries its backward map, for paste-back to put back the source's detail
        return [MappedCrop.wrap(*self._render(state, t.landmarks, t.driving, t.reference)) for t in targets]

    @staticmethod
    def _silhouette_mask(image: np.ndarray, landmarks: np.ndarray, rect: tuple[int, int, int, int]) -> np.ndarray | None:
        """The person mask of the crop ``image``, or None when it is missing or does not cover the
        face (a segmentation that missed the person would put the rings on the face's outline).

        Where the crop leaves the photo (``rect``: the part inside it), the mask near the photo's
        edge may only grow by what the segmentation sees with the photo mirrored past the edge
        (replicated streaks read as background; a mirror reads as the person going on), and past
        the edge the mask carries on from it."""
        mask = person_mask(image)
        if mask is None:
            return None
        x0, y0, x1, y1 = rect
        size = mask.shape[0]
        if (x0, y0, x1, y1) != (0, 0, size, size) and x1 - x0 > 1 and y1 - y0 > 1:
            mirrored = person_mask(mirror_outside(image, rect))
            if mirrored is not None:
                near = distance_inside(rect, size) < _EDGE_BAND * size
                mask = np.where(near, np.maximum(mask, mirrored), mask)
            mask = cv2.copyMakeBorder(np.ascontiguousarray(mask[y0:y1, x0:x1]), y0, size - y1, x0, size - x1,
                                      cv2.BORDER_REPLICATE)
        oval = np.zeros(mask.shape, np.uint8)
        cv2.fillPoly(oval, [landmarks[topology.mesh()["oval"], :2].round().astype(np.int32)], 1)
        inside = mask[oval > 0]
        return mask if inside.size and float(inside.mean()) >= 0.5 else None

    def _layers(self, image: np.ndarray, landmarks: np.ndarray, mask: np.ndarray | None,
                frame: tuple[int, int, int, int]) -> Layers | None:
        """The crop split into plate and matted person, or None (with one warning) for the plain warp."""
        if not self.config.layers:
            return None
        layers, why = build_layers(image, landmarks, mask, frame)
        if layers is None:
            log.warning("layers are off for this portrait (%s); the plain warp renders it", why)
        return layers

    # -- one frame -------------------------------------------------------------------------
    def target_vertices(self, state: WarpState, landmarks: np.ndarray, lent: np.ndarray | None = None) -> np.ndarray:
        """(V, 2) target positions: landmarks, then ring points moved by the head's rigid motion
        (fitted in 3-D when the landmarks have depth, so turns move hair and ears with parallax),
        then the ends of the skin band beyond the oval (see :mod:`avatar.render.outline`), which
        narrows to nothing where the face inside takes its mirror side's texture (``lent``: (N,)
        per oval point, 0..1): a lit band of the far jaw beside the near side's shaded edge was
        a second, ghostly chin."""
        n = landmarks.shape[0]
        dims = 3 if landmarks.shape[1] > 2 else 2
        src = np.column_stack([state.vertices, state.depth])[:, :dims]
        s, r, t = self._head_motion(state, landmarks)
        extra = state.vertices[n:]
        moved = (s * src[n:] @ r.T + t)[:, :2]
        extra_t = extra + state.ring_weights[:, None] * (moved - extra)
        if state.ring_release is not None:
            # near a crop edge, what the fade held back of a move away from that edge
            held = state.ring_release
            away = np.maximum(((moved - extra) * held).sum(1), 0.0) / np.maximum(np.linalg.norm(held, axis=1), 1e-9)
            extra_t += away[:, None] * held
        oval = topology.mesh()["oval"]
        inner = landmarks[oval, :2].astype(np.float64)
        if state.open_beside is not None:
            hold = _hold_outline(state.vertices[oval], inner, extra[:_RING_POINTS], moved[:_RING_POINTS], s, state.open_beside)
            extra_t[: _HOLD_RINGS * _RING_POINTS] += np.tile(hold, (_HOLD_RINGS, 1))
        if state.skin_band is not None:
            # the skin beyond the oval keeps its width (× the head's scale) outside the target's
            # outline, and the rings keep their distance from its edge
            band = state.skin_band * s if lent is None else state.skin_band * s * (1.0 - maximum_filter1d(lent, 2 * _BAND_SPREAD + 1, mode="wrap"))
            inner = outline.pushed_out(inner, band)
            extra_t[len(extra_t) - int(np.count_nonzero(state.skin_band)):] = inner[state.skin_band > 0]
        _keep_rings_apart(extra_t, inner, state.ring_gaps)
        tgt = np.concatenate([landmarks[:, :2], extra_t])
        movable = state.ring_weights > 0
        if state.ring_release is not None:
            movable |= state.ring_release.any(1)
        _untangle(tgt, state.vertices, state.outer_triangles, movable=movable, first=n)
        # untangling a triangle may push a ring past the next one out, where the fall below the
        # ears makes neighbouring rings move unequally: their order outwards is restored
        _keep_rings_apart(tgt[n:], inner, state.ring_gaps)
        return tgt

    @staticmethod
    def _head_motion(state: WarpState, landmarks: np.ndarray, ids: np.ndarray | None = None) -> tuple[float, np.ndarray, np.ndarray]:
        """The head's rigid motion source → target: a similarity fitted on ``ids``, by default the
        landmarks that move with the skull and the oval (in 3-D when the landmarks have depth)."""
        if ids is None:
            ids = np.union1d(stable_ids(), topology.mesh()["oval"])
        dims = 3 if landmarks.shape[1] > 2 else 2
        src = np.column_stack([state.vertices, state.depth])[:, :dims]
        return fit_similarity(src[ids], landmarks[ids, :dims].astype(np.float64))

    def backward_map(self, state: WarpState, landmarks: np.ndarray, driving: FaceCrop | None = None,
                     reference: FaceCrop | None = None) -> np.ndarray:
        """(S, S, 2) float32 source coordinates for every target pixel; with the driving crop and
        its reference (and ``detail`` on), plus the fine motion the driver's optical flow shows."""
        return self.face_maps(state, landmarks, driving, reference).own

    def face_maps(self, state: WarpState, landmarks: np.ndarray, driving: FaceCrop | None = None,
                  reference: FaceCrop | None = None) -> FaceMaps:
        """The backward map (see :meth:`backward_map`) and, where the far side turns into view,
        the mirror map and its weight."""
        size = state.image.shape[0]
        ms = self.map_scale
        small = int(round(size * ms))
        face = state.face_triangles
        front = facing.front_facing(landmarks[:, :2], face, state.face_orientation)
        lend = facing.mirror_weights(state.vertices, landmarks[:, :2], face, state.face_orientation)
        lent = None
        if state.skin_band is not None:
            lent = facing.vertex_weights(lend[front], face[front], len(landmarks))[topology.mesh()["oval"]]
        tgt = self.target_vertices(state, landmarks, lent)
        tgt_small = (tgt + 0.5) * (small / size) - 0.5  # pixel-centre aligned with cv2.resize
        src = state.vertices

        # depth order: face triangles turned away in the target are culled (drawn, a fold drags
        # their texture across the cheek); the rest go far to near over the outer triangles
        z = landmarks[:, 2]
        face, lend = face[front], lend[front]
        order = np.argsort(-z[face].mean(1))
        face, lend = face[order], lend[order]
        tris = np.concatenate([state.outer_triangles, face])
        n_outer = len(state.outer_triangles)
        # affine per triangle: target (small map px, homogeneous) → source (crop px)
        inv, det = inverse_homogeneous(tgt_small[tris])
        ok = np.abs(det) > 1e-6
        n_outer = int(ok[:n_outer].sum())
        tris, inv = tris[ok], inv[ok]
        lend = lend[ok[len(state.outer_triangles):]]
        affine = inv @ src[tris]  # (T, 3, 2): [u v 1] @ A = source xy

        index = rasterise(tgt_small[tris], (small, small))
        mx, my = dense_map(index, affine)
        _drop_islands(index, mx, my, affine, size / small, island_box(tgt_small[:478], small))
        dense = (mx, my)  # before the adjustments below (each makes new arrays): their share is carried to the seams
        mirror = self._mirror_map(state, index, tris, inv, n_outer, lend, small) if lend.any() else None
        empty = index == 0  # not covered: the mouth hole (and folds)
        ix, iy = _identity(small, size)
        mx = np.where(empty, ix, mx)
        my = np.where(empty, iy, my)
        _fill_from_nearest(empty, mx, my)
        # an open target's hole shows the portrait's own open mouth; a nearly sealed one keeps the
        # lips' mapping, so its lips meet on their own texture (see _draw_mouth)
        if state.own_mouth is not None and _mouth_gap(landmarks[topology.mesh()["mouth_loop"], :2], size) >= _SEALED_GAP[1]:
            _own_mouth_hole(empty, mx, my, ix, iy, landmarks, state.vertices)
        if self.config.detail and driving is not None and reference is not None:
            fix = self._detail.correction(index, n_outer, tris, inv, src, driving, reference)
            if fix is not None:
                dx, dy, (x0, y0) = fix
                mx[y0:y0 + dx.shape[0], x0:x0 + dx.shape[1]] += dx
                my[y0:y0 + dy.shape[0], x0:x0 + dy.shape[1]] += dy
        # around the face the motion is piecewise linear over sparse rings: smooth it there, or
        # straight edges of the background (a shelf, a door frame) shear into a sawtooth
        outer = (index > 0) & (index <= n_outer)
        if outer.any() and self.outer_smoothing > 0:
            # blurred at half the map's resolution: the smoothed field has no fine detail to lose
            half = max(small // 2, 1)
            shift = cv2.resize(np.dstack([mx - ix, my - iy]), (half, half), interpolation=cv2.INTER_AREA)
            shift = cv2.resize(cv2.GaussianBlur(shift, (0, 0), self.outer_smoothing * half), (small, small), interpolation=cv2.INTER_LINEAR)
            # full smoothing from 2 sigma away from the face on, none at its outline (the jaw stays exact)
            away = cv2.distanceTransform((index <= n_outer).astype(np.uint8), cv2.DIST_L2, 3)
            k = np.where(outer, np.minimum(away * (1.0 / (2 * self.outer_smoothing * small)), 1.0), 0.0).astype(np.float32)
            mx = mx + k * (ix + shift[..., 0] - mx)
            my = my + k * (iy + shift[..., 1] - my)
        # beside the mouth hole (2 map pixels) the map stays bilinear, so where the target's lips
        # part a little the source's own line between them shows; where they meet over a wider
        # own opening, the jump there is a seam (_LIP_JUMP), drawn exactly
        near_hole = cv2.dilate(empty.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        lips = np.zeros((small, small), np.uint8)
        cv2.polylines(lips, [np.round(tgt_small[topology.mesh()["mouth_loop"], :2]).astype(np.int32)], True, 1)
        lips = cv2.dilate(lips, np.ones((5, 5), np.uint8)) > 0
        fade = None if state.layers is None else state.layers.fine_fade(mx, my)
        full, seam = upsample_map(mx, my, size, covered=~near_hole, face=index > n_outer, lips=lips)
        if seam is not None:
            _exact_at_seams(full, _reads_a_seam(seam, mx, my), index, tgt_small[tris], affine, (mx, my), dense)
        if mirror is None:
            return FaceMaps(full, seams=seam, fade=fade)
        return FaceMaps(full, *mirror, seams=seam, fade=fade)

    @staticmethod
    def _mirror_map(state: WarpState, index: np.ndarray, tris: np.ndarray, inv: np.ndarray, n_outer: int,
                    lend: np.ndarray, small: int) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]] | None:
        """Full-resolution mirror coordinates and weight over the box where a face triangle takes
        its mirror partner's texture (per-vertex weights, so it fades in across one triangle)."""
        size = state.image.shape[0]
        n = len(facing.mirror_ids())
        weights = np.zeros(len(state.vertices))
        weights[:n] = facing.vertex_weights(lend, tris[n_outer:], n)[:n]
        weights[topology.mesh()["oval"]] *= 0.5  # the mirrored texture fades in from the outline: no hard seam with the outside
        partner = np.concatenate([facing.mirror_ids(), np.arange(n, len(state.vertices))])
        values = np.concatenate([state.vertices[partner], weights[:, None]], 1)
        affine = inv @ values[tris]  # (T, 3, 3): mirror x, y and weight
        affine[:n_outer] = 0.0       # the outer triangles never lend
        lends = np.concatenate([[False], weights[tris].max(1) > 0])
        lends[1:n_outer + 1] = False
        where = lends[index]  # only the window around the lending triangles is evaluated
        rows, cols = np.flatnonzero(where.any(1)), np.flatnonzero(where.any(0))
        if not len(rows):
            return None
        sx0, sy0 = max(int(cols[0]) - 2, 0), max(int(rows[0]) - 2, 0)
        sx1, sy1 = min(int(cols[-1]) + 3, small), min(int(rows[-1]) + 3, small)
        window = index[sy0:sy1, sx0:sx1]
        weight = dense_field(window, affine[..., 2:], (sx0, sy0))[..., 0]
        on = weight > 1e-3
        if not on.any():
            return None
        # beyond the lending triangles (and across a thin gap, which takes the weight around it)
        # the mirror coordinates continue the nearest lending triangle's mapping, so the upsampled
        # map never blends towards unrelated coordinates (a dotted seam). Continued as constants
        # (the nearest pixel's), they repeated the near side's outline in steps along this map's
        # pixel grid: a sawtooth of pale teeth on the far cheek's edge
        nearest = window.copy()
        _fill_from_nearest(~on, nearest)
        box = np.empty(window.shape + (3,), np.float32)
        box[..., :2] = dense_field(nearest, affine[..., :2], (sx0, sy0))
        k = 2 * (_MIRROR_GAP // 2) + 1
        weight = cv2.morphologyEx(weight, cv2.MORPH_CLOSE, np.ones((k, k), np.uint8))
        # the face's outline cut the weight off along this map's pixel grid, a staircase: the
        # weight runs on past the outline and is cut by the face's coverage, blurred
        face = (window > n_outer).astype(np.float32)
        weight = np.where(face > 0, weight, cv2.dilate(weight, np.ones((3, 3), np.uint8)))
        box[..., 2] = weight * cv2.GaussianBlur(face, (0, 0), _MIRROR_EDGE)
        scale = size / small
        x0, y0, x1, y1 = (int(round(v * scale)) for v in (sx0, sy0, sx1, sy1))
        full = cv2.resize(box, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
        # the small map's pixel centres and the full map's agree when the box edges sit on whole
        # small pixels (x0 = k · scale): resizing the box is resizing that part of the whole map
        return full[..., :2].copy(), np.clip(full[..., 2], 0.0, 1.0), (x0, y0, x1, y1)

    def render_one(self, state: WarpState, landmarks: np.ndarray, driving: FaceCrop | None = None,
                   reference: FaceCrop | None = None) -> np.ndarray:
        """(478, 3) target landmarks in source-crop pixels → (S, S, 3) uint8 crop; with the
        driving crop and its reference (relative mode), the driver's shading change too."""
        return self._render(state, landmarks, driving, reference, mapped=False)[0]

    def _render(self, state: WarpState, landmarks: np.ndarray, driving: FaceCrop | None,
                reference: FaceCrop | None, mapped: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """:meth:`render_one`'s crop, its backward map ((S, S, 2) source-crop px) and, with
        ``mapped``, how much of each pixel is the source seen through that map ((S, S) float32,
        see :class:`~avatar.face.blend.MappedCrop`; None without)."""
        maps = self.face_maps(state, landmarks, driving, reference)
        mp = maps.own
        # OpenCV turns a float map into this fixed-point pair inside every remap; done once here,
        # the remaps through it below sample exactly as with the float map
        fixed = cv2.convertMaps(mp, None, cv2.CV_16SC2)
        if state.layers is not None:
            out = state.layers.composite(fixed, maps.fade, at=mp)
        else:
            out = cv2.remap(state.image, *fixed, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        own = None
        if mapped:
            own = cv2.remap(state.detail_source, *fixed, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            own *= _unsqueezed(mp)
        if _MINIFY[0] > 0:
            _minify(out, state, mp, landmarks[topology.mesh()["oval"], :2].astype(np.float64), maps.seams, fixed)
        if maps.mirror is not None:
            x0, y0, x1, y1 = maps.box
            lent = cv2.remap(state.mirror_image, maps.mirror, None, cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
            roi = out[y0:y1, x0:x1].astype(np.float32)
            out[y0:y1, x0:x1] = np.clip(roi + maps.weight[..., None] * (lent - roi) + 0.5, 0, 255).astype(np.uint8)
            if own is not None:
                own[y0:y1, x0:x1] *= 1.0 - maps.weight
        if maps.seams is not None:
            _feather(out, maps.seams)
        eyelids.draw(out, state.image, state.vertices, landmarks, own)
        eyelids.lid_skin(out, state.image, state.vertices, landmarks, own, state.painted)
        if state.worn:
            rigid.draw(out, state.worn, self._worn_forwards(state, landmarks, mp), own)
        if state.crease is not None:
            self._fill_crease(state, landmarks, mp, out, own)
        self._draw_mouth(state, landmarks, out, own)
        if self.config.shading and driving is not None and reference is not None:
            out = self._shading.apply(out, landmarks, driving, reference)
        return out, mp, own

    def _worn_forwards(self, state: WarpState, landmarks: np.ndarray, mp: np.ndarray) -> list[np.ndarray]:
        """(2, 3) forward affine of each rigid piece: the lenses with the head's rigid motion on
        their plane; a temple arm from its hinge, which the lenses carry, to where the warp ``mp``
        puts its end. The arm rests on the temple and hair, and where the landmarks bend the far
        side of a turn the warp moves them away from the head's rigid motion; an arm held rigid
        there left them."""
        s, r, t = self._head_motion(state, landmarks)
        if r.shape[0] < 3:  # 2-D landmarks: one similarity in the picture's plane
            return [np.column_stack([s * r, t])] * len(state.rigid.pieces)
        forwards = [rigid.plane_affine(plane, s, r, t) for _, plane, _ in state.rigid.pieces]
        reach = _ARM_SEARCH * mp.shape[0]
        for k, (hinge, end) in enumerate(state.rigid.axes, start=1):
            if state.layers is not None and state.layers.alpha[tuple(np.clip(np.round(end[::-1]).astype(int), 0, mp.shape[0] - 1))] < 0.5:
                continue  # an end over the background is a lens's outer rim, not an arm resting on the head
            guess = forwards[k][:, :2] @ end + forwards[k][:, 2]
            landed = _forward_point(mp, end, guess, reach)
            if landed is not None:
                forwards[k] = rigid.arm_affine(forwards[k], hinge, end, landed)
        return forwards

    def _lip_pose(self, state: WarpState, landmarks: np.ndarray, frame: mouth.MouthFrame) -> tuple[float, float]:
        """Px the upper lip's middle is raised above where the head's rigid motion carries the
        portrait's (the upper teeth are fixed to the skull, so that much more of them shows), and
        the inner lips' width over the portrait's at rest carried the same way (under 1: rounded)."""
        # fitted on the skull alone: with the oval in the fit, a jaw drop pulled the rest lower
        s, r, t = self._head_motion(state, landmarks, stable_ids())
        ids = list(_UPPER_MIDDLE) + list(rig.INNER_CORNERS)
        src = np.column_stack([state.vertices[ids], state.depth[ids]])[:, : r.shape[0]]
        rest = (s * src @ r.T + t)[:, :2]
        _, v_rest = frame.coords(rest[:3, 0], rest[:3, 1])
        _, v_now = frame.coords(landmarks[ids[:3], 0].astype(np.float64), landmarks[ids[:3], 1].astype(np.float64))
        rest_width = float(np.hypot(*(rest[4] - rest[3])))
        return float(np.mean(v_rest - v_now)), frame.width / max(rest_width, 1e-6)

    def _fill_crease(self, state: WarpState, landmarks: np.ndarray, mp: np.ndarray, out: np.ndarray,
                     mapped: np.ndarray | None) -> None:
        """Paint the portrait's lip crease (``state.crease``) over with its lips, in place, as far as
        the mouth opens past the portrait's own opening (see :data:`mouth.CREASE_OPEN`)."""
        ids = topology.mesh()["mouth_loop"]
        size = out.shape[0]
        opened = _mouth_gap(landmarks[ids, :2], size) - _mouth_gap(state.vertices[ids], size)
        k = float(np.clip((opened - mouth.CREASE_OPEN[0]) / (mouth.CREASE_OPEN[1] - mouth.CREASE_OPEN[0]), 0.0, 1.0))
        if k == 0.0:
            return
        lips = landmarks[list(topology.mesh()["lips"]), :2]
        x0, y0 = np.maximum(np.floor(lips.min(0)).astype(int) - 3, 0)
        x1, y1 = np.minimum(np.ceil(lips.max(0)).astype(int) + 4, size)
        if x1 <= x0 or y1 <= y0:
            return
        c = state.crease
        at = mp[y0:y1, x0:x1] - np.array([c.box[0], c.box[1]], np.float32)
        mask = cv2.remap(c.mask, at, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        if not mask.any():
            return
        filled = cv2.remap(c.filled, at, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
        mask *= k
        roi = out[y0:y1, x0:x1].astype(np.float32)
        out[y0:y1, x0:x1] = np.clip(roi + mask[..., None] * (filled - roi) + 0.5, 0, 255).astype(np.uint8)
        if mapped is not None:  # the source's own detail there is the crease's
            mapped[y0:y1, x0:x1] *= 1.0 - mask

    def _draw_mouth(self, state: WarpState, landmarks: np.ndarray, out: np.ndarray, mapped: np.ndarray | None = None) -> None:
        """Draw the open mouth's interior over ``out`` (in place); ``mapped`` ((S, S) float32, in place):
        the share of each pixel still sampled through the backward map."""
        loop = landmarks[topology.mesh()["mouth_loop"], :2]
        area = polygon_area(loop)
        size = out.shape[0]
        if area < 1.0:
            return
        x0, y0 = np.floor(loop.min(0)).astype(int) - 2
        x1, y1 = np.ceil(loop.max(0)).astype(int) + 3
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, size), min(y1, size)
        if x1 <= x0 or y1 <= y0:
            return
        alpha = mouth.opening_alpha(loop, x0, y0, x1 - x0, y1 - y0)
        # lips all but closed (a gap under 2.5 px at 512): drawn, the interior is a crisp black line
        # with pointed ends; it fades out and the lips meet on their own texture instead
        alpha *= float(np.clip((_mouth_gap(loop, size) - _SEALED_GAP[0]) / (_SEALED_GAP[1] - _SEALED_GAP[0]), 0.0, 1.0))
        if not alpha.any():
            return

        # source's own interior, mapped by an affine fit of the inner-lip loops
        src_loop = state.vertices[topology.mesh()["mouth_loop"]]
        aff = _inner_lip_fit(landmarks, state.vertices)
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        sx = (xx * aff[0, 0] + yy * aff[1, 0] + aff[2, 0]).astype(np.float32)
        sy = (xx * aff[0, 1] + yy * aff[1, 1] + aff[2, 1]).astype(np.float32)
        own = cv2.remap(state.image, sx, sy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)

        # up to the portrait's own open mouth, its interior fitted to the lips; wider, the drawn one
        # fades in (over _OWN_TO_DRAWN × its area more): a hard switch flipped between the two as a
        # tracker's jitter crossed the threshold, and at the photo's own landmarks (float32
        # against float64 areas) drew a cavity ring round an unmoved mouth
        wider, ratio = 1.0, np.inf
        if state.own_mouth is not None:
            ratio = area / max(polygon_area(src_loop), 1e-6)
            wider = float(np.clip((ratio - 1.0) / _OWN_TO_DRAWN, 0.0, 1.0))
        if not self.config.mouth_interior or wider == 0.0:
            interior = own
        else:
            frame = mouth.mouth_frame(landmarks)
            lift, width_ratio = self._lip_pose(state, landmarks, frame)
            # rounded lips cover the upper teeth (see mouth.ROUNDED) and half of the lower ones' tips
            show = mouth.rounded_show(width_ratio)
            interior, _ = mouth.interior(frame, xx, yy, state.cavity_rgb, state.tongue_rgb, state.teeth_rgb,
                                         self.teeth_fade, (mouth.UPPER_SHOW * frame.width + lift) * show,
                                         0.5 + 0.5 * show)
            interior = mouth.add_grain(interior, state.grain, xx, yy)
            # wider: the portrait's own interior, carried by the upper lip. Teeth it shows are kept at
            # any opening but go under rounded lips as the drawn ones do; a dark gap between parted
            # lips (the teeth in its shadow) only near its own size: further open, it hung as a dark
            # band between the lip and the drawn teeth
            # Its lower part (a talker's lower teeth, or the gap under a smile's upper teeth; see
            # mouth.own_lower_part) rides the lower lip: carried whole by the upper lip, a talker's
            # own lower teeth hung from it over a dark band, above drawn lower teeth
            gap_fade = float(np.clip((_OWN_GAP_FADE - ratio) / (_OWN_GAP_FADE - 1), 0, 1))
            if state.own_mouth is not None:
                parts = [(True, state.own_upper, state.own_teeth, show)]
                if state.own_lower is not None:
                    parts.append((False, state.own_lower, state.own_teeth_lower, 0.5 + 0.5 * show))
                for upper, part, teeth_shown, shown in parts:
                    carried = teeth_shown * shown + (1 - teeth_shown) * gap_fade
                    if carried <= 0:
                        continue
                    back = mouth.lip_motion(landmarks, state.vertices, upper)
                    sx = (xx * back[0, 0] + yy * back[0, 1] + back[0, 2]).astype(np.float32)
                    sy = (xx * back[1, 0] + yy * back[1, 1] + back[1, 2]).astype(np.float32)
                    teeth = cv2.remap(state.image, sx, sy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
                    w_own = cv2.remap(part, sx, sy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
                    interior += (carried * w_own)[..., None] * (teeth - interior)
                interior = own + wider * (interior - own)
        roi = out[y0:y1, x0:x1].astype(np.float32)
        out[y0:y1, x0:x1] = np.clip(roi + alpha[..., None] * (interior - roi), 0, 255).astype(np.uint8)
        if mapped is not None:
            mapped[y0:y1, x0:x1] *= 1.0 - alpha
