"""Motion transfer: driving landmarks → target landmarks for the source portrait.

Relative mode (default) applies the driver's change since its reference frame (head
rotation, scale, translation and expression offsets in the pose-free canonical frame) to
the source's own pose and shape, so the driver's face shape never leaks into the portrait.
Absolute mode copies the driver's landmarks, placed by a similarity fitted at the reference.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy.spatial.transform import Rotation

from ..config import MotionConfig
from . import rig
from .decompose import Pose, canonical_template, decompose, fit_similarity, stable_ids
from .smooth import OneEuroFilter

# Facing pairs (upper, lower) that must not pass each other: inner lips and eyelids.
_UPPER = np.array(rig.INNER_UPPER + rig.LEFT_UPPER_LID + rig.RIGHT_UPPER_LID)
_LOWER = np.array(rig.INNER_LOWER + rig.LEFT_LOWER_LID + rig.RIGHT_LOWER_LID)


def uncross(canonical: np.ndarray) -> np.ndarray:
    """Meet facing lip/lid points halfway where an offset would push the lower above the upper.

    A driver whose reference frame has its mouth (or eyes) open, closing them, gives offsets
    larger than the source's own opening; without this the source's lips would overlap.
    (N, 3) canonical, y down → same, in place.
    """
    up, lo = canonical[_UPPER, 1], canonical[_LOWER, 1]
    crossed = lo < up
    if np.any(crossed):
        mid = 0.5 * (up + lo)
        canonical[_UPPER[crossed], 1] = mid[crossed]
        canonical[_LOWER[crossed], 1] = mid[crossed]
    return canonical


# per eye, its upper and its lower lid points, facing in pairs
_LIDS = ((np.array(rig.LEFT_UPPER_LID), np.array(rig.LEFT_LOWER_LID)),
         (np.array(rig.RIGHT_UPPER_LID), np.array(rig.RIGHT_LOWER_LID)))
LID_CLOSED = 0.15  # a closed eye's tracked lid gap, × its open one: the lid points keep the lashes' thickness
# The reference cost's eyes and lips. Motion is relative to the reference, and in the shape's mean
# over 400-odd points the few lid and lip points hardly counted: a driver looking down with her eyes
# shut won on pose (driving_02 frame 111), and the portrait's eyes stayed open through every blink
# and opened wider in every open frame; one mid-word drew a closed mouth shut whenever the driver's
# closed further (portrait_04 and _05 × driving_02).
EYES_WEIGHT = 0.25  # cost per eye, × how much less open it is than the source's (a share of the driver's open eyes)
LIPS_WEIGHT = 2.0  # cost per canonical unit of difference in the inner lips' gap
OPEN_PERCENTILE = 75.0
REST_EYES = 0.5   # see :func:`at_rest`
REST_LIPS = 0.05


def close_lids(canonical: np.ndarray, rest: np.ndarray, reference: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Where the driver's eyes close, close the source's by the same share of its own lid gap.

    Offsets move the lids by the driver's pixels: a portrait whose eyes are open wider than the
    driver's reference kept them half open through the driver's blinks, the eyeball squeezed
    into the gap left. A closed eye reads :data:`LID_CLOSED` of its open gap to the tracker, so
    that share closes fully. The lid that moved more in the driver takes more of the extra
    closing. Opening wider than the reference stays additive. ``canonical``: (N, 3) source +
    offsets, y down, changed in place; ``rest``: the source's canonical face; ``reference``:
    the driver's reference canonical face; ``offsets``: the driver's (scaled) offsets."""
    for up, lo in _LIDS:
        ref_gap = float(np.sum(reference[lo, 1] - reference[up, 1]))
        change = float(np.sum(offsets[lo, 1] - offsets[up, 1]))
        if ref_gap <= 1e-9 or change >= 0.0:
            continue
        share = np.clip((1.0 + change / ref_gap - LID_CLOSED) / (1.0 - LID_CLOSED), 0.0, 1.0)
        want = share * np.maximum(rest[lo, 1] - rest[up, 1], 0.0)
        extra = np.maximum(canonical[lo, 1] - canonical[up, 1] - want, 0.0)
        du, dl = np.abs(offsets[up, 1]), np.abs(offsets[lo, 1])
        upper_share = du / np.maximum(du + dl, 1e-12)
        canonical[up, 1] += extra * upper_share
        canonical[lo, 1] -= extra * (1.0 - upper_share)
    return canonical


