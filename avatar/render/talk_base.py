"""The base of a talking video avatar: the person's own footage, played without a visible cut.

The clip stored in the pack is decoded once (a capped window, resampled into the source crop's
frame, so memory is bounded) with landmarks for every frame (the track's, interpolated between
tracked frames), taken from where the mouth is calmest, trimmed to its longest stretch without a
camera cut. :class:`MotionGraph` plays it for any length of speech: forward through the footage,
jumping between frames that look alike (position and motion) to segments whose liveliness fits
the speech's energy, and turning back as :class:`BaseLoop` does where no jump exists. Consecutive
output frames are always neighbouring footage frames or a jump no larger than the footage's own
typical frame-to-frame change, so there is never a cut. It moves slower while the speaker is
silent (stiller) and at the footage's pace while speaking.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..face.blend import paste_roi
from ..face.crop import transform_points
from ..media.video import read_frames
from ..pack.store import Pack

log = logging.getLogger(__name__)

MAX_SECONDS = 10.0   # footage kept in memory as the base (a 512 px crop is 0.8 MB a frame)
NATIVE_BUDGET = 512 * 2**20  # bytes of the footage's own pixels kept beside the crops (I420): 10 s of a waist-up phone clip's head region
# Over the budget, a shorter base keeps them, down to this long: the motion graph plays any
# length from a few seconds of footage, and a crop-pasted head keeps half its detail (session 21)
MIN_NATIVE_SECONDS = 4.0
CUT_FACTOR = 5.0     # a frame change this many times the median one is a camera cut
CUT_SHARE = 0.3      # ... when it changes at least this share of the picture
CUT_LEVEL = 20.0     # ... by more than this many grey levels
THUMB = 64           # side of the thumbnails that cuts and look-alike frames are judged on
SILENT_SPEED = 0.5   # footage frames per output frame while silent (1 while speaking)
JUMP_FACTOR = 1.0    # a jump's landing may differ from the natural next frame by ≤ this × the median step
IMAGE_WEIGHT = 0.5   # the 64 px picture difference next to the landmark one (lighting, hair, hands)
MIN_JUMP_S = 1.0     # a jump to a frame nearer than this barely changes what plays: not worth one
RUNWAY_S = 0.5       # footage a jump lands before, so the next dead end is not at once
SEGMENT_S = 1.0      # the motion level of a landing: mean motion over this much footage after it
JUMP_CHANCE = 0.08   # chance, at each opportunity, of a jump that fits as well as playing on (variety)
TRANSITIONS_KEPT = 4096  # the latest jumps and turns remembered (see MotionGraph.transitions)


@dataclass(eq=False)
class BaseFootage:
    """N footage crops in the source crop's frame, their (N, 478, 3) landmarks and (N, 64, 64, 3)
    thumbnails. The crops are kept as I420 (N, 3S/2, S): half the memory of RGB (10 s of 512 px
    crops is 118 MB, not 236), and filling fresh memory was most of what loading a base cost
    (seconds of page faults on a small VM); a frame back to RGB costs about half a millisecond."""

    yuv: np.ndarray
    landmarks: np.ndarray
    fps: float
    thumbs: np.ndarray
    native: np.ndarray | None = None   # (N, 3H'/2, W') I420: the footage's own pixels over native_roi (H', W' even)
    native_roi: tuple[int, int, int, int] | None = None  # (x0, y0, x1, y1) in the output frame
    crop_to_native: np.ndarray | None = None  # (2, 3) crop px → native_roi px

    def frame(self, i: int) -> np.ndarray:
        """(S, S, 3) uint8 RGB crop ``i`` (a new array)."""
        return cv2.cvtColor(self.yuv[i], cv2.COLOR_YUV2RGB_I420)

    def native_frame(self, i: int) -> np.ndarray | None:
        """(y1 - y0, x1 - x0, 3) uint8 RGB: footage frame ``i``'s own pixels over ``native_roi``,
        or None where they are not kept."""
        if self.native is None or self.native_roi is None:
            return None
        x0, y0, x1, y1 = self.native_roi
        return np.ascontiguousarray(cv2.cvtColor(self.native[i], cv2.COLOR_YUV2RGB_I420)[:y1 - y0, :x1 - x0])

    def __len__(self) -> int:
        return len(self.yuv)


def load_base(pack: Pack, frame_to_crop: np.ndarray, size: int, max_seconds: float = MAX_SECONDS,
              native: bool = False) -> BaseFootage | None:
    """``max_seconds`` of the pack's footage, from where its mouth is calmest (:func:`calm_start`);
    None when the pack kept no footage or no frame of it shows a face. ``native``: the output
    frame is the clip's own size, so also keep each frame's own pixels over the part of the frame
    the crop pastes into, within :data:`NATIVE_BUDGET`: over it the base is shortened to fit, down to
    :data:`MIN_NATIVE_SECONDS`; beyond that only the crops are kept."""
    path = pack.footage()
    if path is None or not path.is_file():
        return None
    tr = pack.track()
    found = ~np.isnan(tr["features"][:, 0])
    if found.sum() < 2:
        return None
    idx = tr["frame_index"][found]
    lms = tr["landmarks"][found].astype(np.float32)
    fps = float(pack.manifest["source"].get("fps") or 25.0)
    span = int(max_seconds * fps)
    first = calm_start(idx, tr["features"][found][:, 3], span)
    last = min(int(idx[-1]), first + span - 1)
    # decoded straight into one I420 array (a list stacked afterwards cost a second copy of up to
    # 250 crops, seconds of page faults on a small VM), with 64 px thumbnails beside
    yuv = np.empty((last - first + 1, size * 3 // 2, size), np.uint8)
    thumbs = np.empty((last - first + 1, THUMB, THUMB, 3), np.uint8)
    crop = np.empty((size, size, 3), np.uint8)
    flags = cv2.INTER_AREA if frame_to_crop[0, 0] < 1 else cv2.INTER_LINEAR
    own, roi = None, None
    n = 0
    with read_frames(path) as reader:
        for i, frame in enumerate(reader):
            if i < first:
                continue
            if i > last:
                break
            if native and own is None and roi is None:
                roi = paste_roi(frame.shape[:2], frame_to_crop, size)
                fit = min(native_frames(roi), last - first + 1)
                if fit >= min(last - first + 1, int(MIN_NATIVE_SECONDS * fps)):
                    if fit < last - first + 1:
                        log.info("the footage's own pixels over %d x %d fit the %d MB kept for them for %d frames: "
                                 "the base is %.1f s of footage", roi[2] - roi[0], roi[3] - roi[1],
                                 NATIVE_BUDGET >> 20, fit, fit / fps)
                    last = first + fit - 1
                    own = _native_buffer(roi, fit)
                if own is None:
                    log.warning("the footage's own pixels over %d x %d for %.1f s exceed the %d MB kept for them: "
                                "the talking head is pasted from the %d px crop (softer)", roi[2] - roi[0],
                                roi[3] - roi[1], MIN_NATIVE_SECONDS, NATIVE_BUDGET >> 20, size)
                roi = roi if own is not None else ()
            if own is not None:
                x0, y0, x1, y1 = roi
                part = frame[y0:y1, x0:x1]
                ph, pw = own.shape[1] * 2 // 3 - part.shape[0], own.shape[2] - part.shape[1]
                if ph or pw:  # I420 needs even sides: the last row or column repeated
                    part = cv2.copyMakeBorder(part, 0, ph, 0, pw, cv2.BORDER_REPLICATE)
                cv2.cvtColor(np.ascontiguousarray(part), cv2.COLOR_RGB2YUV_I420, dst=own[n])
            cv2.warpAffine(frame, frame_to_crop, (size, size), dst=crop, flags=flags, borderMode=cv2.BORDER_REPLICATE)
            cv2.cvtColor(crop, cv2.COLOR_RGB2YUV_I420, dst=yuv[n])
            cv2.resize(crop, (THUMB, THUMB), dst=thumbs[n], interpolation=cv2.INTER_AREA)
            n += 1
    if n < 2:
        return None
    start, stop = longest_uncut(thumbs[:n])
    if stop - start < 2:
        return None
    frames_a = np.arange(first + start, first + stop, dtype=np.float64)
    # landmarks of every decoded frame: linear between the tracked frames around it
    j = np.clip(np.searchsorted(idx, frames_a, side="right") - 1, 0, len(idx) - 2)
    w = np.clip((frames_a - idx[j]) / np.maximum(idx[j + 1] - idx[j], 1), 0.0, 1.0)[:, None, None]
    frame_lms = (1 - w) * lms[j] + w * lms[j + 1]
    crop_lms = np.stack([transform_points(frame_to_crop, lm) for lm in frame_lms]).astype(np.float32)
    kept = own[start:stop] if own is not None else None
    to_native = None
    if kept is not None:
        to_native = cv2.invertAffineTransform(np.asarray(frame_to_crop, np.float64))
        to_native[:, 2] -= roi[:2]
    return BaseFootage(yuv[start:stop], crop_lms, fps, thumbs[start:stop], kept, roi if kept is not None else None,
                       to_native)


def _native_side(roi: tuple[int, int, int, int]) -> tuple[int, int]:
    """(H, W) of ``roi`` rounded up to even sides (I420)."""
    x0, y0, x1, y1 = roi
    return (y1 - y0 + 1) // 2 * 2, (x1 - x0 + 1) // 2 * 2


def native_frames(roi: tuple[int, int, int, int]) -> int:
    """How many frames of the footage's own pixels over ``roi`` fit :data:`NATIVE_BUDGET` (0 when it is empty)."""
    h, w = _native_side(roi)
    return 0 if h <= 0 or w <= 0 else NATIVE_BUDGET // (h * w * 3 // 2)


