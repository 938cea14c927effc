"""The video-avatar engine: renders each target from the person's own nearest real frame.

For each target (driving landmarks, audio mouth targets, webcam) it picks the pack keyframe
nearest in pose, mouth shape and eye state (:func:`avatar.pack.features.distances`), and warps it
the small remaining way with the warp engine (one :class:`WarpState` per keyframe, prepared
when first used). Switching keyframes cross-fades over a few frames (with hysteresis, so the
choice does not flutter), and the mouth is re-rendered from the keyframe whose real mouth
matches best ("Video Rewrite"), colour-matched to the face around it and blended in with a
feathered mask. Outputs are crops in the source crop's frame, so paste-back puts them into the
clip-resolution anchor frame and only the head region changes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

import cv2
import numpy as np

from ..config import RenderConfig
from ..errors import ConfigError
from ..face import topology
from ..face.blend import FootageCrop
from ..face.crop import invert_affine, transform_points
from .triangles import dense_map, inverse_homogeneous, rasterise
from ..pack.features import distances, face_features
from ..pack.store import Pack, load_pack
from ..types import DriveTarget, FaceCrop
from .base import Engine
from .mouth import FULL_ROW
from .warp import WarpEngine, WarpState

if TYPE_CHECKING:
    from .talking import TalkState

log = logging.getLogger(__name__)

FADE_FRAMES = 4        # a keyframe switch cross-fades over this many frames
SWITCH_MARGIN = 0.7    # switch only when the new keyframe is this much closer than the current one
MOUTH_MARGIN = 1.25    # re-render the mouth when the base's mouth is this much farther than the best mouth's
MOUTH_POSE_WEIGHT = 0.25
BASE_MOUTH_WEIGHT = 0.1  # the base is chosen on pose and eyes (the mouth is re-rendered): fewer switches, less flicker


@dataclass(eq=False)
class _Choice:
    """One keyframe choice over time: the current keyframe and the one fading out."""

    current: int = -1
    previous: int = -1
    fade: int = 0   # frames of cross-fade left

    def update(self, d: np.ndarray, margin: float) -> None:
        best = int(np.argmin(d))
        if self.current < 0:
            self.current = best
        elif best != self.current and d[best] < margin * d[self.current]:
            self.previous, self.current, self.fade = self.current, best, FADE_FRAMES
        elif self.fade > 0:
            self.fade -= 1

    def weight(self) -> float:
        """Weight of the current keyframe (1 once the fade is over)."""
        return 1.0 if self.fade <= 0 else 1.0 - self.fade / (FADE_FRAMES + 1)


@dataclass(eq=False)
class KeyframeState:
    """Per-source state: the pack mapped into the source crop, lazily warped keyframes, choices."""

    pack: Pack
    size: int
    to_crop: np.ndarray            # (K, 2, 3) keyframe crop px → source crop px
    landmarks: np.ndarray          # (K, 478, 3) keyframe landmarks in source crop px
    features: np.ndarray           # (K, D)
    anchor: np.ndarray             # (S, S, 3) uint8 source crop: what stays outside the head
    anchor_landmarks: np.ndarray   # (478, 3) its landmarks
    frame_to_crop: np.ndarray      # (2, 3) clip pixels → source crop px
    frame_scale: float = 1.0       # source frame px per clip px (below 1 where the output is capped smaller)
    images: dict[int, np.ndarray] = field(default_factory=dict)
    warps: dict[int, WarpState] = field(default_factory=dict)
    base: _Choice = field(default_factory=_Choice)
    mouth: _Choice = field(default_factory=_Choice)

    def restart(self) -> None:
        """Forget the keyframe choices: the next frame starts a new take (warped keyframes stay cached)."""
        self.base, self.mouth = _Choice(), _Choice()


class KeyframeEngine(Engine):
    """Nearest real keyframe, warped the small remaining way; the mouth from the best real mouth.

    Args:
        config: render settings; ``config.pack`` is the pack folder (set for video avatars by
            :meth:`avatar.pipeline.Animator.prepare`).
        pack: an already loaded pack (tests, benchmarks) instead of ``config.pack``.
    """

    name = "keyframes"
    needs_driving_image = False
    wants_driving_image = False

    def __init__(self, config: RenderConfig | None = None, pack: Pack | None = None) -> None:
        self.config = config or RenderConfig(engine="keyframes")
        if pack is None and not self.config.pack:
            raise ConfigError("the keyframes engine renders a video avatar: pass its avatar id (av_…) as the source, "
                              "or RenderConfig(pack=FOLDER)")
        self._pack = pack
        # keyframes move only the small remaining way and are composited over the anchor's head box:
        # no background plate or matte per keyframe (that would cost seconds each in prepare)
        # the drawn teeth bridge to the footage's own open mouths: the row nearly to the corners, as
        # theirs (the photo engine's narrower row made a keyframe switch jump)
        self._warp = WarpEngine(RenderConfig(shading=False, detail=False, layers=False,
                                             mouth_interior=self.config.mouth_interior),
                                follow_silhouette=False, teeth_fade=FULL_ROW)

    @property
    def pack(self) -> Pack:
        if self._pack is None:
            self._pack = load_pack(self.config.pack)
        return self._pack

    def prepare(self, source: FaceCrop) -> KeyframeState:
        pack = self.pack
        src = pack.manifest["source"]
        # the source frame may have been downscaled (output.max_size): keyframe matrices are in clip pixels
        r = source.frame_size[1] / float(src["width"])
        frame_to_crop = source.crop_from_frame @ np.diag([r, r, 1.0])
        to_crop = np.stack([frame_to_crop @ np.vstack([invert_affine(m), [0, 0, 1]]) for m in pack.crop_from_frame])
        lms = np.stack([transform_points(a, lm) for a, lm in zip(to_crop, pack.landmarks)])
        return KeyframeState(pack, source.size, to_crop, lms, pack.features, np.ascontiguousarray(source.image),
                             np.asarray(source.landmarks, np.float32), frame_to_crop, r)

    def for_use(self, state: KeyframeState, use: str) -> "KeyframeState | TalkState":
        """Speech ("audio") plays the person's own footage as the base with the mouth re-rendered
        (:mod:`avatar.render.talking`); without footage in the pack, the keyframes as for video."""
        if use != "audio":
            return state
        from .talk_base import load_base
        from .talking import make_talk_state

        # the footage's own pixels are kept for paste-back where the output is the clip's own size
        base = load_base(state.pack, state.frame_to_crop, state.size, native=abs(state.frame_scale - 1.0) < 1e-6)
        if base is None:
            log.info("the avatar pack keeps no usable footage: talking renders from its keyframes")
            return state
        return make_talk_state(state, base, state.pack.manifest)

    def speech_lead(self, state: "KeyframeState | TalkState", lead_s: float, fps: float) -> float:
        """A talking video avatar's own timing (:func:`avatar.render.talking.speech_lead`)."""
        from .talking import speech_lead

        return speech_lead(state, lead_s, fps)

    def crop_scale(self, scale: float, use: str) -> float:
        """Talking plays the footage inside the source crop and pastes it into the still anchor
        frame: a crop at the usual 2 face boxes put the paste's feather over the top of the hair,
        which showed a ghost of the anchor's hair wherever the footage's head sat lower (talk_01).
        A wider crop puts the feather in the background."""
        from .talking import TALK_CROP_SCALE

        if use == "audio" and self.pack is not None and self.pack.footage() is not None:
            return max(scale, TALK_CROP_SCALE)
        return scale

    def speech_model(self, state: "KeyframeState | TalkState"):
        """A talking video avatar's own mouth model, where its pack has one."""
        return getattr(state, "personal", None)

    @staticmethod
    def _image(state: KeyframeState, k: int) -> np.ndarray:
        """Keyframe ``k`` resampled into the source crop's frame (cached)."""
        img = state.images.get(k)
        if img is None:
            img = state.images[k] = cv2.warpAffine(
                state.pack.keyframe_image(k), state.to_crop[k], (state.size, state.size),
                flags=cv2.INTER_AREA if state.to_crop[k][0, 0] < 1 else cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return img

    def _warp_state(self, state: KeyframeState, k: int) -> WarpState:
        ws = state.warps.get(k)
        if ws is None:
            crop = FaceCrop(self._image(state, k), state.landmarks[k], np.eye(2, 3), (state.size, state.size))
            ws = state.warps[k] = self._warp.prepare(crop)
        return ws

    def _render_key(self, state: KeyframeState, k: int, target: np.ndarray) -> np.ndarray:
        return self._warp.render_one(self._warp_state(state, k), target)

    def _blend(self, state: KeyframeState, choice: _Choice, target: np.ndarray) -> np.ndarray:
        out = self._render_key(state, choice.current, target)
        w = choice.weight()
        if w < 1.0:
            out = cv2.addWeighted(out, w, self._render_key(state, choice.previous, target), 1.0 - w, 0.0)
        return out

    def render_one(self, state: KeyframeState, landmarks: np.ndarray) -> np.ndarray:
        """(478, 3) target landmarks in source-crop pixels → (S, S, 3) uint8 crop."""
        target = np.asarray(landmarks, np.float32)
        if not isinstance(state, KeyframeState):
            from .talking import render_talk

            return render_talk(self, state, target)
        f = face_features(target)
        d_base = distances(state.features, f, mouth_w=BASE_MOUTH_WEIGHT, eye_w=0.7)
        state.base.update(d_base, SWITCH_MARGIN)
        out = self._blend(state, state.base, target)
        d_mouth = distances(state.features, f, pose_w=MOUTH_POSE_WEIGHT, eye_w=0.0)
        state.mouth.update(d_mouth, SWITCH_MARGIN)
        m = state.mouth
        if m.current != state.base.current and d_mouth[state.base.current] > MOUTH_MARGIN * d_mouth[m.current]:
            self._composite_mouth(state, out, target)
        return _over_anchor(out, state.anchor, target, state.anchor_landmarks)

    def _composite_mouth(self, state: KeyframeState, base: np.ndarray, target: np.ndarray) -> None:
        """The mouth choice's real mouth, warped onto the target in the mouth box only, colour-matched
        to ``base`` where the mask fades out and blended into it in place (cross-fading on a switch)."""
        mask, roi = mouth_mask(target, base.shape[0])
        x0, y0, x1, y1 = roi
        if x1 <= x0 or y1 <= y0:
            return
        patch = mouth_patch(state, state.mouth, target, roi)
        b = base[y0:y1, x0:x1].astype(np.float32)
        ring = (mask > 0.05) & (mask < 0.6)
        shift = (b[ring] - patch[ring]).mean(0) if ring.any() else np.zeros(3, np.float32)
        base[y0:y1, x0:x1] = np.clip(b + mask[..., None] * (patch + shift - b) + 0.5, 0, 255).astype(np.uint8)

    def render(self, state: KeyframeState, targets: Sequence[DriveTarget]) -> "np.ndarray | list[np.ndarray]":
        crops = [self.render_one(state, t.landmarks) for t in targets]
        # a talking avatar's crops carry the footage's own pixels for paste-back
        # (:class:`~avatar.face.blend.FootageCrop`), which stacking would drop
        return crops if any(isinstance(c, FootageCrop) for c in crops) else np.stack(crops)


def mouth_mask(landmarks: np.ndarray, size: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Feathered mask of the lips plus 40 % of the mouth width around them (chin and cheeks near
    the mouth move with it), and its (x0, y0, x1, y1) box in the crop."""
    lips = landmarks[topology.mesh()["lips"], :2]
    centre = lips.mean(0)
    width = float(np.ptp(lips[:, 0])) or 1.0
    margin = 0.4 * width
    hull = cv2.convexHull(lips.astype(np.float32))[:, 0]
    grown = centre + (hull - centre) * (1.0 + margin / (0.5 * width))
    x0, y0 = np.maximum(np.floor(grown.min(0)).astype(int) - 2, 0)
    x1, y1 = np.minimum(np.ceil(grown.max(0)).astype(int) + 3, size)
    mask = np.zeros((max(y1 - y0, 1), max(x1 - x0, 1)), np.float32)
    cv2.fillPoly(mask, [np.round((grown - [x0, y0]) * 4).astype(np.int32)], 1.0, cv2.LINE_AA, shift=2)
    mask = cv2.GaussianBlur(mask, (0, 0), max(0.12 * width, 1.0))
    return mask, (int(x0), int(y0), int(x1), int(y1))



def cross_fade(previous: np.ndarray, current: np.ndarray, weight: float) -> np.ndarray:
    """(h, w, 3) float32 between two patches of the same mouth box (``weight`` of ``current``),
    morphed rather than dissolved: warped onto the same target landmarks, two real mouths still
    hold their teeth a few px apart, and a plain mix showed both rows at once (a double mouth)
    through the whole fade. The optical flow from ``current`` to ``previous`` moves each part
    of the way, so one set of teeth slides from where the old mouth had it to the new one's."""
    if weight >= 1.0:
        return current
    grey = [cv2.cvtColor(np.clip(p, 0, 255).astype(np.uint8), cv2.COLOR_RGB2GRAY) for p in (previous, current)]
    h, w = grey[0].shape
    if min(h, w) < 16:
        return weight * current + (1 - weight) * previous
    from ..motion.flow import dis_solver

    flow = dis_solver().calc(grey[1], grey[0], None)  # current(p) ≈ previous(p + flow(p))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    at = lambda img, k: cv2.remap(img, xx + k * flow[..., 0], yy + k * flow[..., 1], cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REPLICATE)
    return weight * at(current, weight - 1.0) + (1 - weight) * at(previous, weight)


def mouth_patch(state: KeyframeState, choice: _Choice, target: np.ndarray, roi: tuple[int, int, int, int]) -> np.ndarray:
    """(h, w, 3) float32: ``choice``'s real mouth warped onto ``target`` over ``roi``, morphed
    from the previous one during a switch's cross-fade."""
    patch = warp_region(*mouth_source(state, choice.current), target, roi)
    w = choice.weight()
    if w < 1.0:
        patch = cross_fade(warp_region(*mouth_source(state, choice.previous), target, roi), patch, w)
    return patch


def mouth_source(state: KeyframeState, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Keyframe ``k``'s own stored crop and its landmarks there: a mouth is warped from these in
    one step (through the crop resampled into the source crop's frame it was resampled twice, and
    softer for it)."""
    return state.pack.keyframe_image(k), state.pack.landmarks[k]


def warp_region(image: np.ndarray, source: np.ndarray, target: np.ndarray, roi: tuple[int, int, int, int]) -> np.ndarray:
    """(h, w, 3) float32: ``image`` (landmarks ``source``) piecewise-affinely warped so that its
    landmarks land on ``target``, over the box ``roi`` only (cheap: a mouth box is ~1/20 of a crop).
    The mouth hole takes the affine fit of the inner-lip loops, so the real teeth come along."""
    x0, y0, x1, y1 = roi
    mesh = topology.mesh()
    tris = mesh["triangles"]
    t = target[:, :2].astype(np.float64) - (x0, y0)
    tp = t[tris]
    lo, hi = tp.min(1), tp.max(1)
    keep = (hi[:, 0] >= 0) & (lo[:, 0] < x1 - x0) & (hi[:, 1] >= 0) & (lo[:, 1] < y1 - y0)
    tris = tris[keep]
    inv, det = inverse_homogeneous(t[tris])
    ok = np.abs(det) > 1e-6
    tris, inv = tris[ok], inv[ok]
    index = rasterise(t[tris], (y1 - y0, x1 - x0))
    mx, my = dense_map(index, inv @ source[:, :2].astype(np.float64)[tris])
    hole = index == 0
    if hole.any():
        loop = mesh["mouth_loop"]
        mouth = np.zeros(hole.shape, np.uint8)
        cv2.fillPoly(mouth, [np.round(t[loop] * 4).astype(np.int32)], 1, cv2.LINE_8, shift=2)
        # the mouth hole by the inner-lip loop's fit; outside the mesh (past the jaw line) by the fit
        # of the face outline's points in the box, which carries on the jaw's own motion: the lip
        # loop's would fetch lip or teeth colours there, a light seam along the jaw where the mask
        # fades out
        oval = np.asarray(mesh["oval"])
        inside = (t[oval] >= 0).all(1) & (t[oval] < (x1 - x0, y1 - y0)).all(1)
        outer = oval[inside] if inside.sum() >= 3 else np.unique(tris)
        for sel, ids in ((hole & (mouth > 0), loop), (hole & (mouth == 0), outer)):
            if not sel.any():
                continue
            a = np.concatenate([t[ids], np.ones((len(ids), 1))], 1)
            aff, *_ = np.linalg.lstsq(a, source[ids, :2].astype(np.float64), rcond=None)
            vv, uu = np.nonzero(sel)
            mx[sel] = uu * aff[0, 0] + vv * aff[1, 0] + aff[2, 0]
            my[sel] = uu * aff[0, 1] + vv * aff[1, 1] + aff[2, 1]
    return cv2.remap(image, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)


def _head_ellipse(small: np.ndarray, landmarks: np.ndarray, q: int) -> float:
    """Draw (filled, value 1) on ``small`` (1/q scale) the ellipse from above the hair to just below
    the chin of ``landmarks``; returns the face height in pixels."""
    oval = landmarks[topology.mesh()["oval"], :2]
    lo, hi = oval.min(0), oval.max(0)
    height = float(hi[1] - lo[1])
    # down to just below the chin: collar and shoulders stay the anchor's, which a keyframe filmed at
    # another moment would otherwise double
    top, bottom = lo[1] - 0.45 * height, hi[1] + 0.08 * height
    c = np.array([(lo[0] + hi[0]) / 2, (top + bottom) / 2]) / q
    axes = np.array([0.75 * (hi[0] - lo[0]), (bottom - top) / 2]) / q
    cv2.ellipse(small, (int(round(c[0])), int(round(c[1]))), (max(int(axes[0]), 1), max(int(axes[1]), 1)), 0, 0, 360,
                1.0, -1)
    return height


def _over_anchor(out: np.ndarray, anchor: np.ndarray, target: np.ndarray, anchor_landmarks: np.ndarray) -> np.ndarray:
    """``out`` inside feathered ellipses around the target head and the anchor's own head (so the
    anchor's head never shows beside a moved one), the untouched source crop elsewhere: only the
    head region is re-rendered."""
    size = out.shape[0]
    q = 4  # drawn and blurred at a quarter of the resolution: the mask is smooth anyway
    small = np.zeros((size // q, size // q), np.float32)
    height = _head_ellipse(small, target, q)
    _head_ellipse(small, anchor_landmarks, q)
    small = cv2.GaussianBlur(small, (0, 0), max(0.06 * height / q, 1.0))
    mask = cv2.resize(small, (size, size), interpolation=cv2.INTER_LINEAR)
    ys, xs = np.nonzero(small > 1e-3)
    if not len(ys):
        return anchor.copy()
    # blend only where the mask is non-zero (about half the crop)
    y0, y1 = max(ys.min() * q - q, 0), min(ys.max() * q + 2 * q, size)
    x0, x1 = max(xs.min() * q - q, 0), min(xs.max() * q + 2 * q, size)
    result = anchor.copy()
    m = np.ascontiguousarray(mask[y0:y1, x0:x1])
    result[y0:y1, x0:x1] = cv2.blendLinear(np.ascontiguousarray(out[y0:y1, x0:x1]), np.ascontiguousarray(anchor[y0:y1, x0:x1]),
                                           m, 1.0 - m)
    return result
