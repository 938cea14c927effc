"""The base of a talking video avatar: the person's own footage, played as a seamless loop.

The clip stored in the pack is decoded once (a capped window, resampled into the source crop's
frame, so memory is bounded) with landmarks for every frame (the track's, interpolated between
tracked frames), taken from where the mouth is calmest, trimmed to its longest stretch without a camera cut. :class:`BaseLoop` plays it back and forth: consecutive output frames are always
neighbouring (or the same) footage frames, so there is never a cut, for any length of speech.
It moves slower while the speaker is silent (stiller) and at the footage's pace while speaking.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..face.crop import transform_points
from ..media.video import read_frames
from ..pack.store import Pack

MAX_SECONDS = 10.0   # footage kept in memory as the base (a 512 px crop is 0.8 MB a frame)
CUT_FACTOR = 5.0     # a frame change this many times the median one is a camera cut
SILENT_SPEED = 0.5   # footage frames per output frame while silent (1 while speaking)


@dataclass(eq=False)
class BaseFootage:
    """(N, S, S, 3) uint8 footage crops in the source crop's frame and their (N, 478, 3) landmarks."""

    images: np.ndarray
    landmarks: np.ndarray
    fps: float

    def __len__(self) -> int:
        return len(self.images)


def load_base(pack: Pack, frame_to_crop: np.ndarray, size: int, max_seconds: float = MAX_SECONDS) -> BaseFootage | None:
    """``max_seconds`` of the pack's footage, from where its mouth is calmest (:func:`calm_start`);
    None when the pack kept no footage or no frame of it shows a face."""
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
    images, frames = [], []
    with read_frames(path) as reader:
        for i, frame in enumerate(reader):
            if i < first:
                continue
            if i > last:
                break
            images.append(cv2.warpAffine(frame, frame_to_crop, (size, size), flags=cv2.INTER_AREA
                                         if frame_to_crop[0, 0] < 1 else cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
            frames.append(i)
    if len(images) < 2:
        return None
    start, stop = longest_uncut(np.stack(images))
    images, frames = images[start:stop], frames[start:stop]
    if len(images) < 2:
        return None
    frames_a = np.asarray(frames, np.float64)
    # landmarks of every decoded frame: linear between the tracked frames around it
    j = np.clip(np.searchsorted(idx, frames_a, side="right") - 1, 0, len(idx) - 2)
    w = np.clip((frames_a - idx[j]) / np.maximum(idx[j + 1] - idx[j], 1), 0.0, 1.0)[:, None, None]
    frame_lms = (1 - w) * lms[j] + w * lms[j + 1]
    crop_lms = np.stack([transform_points(frame_to_crop, lm) for lm in frame_lms]).astype(np.float32)
    return BaseFootage(np.stack(images), crop_lms, fps)


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


def frame_changes(images: np.ndarray) -> np.ndarray:
    """(N-1,) mean absolute change (0..255) between consecutive frames, at 64 px."""
    small = np.stack([cv2.resize(im, (64, 64), interpolation=cv2.INTER_AREA) for im in images]).astype(np.float32)
    return np.abs(np.diff(small, axis=0)).mean((1, 2, 3))


def longest_uncut(images: np.ndarray, factor: float = CUT_FACTOR) -> tuple[int, int]:
    """[start, stop) of the longest run of ``images`` without a camera cut (a frame change above
    ``factor`` × the median change and 6 grey levels): an edited clip's cut would otherwise be
    played, back and forth, in the base."""
    if len(images) < 3:
        return 0, len(images)
    d = frame_changes(images)
    cuts = np.flatnonzero(d > max(factor * float(np.median(d)), 6.0)) + 1
    bounds = np.concatenate([[0], cuts, [len(images)]])
    k = int(np.argmax(np.diff(bounds)))
    return int(bounds[k]), int(bounds[k + 1])


@dataclass(eq=False)
class BaseLoop:
    """Back-and-forth playback over ``n`` footage frames at a variable speed (≤ 1 frame a step)."""

    n: int
    position: float = 0.0
    direction: float = 1.0

    def step(self, speed: float) -> int:
        """Advance by ``speed`` (clipped to [0, 1]) footage frames; the frame index to show."""
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