def _native_buffer(roi: tuple[int, int, int, int], frames: int) -> np.ndarray | None:
    """An empty (frames, 3H/2, W) I420 array for ``roi``, or None when it is empty or would exceed
    :data:`NATIVE_BUDGET`."""
    if frames <= 0 or frames > native_frames(roi):
        return None
    h, w = _native_side(roi)
    return np.empty((frames, h * 3 // 2, w), np.uint8)


def calm_start(frame_index: np.ndarray, openings: np.ndarray, span: int) -> int:
    """The frame index starting the ``span``-frame window of the footage whose mouth is closed the
    most (lowest mean opening): the re-rendered mouth then rarely has to hide a wide-open one (whose
    lower chin edge would show under a closed mouth), and the base looks calmer."""
    if len(frame_index) < 2 or frame_index[-1] - frame_index[0] < span:
        return int(frame_index[0])
    cs = np.concatenate([[0.0], np.cumsum(openings, dtype=np.float64)])
    ends = np.searchsorted(frame_index, frame_index + span)  # tracked frames inside each window
    ok = frame_index + span <= frame_index[-1] + 1
    means = (cs[ends] - cs[np.arange(len(frame_index))]) / np.maximum(ends - np.arange(len(frame_index)), 1)
    means[~ok] = np.inf
    return int(frame_index[int(np.argmin(means))])


def thumbnails(images: np.ndarray) -> np.ndarray:
    """(N, 64, 64, 3) ``images`` made small (returned as they are when already that size)."""
    images = np.asarray(images)
    if images.shape[1:3] == (THUMB, THUMB):
        return images
    return np.stack([cv2.resize(im, (THUMB, THUMB), interpolation=cv2.INTER_AREA) for im in images])


def _steps(images: np.ndarray) -> np.ndarray:
    """(N-1, 64, 64, 3) absolute change (0..255) between consecutive frames, at 64 px."""
    return np.abs(np.diff(thumbnails(images).astype(np.float32), axis=0))


def frame_changes(images: np.ndarray) -> np.ndarray:
    """(N-1,) mean absolute change (0..255) between consecutive frames, at 64 px."""
    return _steps(images).mean((1, 2, 3))


def longest_uncut(images: np.ndarray, factor: float = CUT_FACTOR) -> tuple[int, int]:
    """[start, stop) of the longest run of ``images`` without a camera cut (a frame change above
    ``factor`` × the median change and 6 grey levels, over at least :data:`CUT_SHARE` of the
    picture): an edited clip's cut would otherwise be played, back and forth, in the base. A mouth
    opening fast in a still close-up changes the mean as much, over a small part of the picture."""
    if len(images) < 3:
        return 0, len(images)
    step = _steps(images)
    d = step.mean((1, 2, 3))
    share = (step.max(-1) > CUT_LEVEL).mean((1, 2))  # of the pixels changing by more than CUT_LEVEL
    cuts = np.flatnonzero((d > max(factor * float(np.median(d)), 6.0)) & (share >= CUT_SHARE)) + 1
    bounds = np.concatenate([[0], cuts, [len(images)]])
    k = int(np.argmax(np.diff(bounds)))
    return int(bounds[k]), int(bounds[k + 1])


@dataclass(eq=False)
class BaseLoop:
    """Back-and-forth playback over ``n`` footage frames at a variable speed (≤ 1 frame a step)."""

    n: int
    position: float = 0.0
    direction: float = 1.0

    def step(self, speed: float, activity: float = 0.0) -> int:
        """Advance by ``speed`` (clipped to [0, 1]) footage frames; the frame index to show
        (``activity`` is for :meth:`MotionGraph.step`'s signature; a loop plays everything alike)."""
        if self.n < 2:
            return 0
        p = self.position + self.direction * float(np.clip(speed, 0.0, 1.0))
        last = self.n - 1
        if p > last:
            p, self.direction = 2 * last - p, -1.0
        elif p < 0:
            p, self.direction = -p, 1.0
        self.position = p
        return int(round(p))


def loop_speed(activity: float) -> float:
    """Footage frames per output frame for a speech activity in [0, 1]."""
    return SILENT_SPEED + (1.0 - SILENT_SPEED) * float(np.clip(activity, 0.0, 1.0))


def _pairwise_rms(x: np.ndarray) -> np.ndarray:
    """(N, N) RMS difference between the rows of ``x`` (N, D), through one matrix product (in
    ``x``'s precision: float32 pictures are 15× faster, and centring keeps the cancellation small)."""
    x = x - x.mean(0)
    sq = np.einsum("ij,ij->i", x, x).astype(np.float64)
    d2 = sq[:, None] + sq[None, :] - 2.0 * (x @ x.T).astype(np.float64)
    return np.sqrt(np.maximum(d2, 0.0) / max(x.shape[1], 1))


def _per_step(d: np.ndarray) -> tuple[np.ndarray, float]:
    """``d`` divided by its median consecutive-frame value (0 where the footage never changes)."""
    scale = float(np.median(np.diagonal(d, 1))) if len(d) > 1 else 0.0
    return (d / scale, scale) if scale > 1e-9 else (np.zeros_like(d), 0.0)


@dataclass(eq=False)
class MotionGraph:
    """Plays ``n`` footage frames for any length of speech, jumping between look-alike frames.

    Frame distance: RMS landmark difference (the given ``points``, in crop pixels, over the face's
    size) plus a 64 px picture difference, each in units of the footage's median frame-to-frame
    change. A jump from i to j (j shown where i+1 was due) is allowed where j looks like i+1 *and*
    j-1 like i (position and motion match, so the head does not stop or flip) within
    :data:`JUMP_FACTOR` median steps, lands at least :data:`MIN_JUMP_S` away and with
    :data:`RUNWAY_S` of footage ahead. Walking backward (after a turn) uses the mirrored jumps.

    Playback walks through the footage; at each frame with a jump it compares the motion level
    (mean landmark motion over the next :data:`SEGMENT_S`) of playing on and of each landing with
    the level the speech asks for (a low percentile of the footage's levels while silent, a high
    one while speaking), and jumps where a landing fits clearly better, now and then where it fits
    as well (variety, seeded), and always near the footage's end. Where no jump exists it turns
    back as :class:`BaseLoop` does, so there is never a cut.

    Speed stays variable (≤ 1 footage frame an output frame, from :func:`loop_speed`): footage of
    someone talking throughout may hold no calm segment to jump to, and slowing it is then the only
    stillness left; where calm segments exist both add up.
    """

    n: int
    cost: np.ndarray          # (n, n) jump cost i -> j in median steps (inf where no jump fits)
    forward: list[np.ndarray]   # landings allowed from each frame while walking forward
    backward: list[np.ndarray]  # and while walking backward
    level_fwd: np.ndarray     # (n,) motion level of the segment starting at each frame, walking forward
    level_bwd: np.ndarray     # and walking backward
    threshold: float
    runway: int
    seed: int = 0
    position: int = 0
    direction: int = 1
    jumps: int = 0            # jumps taken so far
    # output frames played so far, and those of them (numbered from 0) that show a transition
    # rather than the footage's next frame: a jump, or a turn back (where a cut could show)
    steps: int = field(default=0, init=False)
    transitions: deque = field(default_factory=lambda: deque(maxlen=TRANSITIONS_KEPT), init=False)
    _acc: float = field(default=0.0, init=False)     # footage time owed (speed < 1 holds frames)
    _cooldown: int = field(default=0, init=False)    # frames before a jump by choice is considered

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)
        ordered = np.sort(self.level_fwd)
        self._levels = ordered
        self._margin = 0.1 * float(np.percentile(ordered, 90) - np.percentile(ordered, 10)) + 1e-6

    @classmethod
    def build(cls, landmarks: np.ndarray, images: np.ndarray | None, fps: float, points: np.ndarray | None = None,
              seed: int = 0) -> "MotionGraph":
        """The graph of footage with (N, P, ≥2) ``landmarks`` (crop pixels), its (N, H, W, 3) ``images``
        (None: landmarks only) at ``fps``; ``points``: the landmark ids compared (None: all)."""
        lms = np.asarray(landmarks, np.float64)
        n = len(lms)
        if points is not None:
            lms = lms[:, points]
        xy = lms[..., :2]
        centre = xy.mean((0, 1))
        face = float(np.sqrt(((xy.mean(0) - centre) ** 2).sum(-1).mean())) or 1.0  # RMS radius of the face
        d_lm = _pairwise_rms(xy.reshape(n, -1) / face) * np.sqrt(2.0)  # per point, not per coordinate
        d_lm, lm_step = _per_step(d_lm)
        d = d_lm
        if images is not None and n > 1:
            small = thumbnails(images)
            d_img, _ = _per_step(_pairwise_rms(small.reshape(n, -1).astype(np.float32)))
            d = (d_lm + IMAGE_WEIGHT * d_img) / (1.0 + IMAGE_WEIGHT)
        steps = np.diagonal(d, 1)
        threshold = JUMP_FACTOR * float(np.median(steps)) if n > 1 else 0.0
        cost = np.full((n, n), np.inf)
        if n > 1:
            # i -> j: j in place of i+1, and j-1 like i (the motion into the landing matches)
            cost[:-1, 1:] = np.maximum(d[:-1, :-1], d[1:, 1:])
        min_jump = max(2, int(round(MIN_JUMP_S * fps)))
        runway = max(1, int(round(RUNWAY_S * fps)))
        idx = np.arange(n)
        far = np.abs(idx[:, None] - idx[None, :]) >= min_jump
        ok = (cost <= threshold) & far & np.isfinite(cost)
        fwd_ok = ok & (idx[None, :] <= n - 1 - runway)
        # walking backward from i, j stands in for i-1: the mirror of the forward jump j -> i
        bwd_ok = ok.T & (idx[None, :] >= runway)
        forward = [np.flatnonzero(r) for r in fwd_ok]
        backward = [np.flatnonzero(r) for r in bwd_ok]
        motion = np.diagonal(d_lm, 1) * lm_step if n > 1 else np.zeros(0)
        motion = np.concatenate([motion, motion[-1:]]) if n > 1 else np.zeros(n)
        w = max(1, int(round(SEGMENT_S * fps)))
        cs = np.concatenate([[0.0], np.cumsum(motion)])
        hi = np.minimum(idx + w, n)
        lo = np.maximum(idx + 1 - w, 0)
        level_fwd = (cs[hi] - cs[idx]) / np.maximum(hi - idx, 1)
        level_bwd = (cs[idx + 1] - cs[lo]) / np.maximum(idx + 1 - lo, 1)
        return cls(n, np.where(ok, cost, np.inf), forward, backward, level_fwd, level_bwd, threshold, runway, seed)

    @classmethod
    def from_footage(cls, base: BaseFootage, points: np.ndarray | None = None, seed: int = 0) -> "MotionGraph":
        """:meth:`build` for a :class:`BaseFootage`."""
        return cls.build(base.landmarks, base.thumbs, base.fps, points, seed)

    def wanted_level(self, activity: float) -> float:
        """The motion level the speech asks for: calm footage while silent, lively while speaking."""
        q = 0.1 + 0.8 * float(np.clip(activity, 0.0, 1.0))
        return float(np.interp(q, np.linspace(0.0, 1.0, len(self._levels)), self._levels))

    def step(self, speed: float, activity: float = 0.0) -> int:
        """Advance by ``speed`` (clipped to [0, 1]) footage frames at speech ``activity`` in [0, 1];
        the frame index to show."""
        if self.n < 2:
            return 0
        self._acc += float(np.clip(speed, 0.0, 1.0))
        turned = False
        while self._acc >= 1.0 - 1e-9:
            self._acc -= 1.0
            before, direction = self.position, self.direction
            self.position = self._advance(activity)
            turned |= self.position != before + direction
        if turned:
            self.transitions.append(self.steps)
        self.steps += 1
        return self.position

    def _advance(self, activity: float) -> int:
        i, d = self.position, self.direction
        nxt = i + d
        at_end = nxt < 0 or nxt > self.n - 1
        landings = self.forward[i] if d > 0 else self.backward[i]
        levels = self.level_fwd if d > 0 else self.level_bwd
        self._cooldown = max(self._cooldown - 1, 0)
        if len(landings):
            want = self.wanted_level(activity)
            fit = np.abs(levels[landings] - want) + 1e-3 * self.cost[(i, landings) if d > 0 else (landings, i)]
            k = int(np.argmin(fit))
            left = self.n - 1 - i if d > 0 else i
            stay = np.inf if at_end else abs(float(levels[nxt]) - want)
            if (at_end or left < self.runway
                    or (self._cooldown == 0 and (fit[k] + self._margin < stay
                                                 or (fit[k] <= stay + self._margin and self._rng.random() < JUMP_CHANCE)))):
                self.jumps += 1
                self._cooldown = self.runway
                return int(landings[k])
        if at_end:  # a dead end without a jump: turn back, as the loop does
            self.direction = -d
            nxt = i - d
        return int(nxt)
