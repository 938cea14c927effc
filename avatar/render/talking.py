"""A talking video avatar: the person's own footage as the base, the mouth re-rendered from speech.

Each output frame takes the next frame of the base's motion graph (:mod:`avatar.render.talk_base`:
calm footage while silent, livelier while speaking) and
replaces its lower face (lips, jaw and chin) with the pack's best-matching real mouth:

* the speech target's mouth shape (its offsets from silence, added to this person's own closed
  mouth, scaled vertically by their calibrated ``mouth_gain`` and horizontally by their
  ``width_gain``), shown ``lag_s`` late when their mouth moves later than the generic one, is put
  onto the base frame's face, in the pose-free canonical frame;
* the keyframe whose real mouth is nearest that shape (cross-faded on a switch) is warped onto
  it, moved halfway to that real mouth's own shape (:func:`with_own_mouth`);
* it is colour-matched to the base frame around the mask's edge and blended in with a feathered
  mask that covers both the base's own and the new lower face, so the jaw line moves with it.

Packs with no open mouth (a silent clip) cannot show speech from real mouths: the photo engine's
mouth (the warp with its painted interior) is used instead, with a warning.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass, field, replace
from functools import lru_cache

import cv2
import numpy as np

from ..face import topology
from ..face.blend import FootageCrop
from ..motion.audio.state import MAX_LEAD_S, MouthState
from ..motion.decompose import canonical_template, decompose
from ..motion.rig import MouthRig
from ..pack.calibrate import LAG_CLIP_S, WIDTH_GAIN_RANGE
from ..pack.features import distances, face_features, opening
from .keyframes import mouth_patch
from .talk_base import BaseFootage, MotionGraph, loop_speed

log = logging.getLogger(__name__)

MIN_OPEN_SPREAD = 0.02   # canonical units: a pack whose mouths span less than this never opened
ACTIVE_OPENING = 0.06    # target opening (above sealed lips) that counts as fully speaking
ACTIVITY_SMOOTH = 0.15   # per-frame smoothing of the speech activity that paces the base
MOUTH_SWITCH_MARGIN = 0.7  # switch mouth keyframes only when the new one is this much closer
DEFAULT_FPS = 25.0       # output rate assumed until the speech source says (SpeechConfig's default)
MOUTH_OWN_SHAPE = 0.5    # share of the re-rendered lower face's shape that is the chosen real mouth's own
TALK_CROP_SCALE = 2.8    # source crop side over the face box while talking (the paste's feather clears the hair)


@lru_cache(maxsize=1)
def lower_face_ids() -> np.ndarray:
    """Landmarks below the nose: lips, jaw and chin (what moves when speaking)."""
    t = canonical_template()
    lips = topology.mesh()["lips"]
    top = t[lips, 1].min()
    nose = t[topology.NOSE_TIP, 1]
    return np.flatnonzero(t[:, 1] > top - 0.35 * (top - nose)).astype(np.int64)


@lru_cache(maxsize=1)
def upper_face_ids() -> np.ndarray:
    """The landmarks not in :func:`lower_face_ids` (head outline, eyes, brows, nose)."""
    return np.setdiff1d(np.arange(len(canonical_template())), lower_face_ids())


@lru_cache(maxsize=1)
def _chin_ids() -> np.ndarray:
    t = canonical_template()
    oval = np.asarray(topology.mesh()["oval"])
    corner_y = t[list(topology.MOUTH_CORNERS), 1].mean()
    return oval[t[oval, 1] > corner_y - 0.05]


@dataclass(eq=False)
class TargetDelay:
    """A short FIFO that shows each speech target ``frames`` (fractional) output frames late,
    interpolating between the two targets around that time; the first target until there is history."""

    frames: float
    _past: deque = field(default_factory=deque, init=False)

    def push(self, target: np.ndarray) -> np.ndarray:
        """Take the newest target; the one to show now."""
        if self.frames <= 0:
            return target
        self._past.append(target)
        while len(self._past) > math.ceil(self.frames) + 1:
            self._past.popleft()
        k, w = divmod(self.frames, 1.0)
        newer = self._past[max(len(self._past) - 1 - int(k), 0)]
        older = self._past[max(len(self._past) - 2 - int(k), 0)]
        return newer if w < 1e-6 else ((1 - w) * newer + w * older).astype(np.float32)


@dataclass(eq=False)
class TalkState:
    """Per-source state of a talking video avatar (see the module docstring)."""

    keys: object                 # the KeyframeState of the same pack
    base: BaseFootage
    gain: float
    rest_canon: np.ndarray       # (478, 3) canonical: this person's own closed mouth (from the pack)
    driver_rest: np.ndarray      # (478, 3) canonical: what a speech target shows in silence (sealed lips)
    fallback: bool               # no open mouth in the pack: the photo engine's mouth
    lag_s: float = 0.0           # this person's mouth moves this much later than the generic one
    width_gain: float = 1.0      # and widens this much of the generic width change
    personal: object = None      # this person's own mouth model (PersonalMouth), where the pack has one
    loop: MotionGraph = field(init=False)
    delay: TargetDelay = field(init=False)
    activity: float = 0.0
    last_index: int = 0

    def __post_init__(self) -> None:
        # the base's own lower face is re-rendered: only the rest of the head decides what is a cut
        self.loop = MotionGraph.from_footage(self.base, points=upper_face_ids())
        self.delay = TargetDelay(max(self.lag_s, 0.0) * DEFAULT_FPS)

    def restart(self) -> None:
        """Start a new take, as a fresh state would: the base from its first frame, no speech
        history, fresh keyframe choices (the motion graph is rewound, not rebuilt)."""
        self.loop = replace(self.loop, position=0, direction=1, jumps=0)
        self.delay = TargetDelay(self.delay.frames)
        self.activity, self.last_index = 0.0, 0
        self.keys.restart()


def speech_lead(state: object, lead_s: float, fps: float) -> float:
    """The lip lead a speech source for ``state`` at ``fps`` should use, given the configured
    ``lead_s``; sets ``state``'s target delay for that rate. A talking avatar whose person's mouth
    lags is delayed here (a FIFO of targets); one whose mouth leads gets the lead added at the
    source, which alone can look ahead (up to the lead's limit). Other states: ``lead_s`` as is."""
    if not isinstance(state, TalkState):
        return lead_s
    state.delay = TargetDelay(max(state.lag_s, 0.0) * float(fps))
    return float(min(lead_s + max(-state.lag_s, 0.0), MAX_LEAD_S))


def _calibrated(talk: dict, key: str, default: float, limits: tuple[float, float]) -> float:
    try:
        v = float(talk[key])
    except (KeyError, TypeError, ValueError):
        return default
    return float(np.clip(v, *limits)) if math.isfinite(v) else default


def make_talk_state(keys, base: BaseFootage, manifest: dict) -> TalkState:
    """Talk state for a keyframe state ``keys`` and its base footage; notes what calibration gave."""
    talk = manifest.get("talk")
    lag, width = 0.0, 1.0
    if not talk:
        log.info("this avatar pack predates mouth calibration: the generic mouth amplitude is used")
        gain = 1.0
    elif "skipped" in talk:
        log.info("mouth calibration was skipped at clone time (%s): the generic mouth amplitude is used", talk["skipped"])
        gain = 1.0
    else:
        gain = float(talk["mouth_gain"])
        if "lag_s" not in talk or "width_gain" not in talk:
            log.info("this avatar pack predates timing and mouth-width calibration: generic timing and width")
        lag = _calibrated(talk, "lag_s", 0.0, (-LAG_CLIP_S, LAG_CLIP_S))
        width = _calibrated(talk, "width_gain", 1.0, WIDTH_GAIN_RANGE)
    spread = float(np.ptp(opening(keys.features))) if len(keys.features) else 0.0
    fallback = spread < MIN_OPEN_SPREAD
    if fallback:
        log.warning("the avatar pack has no open-mouth frames (a silent clip?): the mouth is painted by the photo "
                    "engine instead of taken from real frames; clone a clip of the person talking for real mouths")
    _, canon = decompose(np.asarray(keys.anchor_landmarks, np.float64))
    # the speech rig seals the lips in silence whatever the anchor shows: the gains scale the
    # target's offsets from that sealed rest, added to this person's own closed mouth, so silence
    # shows their real closed mouth at any gain (offsets from the anchor itself made an anchor
    # caught with parted lips turn the seal into an offset the gain overshoots)
    driver_rest = MouthRig(canon).landmarks(MouthState(closed=1.0))
    return TalkState(keys, base, gain, closed_mouth(keys, canon), driver_rest, fallback, lag, width,
                     personal_model(keys.pack, talk or {}))


def personal_model(pack, talk: dict):
    """The pack's own mouth model (:class:`~avatar.motion.audio.personal.PersonalMouth`) where
    calibration chose it, else None (with a note when it is there but unreadable)."""
    from ..motion.audio.personal import PersonalMouth
    from ..pack.calibrate import MODEL_FILE

    if not (talk.get("personal") or {}).get("used"):
        return None
    try:
        with np.load(pack.path / MODEL_FILE) as z:
            return PersonalMouth.from_arrays(z)
    except (OSError, ValueError) as exc:
        log.warning("this avatar's own mouth model cannot be read (%s): the generic mouth timing is used", exc)
        return None


def closed_mouth(keys, anchor_canon: np.ndarray) -> np.ndarray:
    """(478, 3) canonical: ``anchor_canon`` with the lower face of the pack's most closed mouths
    (the median of the keyframes at or below the 10th percentile of opening)."""
    o = opening(keys.features)
    if not len(o):
        return anchor_canon
    pick = np.flatnonzero(o <= np.percentile(o, 10))
    lower = np.median(np.stack([decompose(np.asarray(keys.landmarks[k], np.float64))[1] for k in pick]), 0)
    out = anchor_canon.copy()
    ids = lower_face_ids()
    out[ids] = lower[ids]
    return out


def mouth_target(state: TalkState, target: np.ndarray, base_landmarks: np.ndarray) -> np.ndarray:
    """(478, 3): the base frame's face with this person's closed mouth plus the speech target's
    lower-face offsets from its silent (sealed) rest, the horizontal ones scaled by the width gain,
    the others by the mouth gain."""
    ids = lower_face_ids()
    _, canon_t = decompose(np.asarray(target, np.float64))
    pose_b, canon_b = decompose(np.asarray(base_landmarks, np.float64))
    new = canon_b.copy()
    scale = np.array([state.width_gain, state.gain, state.gain])
    new[ids] = state.rest_canon[ids] + scale * (canon_t[ids] - state.driver_rest[ids])
    return pose_b.apply(new).astype(np.float32)


def with_own_mouth(keys, k: int, target: np.ndarray) -> np.ndarray:
    """(478, 3): ``target`` with its lower face moved :data:`MOUTH_OWN_SHAPE` of the way to the
    shape of keyframe ``k``'s real mouth (its own landmarks in the pack), in the pose-free
    canonical frame.

    A real mouth warped wholly onto the speech rig's shape lost what made it read open: the rig's
    inner-lip outline is not this person's, and the warp squeezed their dark gap and teeth into it
    (on talk_01 the tracked output followed its targets at r 0.74, open targets often reading shut).
    Halfway keeps the speech's timing and amplitude and most of the real mouth's look. (Mixing in
    the previous mouth's shape during a switch's cross-fade followed the targets less well.)"""
    ids = lower_face_ids()
    pose, canon = decompose(np.asarray(target, np.float64))
    _, own = decompose(np.asarray(keys.pack.landmarks[k], np.float64))
    canon[ids] += MOUTH_OWN_SHAPE * (own[ids] - canon[ids])
    return pose.apply(canon).astype(np.float32)


def lower_face_mask(target: np.ndarray, base: np.ndarray, size: int | tuple[int, int]
                    ) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Feathered mask over the lips, jaw and chin of ``target`` and of ``base`` (its own mouth and
    chin never show through: a base jaw hanging lower than the new one left its chin's lower edge
    as a light second jaw line), and its (x0, y0, x1, y1) box. The feather ends at the lower of
    the two jaw lines: below it the base stays, since a keyframe's pixels there are its own neck
    and collar, filmed at another moment (a white collar crescent under the chin otherwise)."""
    lips = topology.mesh()["lips"]
    width = float(np.ptp(target[lips, 0])) or 1.0
    hulls = []
    for lm, ids in ((target, np.concatenate([lips, _chin_ids()])), (base, np.concatenate([lips, _chin_ids()]))):
        pts = lm[ids, :2].astype(np.float32)
        c = pts.mean(0)
        grow = 1.0 - 0.06 * width / max(float(np.ptp(pts[:, 0])), 1.0)  # feather inside the jaw line
        hulls.append(c + (cv2.convexHull(pts)[:, 0] - c) * grow)
    allp = np.concatenate(hulls)
    x0, y0 = np.maximum(np.floor(allp.min(0)).astype(int) - 4, 0)
    x1, y1 = np.minimum(np.ceil(allp.max(0)).astype(int) + 5, (size, size) if isinstance(size, int) else size)
    mask = np.zeros((max(y1 - y0, 1), max(x1 - x0, 1)), np.float32)
    for h in hulls:
        cv2.fillPoly(mask, [np.round((h - [x0, y0]) * 4).astype(np.int32)], 1.0, cv2.LINE_AA, shift=2)
    mask = cv2.GaussianBlur(mask, (0, 0), max(0.04 * width, 1.0))
    return mask, (int(x0), int(y0), int(x1), int(y1))


def _blend_mouth(image: np.ndarray, mask: np.ndarray, roi: tuple[int, int, int, int], patch: np.ndarray) -> None:
    """Blend ``patch`` (the new lower face over ``roi``) into ``image`` in place through ``mask``,
    colour-matched on the mask's edge over the cheeks only (below the jaw the edge meets neck and
    collar, which would tint the skin); the median ignores teeth and stray hair."""
    x0, y0, x1, y1 = roi
    base = image[y0:y1, x0:x1].astype(np.float32)
    ring = (mask > 0.05) & (mask < 0.5)
    ring[int(0.6 * ring.shape[0]):] = False
    shift = np.median(base[ring] - patch[ring], 0) if ring.any() else np.zeros(3, np.float32)
    image[y0:y1, x0:x1] = np.clip(base + mask[..., None] * (patch + shift - base) + 0.5, 0, 255).astype(np.uint8)


def render_talk(engine, state: TalkState, target: np.ndarray) -> np.ndarray:
    """One output crop: the next base frame with its lower face re-rendered to ``target``'s mouth.
    Where the base keeps the footage's own pixels, the mouth is rendered at their resolution too
    and the crop carries them (:class:`~avatar.face.blend.FootageCrop`)."""
    from ..face.crop import transform_points

    keys = state.keys
    target = state.delay.push(target)
    f_t = face_features(target)
    act = np.clip(f_t[3] / ACTIVE_OPENING, 0.0, 1.0)  # the target's opening above its sealed rest
    state.activity += ACTIVITY_SMOOTH * (act - state.activity)
    b = state.last_index = state.loop.step(loop_speed(state.activity), state.activity)
    out = state.base.frame(b)
    native = state.base.native_frame(b)
    changed = None
    base_lm = state.base.landmarks[b]
    new_lm = mouth_target(state, target, base_lm)
    m = keys.mouth
    m.update(distances(keys.features, face_features(new_lm), pose_w=0.25, eye_w=0.0), MOUTH_SWITCH_MARGIN)
    if not state.fallback:
        new_lm = with_own_mouth(keys, m.current, new_lm)
    mask, roi = lower_face_mask(new_lm, base_lm, out.shape[0])
    x0, y0, x1, y1 = roi
    if x1 > x0 and y1 > y0:
        if state.fallback:
            _blend_mouth(out, mask, roi, engine._render_key(keys, m.current, new_lm)[y0:y1, x0:x1].astype(np.float32))
            changed = (mask, roi)
        elif native is None:
            _blend_mouth(out, mask, roi, mouth_patch(keys, m, new_lm, roi))
        else:
            # the mouth rendered at the footage's own resolution (from the keyframe's stored crop in
            # one warp), then resampled into the crop for what reads the crop itself (tracking,
            # crop-only output); the paste shows the footage's pixels, this mouth included
            to_native = state.base.crop_to_native
            lm_n, base_n = transform_points(to_native, new_lm), transform_points(to_native, base_lm)
            mask_n, roi_n = lower_face_mask(lm_n, base_n, (native.shape[1], native.shape[0]))
            nx0, ny0, nx1, ny1 = roi_n
            if nx1 > nx0 and ny1 > ny0:
                _blend_mouth(native, mask_n, roi_n, mouth_patch(keys, m, lm_n, roi_n))
                to_crop = np.vstack([cv2.invertAffineTransform(to_native), [0, 0, 1]])
                to_crop[:2, 2] -= (x0, y0)
                flags = cv2.INTER_AREA if to_crop[0, 0] < 1 else cv2.INTER_LINEAR
                patch = cv2.warpAffine(native, to_crop[:2], (x1 - x0, y1 - y0), flags=flags,
                                       borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
                base = out[y0:y1, x0:x1].astype(np.float32)
                out[y0:y1, x0:x1] = np.clip(base + mask[..., None] * (patch - base) + 0.5, 0, 255).astype(np.uint8)
    # the whole crop is the footage (head, neck and collar of one moment: nothing doubled); paste-back
    # feathers it into the anchor frame at the crop's border, with the footage's own pixels where kept
    return out if native is None else FootageCrop.wrap(out, native, state.base.native_roi, changed)