def lid_depths(canonical: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """Bring the depths of facing lid points together as their gap closes: open, the upper lid's
    margin lies at another depth than the lower's, and lids that met in the face's own frame
    stayed that depth apart, which a tilted head turned into a gap of several pixels in the
    picture (a closed eye drawn half open). (N, 3) canonical, y down → same, in place."""
    for up, lo in _LIDS:
        rest_gap = rest[lo, 1] - rest[up, 1]
        ratio = np.clip((canonical[lo, 1] - canonical[up, 1]) / np.maximum(rest_gap, 1e-9), 0.0, 1.0)
        ratio = np.where(rest_gap > 1e-9, ratio, 1.0)
        z_up, z_lo = canonical[up, 2], canonical[lo, 2]
        mid, half = 0.5 * (z_up + z_lo), 0.5 * ratio * (z_lo - z_up)
        canonical[up, 2] = np.where(ratio < 1.0, mid - half, z_up)
        canonical[lo, 2] = np.where(ratio < 1.0, mid + half, z_lo)
    return canonical


_LIP_PAIRS = (np.array(rig.INNER_UPPER), np.array(rig.OUTER_UPPER), np.array(rig.INNER_LOWER), np.array(rig.OUTER_LOWER))
LIP_FLOOR = 0.6  # a lip keeps at least this share of its rest thickness


def keep_lip_thickness(canonical: np.ndarray, rest: np.ndarray, floor: float = LIP_FLOOR) -> np.ndarray:
    """Keep each lip at least ``floor`` of its thickness in ``rest`` (the source's canonical face),
    moving its outer edge. Offsets are the driver's: a thin-lipped driver pressing its lips, or one
    closing from a wide-open reference (whose lower lip :func:`uncross` stops at the upper one),
    otherwise flattened a full lip to a line and stretched the shadow under it (portrait_02 x
    driving_03). (N, 3) canonical, y down → same, in place."""
    iu, ou, il, ol = _LIP_PAIRS
    up_min = floor * np.maximum(rest[iu, 1] - rest[ou, 1], 0.0)
    canonical[ou, 1] = np.minimum(canonical[ou, 1], canonical[iu, 1] - up_min)
    lo_min = floor * np.maximum(rest[ol, 1] - rest[il, 1], 0.0)
    canonical[ol, 1] = np.maximum(canonical[ol, 1], canonical[il, 1] + lo_min)
    return canonical


# each lip's four rings, outline to inner edge, in facing columns (the rig's order: left to right)
_LIP_RINGS = ((np.array(rig.OUTER_UPPER), np.array(rig.BODY_UPPER[:9]), np.array(rig.BODY_UPPER[9:]),
               np.array(rig.INNER_UPPER)),
              (np.array(rig.OUTER_LOWER), np.array(rig.BODY_LOWER[:9]), np.array(rig.BODY_LOWER[9:]),
               np.array(rig.INNER_LOWER)))


def keep_lip_rings(canonical: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """Keep each lip's rings in order from its outline to its inner edge. The driver's offsets move
    the inner edge by its own lips' measure: on thinner lips the edge passed the rings inside the
    lip (Mona Lisa × a wide-mouthed driver: up to 38 lip triangles turned inside out), which a warp
    draws as a tear. In a column out of order the two inner rings go back to where they lay
    between outline and edge in ``rest`` (the source's canonical face); pairs already out of order
    there are left to the driver. (N, 3), y down → same, in place."""
    for outer, semi_out, semi_in, inner in _LIP_RINGS:
        y_o, y_i = canonical[outer, 1], canonical[inner, 1]
        span = rest[inner, 1] - rest[outer, 1]
        ok = np.abs(span) > 1e-9
        sign = np.sign(span)
        order = np.stack([y_o, canonical[semi_out, 1], canonical[semi_in, 1], y_i]) * sign
        was = np.stack([rest[outer, 1], rest[semi_out, 1], rest[semi_in, 1], rest[inner, 1]]) * sign
        # out of order where the portrait is in order (next to the corners its edge curves past a ring)
        bad = ok & np.any((np.diff(order, axis=0) < 0) & (np.diff(was, axis=0) >= 0), axis=0)
        if not bad.any():
            continue
        for ring in (semi_out, semi_in):
            f = np.clip((rest[ring, 1] - rest[outer, 1]) / np.where(ok, span, 1.0), 0.0, 1.0)
            canonical[ring[bad], 1] = (y_o + f * (y_i - y_o))[bad]
    return canonical


TURN_KNEE = 0.8  # turns up to this share of the limit pass unchanged
CLIP_SAMPLES = 600  # frames of a driving clip at most that place its reference rotation


def _swing_twist(rotation: Rotation) -> tuple[Rotation, Rotation]:
    """Split rotation(s) into swing · twist: the twist about the camera's axis (roll, which a 2-D
    warp renders exactly) after a swing about an axis in the picture's plane (yaw and pitch,
    which reveal or hide sides of the head)."""
    quat = rotation.as_quat()  # x, y, z, w
    q = np.atleast_2d(quat)
    norm = np.hypot(q[:, 2], q[:, 3])
    safe = norm > 1e-12
    tw = np.zeros_like(q)
    tw[:, 2] = np.where(safe, q[:, 2] / np.where(safe, norm, 1.0), 0.0)
    tw[:, 3] = np.where(safe, q[:, 3] / np.where(safe, norm, 1.0), 1.0)
    twist = Rotation.from_quat(tw.reshape(quat.shape))
    return rotation * twist.inv(), twist


def turn_angles(rotations: Rotation) -> np.ndarray:
    """Degrees each rotation turns out of the picture's plane (its swing; roll left out).

    The swing's quaternion has w = |(z, w)| of the whole one, so its angle needs no split."""
    q = np.atleast_2d(rotations.as_quat())
    return np.degrees(2.0 * np.arccos(np.clip(np.hypot(q[:, 2], q[:, 3]), 0.0, 1.0)))


def limit_turn(rotation: np.ndarray, max_turn: float) -> np.ndarray:
    """Soften a head-pose change's turn out of the picture's plane to at most ``max_turn`` degrees.

    Only the swing (yaw and pitch) is limited, not the roll: unchanged up to :data:`TURN_KNEE`
    of the limit, then approaching it along a tanh, so the motion stays smooth and monotonic.
    (3, 3) rotation in camera axes → same; ``max_turn`` 0 returns it unchanged.
    """
    if max_turn <= 0.0:
        return rotation
    swing, twist = _swing_twist(Rotation.from_matrix(rotation))
    angle = float(np.degrees(swing.magnitude()))
    knee = TURN_KNEE * max_turn
    if angle <= knee:
        return rotation
    span = max_turn - knee
    limited = knee + span * np.tanh((angle - knee) / span)
    return (Rotation.from_rotvec(swing.as_rotvec() * (limited / angle)) * twist).as_matrix()


def turn_reference(reference: np.ndarray, clip: np.ndarray, max_turn: float) -> np.ndarray:
    """The reference head rotation, moved towards the clip's mean rotation just far enough that
    the clip's turns from it stay within :data:`TURN_KNEE` of ``max_turn``.

    The reference frame matches the portrait's pose, so a three-quarter portrait driven by a
    mostly frontal speaker was turned towards frontal all clip long, and past it by up to 40°
    when the speaker turned away: the side the photo never showed, invented by a 2-D warp. A
    constant offset keeps every turn's timing and size (what :func:`limit_turn` would flatten).
    reference: (3, 3); clip: (N, 3, 3) the driver's head rotations → (3, 3).
    """
    if max_turn <= 0.0 or len(clip) == 0:
        return reference
    knee = TURN_KNEE * max_turn
    rotations = Rotation.from_matrix(clip)
    ref = Rotation.from_matrix(reference)
    # 98th percentile: a tracking glitch or two must not move the reference
    def reach(r: Rotation) -> float:
        return float(np.percentile(turn_angles(rotations * r.inv()), 98))

    if reach(ref) <= knee:
        return reference
    towards = rotations.mean() * ref.inv()  # the step from the reference to the mean
    best = ref
    for share in np.linspace(0.05, 1.0, 20):
        best = Rotation.from_rotvec(towards.as_rotvec() * share) * ref
        if reach(best) <= knee:
            break
    return best.as_matrix()


def _expression_ids() -> np.ndarray:
    return np.setdiff1d(np.arange(478), stable_ids())


def rest_gaps(canonical: np.ndarray) -> np.ndarray:
    """(3,) each eye's lid gap and the inner lips' gap (lower less upper, mean over facing points)
    of a (478, 3) canonical face, y down."""
    pairs = (*_LIDS, (_LIP_PAIRS[0], _LIP_PAIRS[2]))
    return np.array([float(np.mean(canonical[lo, 1] - canonical[up, 1])) for up, lo in pairs])


def reference_cost(source: np.ndarray, open_lids: np.ndarray | None = None) -> Callable[[np.ndarray], float]:
    """How far a driving frame's pose-free shape, head rotation and lips' opening are from the
    source's, and (given ``open_lids``, the driver's (2,) lid gaps with its eyes open) how much
    less open its eyes are than the source's (or than open, for a source with larger eyes):
    cost(landmarks (478, 3)) → float, lower is closer (see :func:`best_reference`)."""
    pose_s, canon_s = decompose(source)
    ids = _expression_ids()
    gaps_s = rest_gaps(canon_s)
    # the driver's eyes should be as open as the source's, or open, for a source with larger eyes
    want = None if open_lids is None else np.minimum(gaps_s[:2], open_lids)

    def cost(lm: np.ndarray) -> float:
        pose_d, canon_d = decompose(lm)
        shape = np.sqrt(((canon_d[ids] - canon_s[ids]) ** 2).sum(-1).mean())
        angle = Rotation.from_matrix(pose_d.rotation @ pose_s.rotation.T).magnitude()
        gaps = rest_gaps(canon_d)
        total = shape + 0.5 * angle + LIPS_WEIGHT * abs(gaps[2] - gaps_s[2])
        if want is not None:
            total += EYES_WEIGHT * float(np.clip((want - gaps[:2]) / open_lids, 0.0, 1.0).sum())
        return float(total)

    return cost


def best_reference(source: np.ndarray, driving: list[np.ndarray | None]) -> int:
    """Index of the driving frame closest to the source (see :func:`reference_cost`). The driver's
    open eyes are each lid gap's :data:`OPEN_PERCENTILE` over the clip (a driver that looks down
    half the time has its median between shut and open).

    Args: source: (478, 3) landmarks; driving: per-frame (478, 3) landmarks or None (no face).
    """
    faces = [lm for lm in driving if lm is not None]
    if not faces:
        raise ValueError("no driving frame has a face")
    lids = np.array([rest_gaps(decompose(lm)[1])[:2] for lm in faces])
    open_lids = np.percentile(lids, OPEN_PERCENTILE, axis=0)
    cost = reference_cost(source, open_lids if np.all(open_lids > 0) else None)
    costs = [np.inf if lm is None else cost(lm) for lm in driving]
    return int(np.argmin(costs))


def at_rest(source: np.ndarray, driving: np.ndarray) -> bool:
    """Whether a driving face (478, 3) may stand for a source face's rest, as far as its eyes and
    lips tell: each eye at least :data:`REST_EYES` of the source's lid gap (of an ordinary open
    eye's, for a source with wider eyes) and the lips no more than :data:`REST_LIPS` further apart
    than the source's (canonical units). A reference caught mid-blink or mid-word inverts every
    blink, or holds the mouth shut, for as long as it stays the reference."""
    gaps_s, gaps_d = rest_gaps(decompose(source)[1]), rest_gaps(decompose(driving)[1])
    eyes = np.minimum(gaps_s[:2], rest_gaps(canonical_template())[:2])
    return bool(np.all(gaps_d[:2] >= REST_EYES * eyes) and gaps_d[2] <= gaps_s[2] + REST_LIPS)


class MotionTransfer:
    """Streams driving landmarks into target landmarks for one source face.

    Args:
        source: (478, 3) source landmarks in source-crop pixels.
        config: transfer mode, scale adaptation, expression scale and smoothing.
        fps: frame rate of the driving signal (for smoothing).
    """

    def __init__(self, source: np.ndarray, config: MotionConfig, fps: float = 25.0) -> None:
        self.config = config
        self.source = source.astype(np.float64)
        self.source_pose, self.source_canonical = decompose(self.source)
        self._ref: tuple[Pose, np.ndarray] | None = None
        self._abs: tuple[float, np.ndarray, np.ndarray] | None = None
        self._pose_filter = OneEuroFilter(config.pose_smoothing, fps)
        self._expr_filter = OneEuroFilter(config.expression_smoothing, fps)

    @property
    def has_reference(self) -> bool:
        return self._ref is not None

    def set_reference(self, driving: np.ndarray, clip: Sequence[np.ndarray | None] | None = None) -> None:
        """Use these driving landmarks (any pixel frame) as the neutral reference.

        clip: the whole driving clip's landmarks (None where no face) when known up front; the
        reference's head rotation then moves just enough that no turn of the clip exceeds
        :data:`TURN_KNEE` of ``max_turn`` (see :func:`turn_reference`).
        """
        pose, canon = decompose(driving)
        if clip is not None and self.config.mode == "relative" and self.config.max_turn > 0.0:
            faces = [lm for lm in clip if lm is not None]
            step = max(1, len(faces) // CLIP_SAMPLES)  # a head turns slowly: a sample of the clip sees every turn
            rotations = np.array([decompose(lm)[0].rotation for lm in faces[::step]]).reshape(-1, 3, 3)
            pose = Pose(turn_reference(pose.rotation, rotations, self.config.max_turn), pose.scale, pose.translation)
        self._ref = (pose, canon)
        ids = stable_ids()
        self._abs = fit_similarity(driving[ids, :2].astype(np.float64), self.source[ids, :2])
        self._pose_filter.reset()
        self._expr_filter.reset()

    def deltas(self, driving: np.ndarray) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
        """Smoothed driver change since the reference.

        Returns: rotation (3, 3), scale ratio, translation (3,) in reference-face units,
        expression offsets (478, 3) in canonical units.
        """
        if self._ref is None:
            self.set_reference(driving)
        ref_pose, ref_canon = self._ref
        pose, canon = decompose(driving)
        rot = pose.rotation @ ref_pose.rotation.T
        pose_vec = np.concatenate([
            Rotation.from_matrix(rot).as_rotvec(),
            [np.log(pose.scale / ref_pose.scale)],
            (pose.translation - ref_pose.translation) / ref_pose.scale,
        ])
        pose_vec = self._pose_filter(pose_vec)
        expr = self._expr_filter(canon - ref_canon)
        return Rotation.from_rotvec(pose_vec[:3]).as_matrix(), float(np.exp(pose_vec[3])), pose_vec[4:], expr

    def compose(self, rotation: np.ndarray, scale_ratio: float, translation: np.ndarray,
                expression: np.ndarray) -> np.ndarray:
        """Apply a head-pose change and expression offsets to the source face → (478, 3) crop pixels."""
        sp = self.source_pose
        offsets = self.config.expression_scale * expression
        canon = uncross(self.source_canonical + offsets)
        if self._ref is not None:
            close_lids(canon, self.source_canonical, self._ref[1], offsets)
        canon = keep_lip_thickness(lid_depths(canon, self.source_canonical), self.source_canonical)
        keep_lip_rings(canon, self.source_canonical)
        # adapt_scale: the driver's moves scale with the source's face size; else raw driver pixels
        unit = sp.scale if self.config.adapt_scale or self._ref is None else self._ref[0].scale
        move = translation * unit
        move[2] = 0.0  # depth does not move pixels
        rotation = limit_turn(rotation, self.config.max_turn)
        pose = Pose(rotation @ sp.rotation, sp.scale * scale_ratio, sp.translation + move)
        return pose.apply(canon)

    def __call__(self, driving: np.ndarray) -> np.ndarray:
        """(478, 3) driving landmarks → (478, 3) target landmarks in source-crop pixels."""
        if self.config.mode == "absolute":
            if self._abs is None:
                self.set_reference(driving)
            s, r, t = self._abs
            pts = driving.astype(np.float64)
            out = np.empty_like(pts)
            out[:, :2] = s * pts[:, :2] @ r.T + t
            out[:, 2] = s * pts[:, 2]
            return self._expr_filter(out)
        return self.compose(*self.deltas(driving))
