"""Per-frame live animation of one prepared portrait: webcam frame in, labelled output frame out.

:meth:`LiveAnimator.process` does one frame from start to end (the Gradio demo calls it from its
own streaming callback); :meth:`LiveAnimator.side_by_side` renders frames as the file pipeline
does, two at once on two cores, while the caller tracks the next one (:mod:`avatar.live.loop`,
which adds capture, sinks and consent re-checks).

Face lost: the last good pose is held for ``hold_s``, then eased back to the portrait's own
neutral pose; when the face returns, the target glides to the tracked pose over a few frames
instead of jumping.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConsentError, ShapeError
from ..face.crop import DrivingCrop
from ..motion.transfer import at_rest
from ..pipeline import StageTimer
from ..types import DriveTarget, FaceCrop

if TYPE_CHECKING:
    from ..pipeline import Animator, PreparedSource

STAGES = ("landmarks", "motion", "render", "paste", "label")


@dataclass(frozen=True, slots=True)
class LiveOptions:
    """Live-only behaviour.

    visible_label: draw the "AI-generated" badge (on by default live: no C2PA travels with a
        camera feed). watermark: embed the invisible consent watermark.
    hold_s: how long a lost face keeps its last pose; ease_s: time constant of the glide back
        to neutral after that, and of the glide into the tracked pose when the face returns.
    settle_s: how long a capture of the neutral reference waits for a frame with the eyes open
        and the lips at rest (the portrait is shown meanwhile); after that the next face is taken.
    window: how many recent frames the fps / latency figures cover.
    """

    visible_label: bool = True
    watermark: bool = True
    hold_s: float = 0.5
    ease_s: float = 0.15
    settle_s: float = 1.0
    window: int = 300


def percentile_ms(values: deque[float] | list[float], q: float) -> float:
    """The ``q``-th percentile of seconds, in milliseconds (0 when empty)."""
    return float(np.percentile(np.asarray(values), q) * 1000.0) if len(values) else 0.0


class LiveAnimator:
    """Per-frame live animation of one prepared portrait.

    Args:
        animator: the pipeline (its config and engine are used).
        source: ``animator.prepare(portrait, use="live", ...)``; its grant must cover live use.
        fps: the expected frame rate (smoothing time constants).
        options: live-only settings (badge, watermark, face-lost behaviour).
    """

    def __init__(self, animator: Animator, source: PreparedSource, fps: float = 25.0,
                 options: LiveOptions | None = None) -> None:
        grant = source.grant
        if grant is None:
            raise ConsentError("the portrait was prepared without a consent grant; prepare it with "
                               "animator.prepare(portrait, use='live', avatar_id=...)")
        if grant.scope is not None and not grant.scope.live:
            raise ConsentError(f"consent for avatar {grant.avatar_id} does not cover live use "
                               f"(covers {grant.scope.describe()}); record a consent with live in its scope")
        self.animator, self.source, self.fps = animator, source, float(fps)
        self.options = options or LiveOptions()
        self._payload = grant.payload32()
        self._det = animator.detector(video=True)
        self._transfer = animator.transfer(source, self.fps)
        self._neutral = source.crop.landmarks.astype(np.float32)
        self._target: np.ndarray | None = None      # last output target (crop pixels)
        self._recapture = False
        self._capture_since: float | None = None  # clock when the pending reference capture began
        self._missing_since: float | None = None   # media time the face was lost
        self._returning = 0                          # frames left of the glide back in
        self._needs_image = animator.engine.needs_driving_image
        self._uses_image = animator.engine.uses_driving_image  # webcam crops for the engine
        self._crops = DrivingCrop(animator.config.face)
        self._last_drive: FaceCrop | None = None
        self._clock = 0.0
        self.timer = StageTimer()
        self.frames = 0
        self.faces_missing = 0
        self._lat: deque[float] = deque(maxlen=self.options.window)
        self._done: deque[float] = deque(maxlen=self.options.window)
        self._closed = False

    # -- control --------------------------------------------------------------------------
    def recapture(self) -> None:
        """The next frame with a face becomes the neutral reference."""
        self._recapture, self._capture_since = True, None

    def warmup(self) -> None:
        """Run the whole chain once on the portrait itself (first calls load models and allocate),
        then forget it: the reference, the pose and the figures start fresh."""
        self.process(self.source.frame)
        self._transfer = self.animator.transfer(self.source, self.fps)
        self._target = self._last_drive = None
        self._crops.reset()
        self._missing_since, self._returning, self._recapture, self._clock = None, 0, False, 0.0
        self._capture_since = None
        self.timer.totals.clear()  # in place: the loop's sink timings share this timer
        self.timer.counts.clear()
        self.frames = self.faces_missing = 0
        self._lat.clear()
        self._done.clear()

    # -- per frame ------------------------------------------------------------------------
    def process(self, frame: np.ndarray, *, t_capture: float | None = None, dt: float | None = None) -> np.ndarray:
        """(H, W, 3) uint8 RGB webcam frame → (H', W', 3) uint8 RGB output (portrait pasted back, labelled).

        t_capture: ``time.perf_counter()`` when the frame was captured (default: now), for
        the latency figures. dt: seconds since the previous frame (default 1 / fps).
        """
        t0 = time.perf_counter()
        out = self._render(self.drive(frame, dt=dt))
        self._finish(t0 if t_capture is None else t_capture)
        return out

    def drive(self, frame: np.ndarray, *, dt: float | None = None) -> DriveTarget:
        """The landmarks and motion of one webcam frame: what the engine renders. Frames go
        through here one after another, in order (tracking and smoothing carry over)."""
        if not (isinstance(frame, np.ndarray) and frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8):
            got = f"{frame.shape} {frame.dtype}" if isinstance(frame, np.ndarray) else type(frame).__name__
            raise ShapeError(f"a live frame must be (H, W, 3) uint8 RGB, got {got}")
        self._clock += dt if dt is not None else 1.0 / self.fps
        with self.timer.time("landmarks"):
            faces = self._det.detect(frame)
        idx = self.animator.config.face.face_index or 0
        face = faces[idx] if idx < len(faces) else (faces[0] if faces else None)
        with self.timer.time("motion"):
            return DriveTarget(*self._motion(frame, None if face is None else face.landmarks))

    def side_by_side(self) -> SideBySide:
        """A runner that renders frames side by side (see :class:`SideBySide`); close it, or use
        it in a ``with`` block."""
        return SideBySide(self)

    def render_target(self, target: np.ndarray, *, t_capture: float | None = None) -> np.ndarray:
        """(478, 3) target landmarks in source-crop pixels → labelled output frame (voice mode)."""
        t0 = time.perf_counter()
        self._clock += 1.0 / self.fps
        target = np.asarray(target, np.float32)
        self._target = target
        if self._needs_image:  # the pipeline renders the landmark target as the driving frame
            out = next(self.animator.stream_targets(self.source, [target], timer=self.timer))
            out = self._label(out)
        else:
            out = self._render(DriveTarget(target, None, None))
        self._finish(t0 if t_capture is None else t_capture)
        return out

    def _motion(self, frame: np.ndarray, lm: np.ndarray | None) -> tuple[np.ndarray, FaceCrop | None, FaceCrop | None]:
        opt = self.options
        if lm is None:
            self.faces_missing += 1
            self.timer.add("faces_missing", 0.0)
            if self._missing_since is None:
                self._missing_since = self._clock
            held = self._target if self._target is not None else self._neutral
            lost_for = self._clock - self._missing_since
            if lost_for > opt.hold_s:  # ease back towards the portrait's own pose
                a = 1.0 - math.exp(-(1.0 / self.fps) / max(opt.ease_s, 1e-3))
                held = (held + a * (self._neutral - held)).astype(np.float32)
            self._target = held
            drive = self._last_drive if self._uses_image else None
            return held, drive, self._crops.reference if drive is not None else None
        if self._recapture or not self._transfer.has_reference:
            if self._capture_since is None:
                self._capture_since = self._clock
            if self._clock - self._capture_since < opt.settle_s and not at_rest(self.source.crop.landmarks, lm):
                self._target = self._neutral  # caught mid-blink or mid-word: wait for the next frame
                if not self._uses_image:
                    return self._neutral, None, None
                drive = self._crops(frame, lm)  # an engine that reads the driver gets it as its own reference: no motion
                return self._neutral, drive, drive
            self._transfer.set_reference(lm)
            self._crops.reset()
            self._recapture, self._capture_since = False, None
        tracked = self._transfer(lm).astype(np.float32)
        if self._missing_since is not None:
            self._missing_since = None
            self._returning = max(1, round(3 * opt.ease_s * self.fps))
        if self._returning and self._target is not None:
            a = 1.0 / self._returning  # reaches the tracked pose when the countdown ends
            tracked = (self._target + a * (tracked - self._target)).astype(np.float32)
            self._returning -= 1
        self._target = tracked
        drive = ref = None
        if self._uses_image:
            drive = self._last_drive = self._crops(frame, lm)
            ref = self._crops.reference if self.animator.config.motion.mode == "relative" else None
        return tracked, drive, ref

    def _render(self, job: DriveTarget) -> np.ndarray:
        with self.timer.time("render"):
            if job.driving is None and self._needs_image:  # no face seen yet: FOMM has nothing to read, the portrait stays
                crop = self.source.crop.image
            else:
                crop = self.animator.engine.render(self.source.state, [job])[0]
        if self.animator.config.output.paste_back:
            with self.timer.time("paste"):
                out = self.source.paste(crop)
        else:
            out = np.ascontiguousarray(crop)
        return self._label(out)

    def _label(self, out: np.ndarray) -> np.ndarray:
        from ..output import provenance, watermark

        with self.timer.time("label"):
            if self.options.visible_label:
                out = provenance.add_visible_label(out)
            if self.options.watermark:
                out = watermark.embed(out, self._payload)
        return out

    def _finish(self, t_capture: float) -> None:
        now = time.perf_counter()
        self.frames += 1
        self._lat.append(max(now - t_capture, 0.0))
        self._done.append(now)

    # -- figures --------------------------------------------------------------------------
    @property
    def stats(self) -> dict[str, float]:
        """fps (recent window), latency_ms_median / _p95 (capture → output), ``<stage>_ms`` per frame,
        frames, faces_missing."""
        d = self._done
        fps = (len(d) - 1) / (d[-1] - d[0]) if len(d) > 1 and d[-1] > d[0] else 0.0
        out: dict[str, float] = {
            "fps": fps,
            "latency_ms_median": percentile_ms(self._lat, 50),
            "latency_ms_p95": percentile_ms(self._lat, 95),
            "frames": float(self.frames),
            "faces_missing": float(self.faces_missing),
        }
        per = self.timer.per_frame_ms(self.frames)
        for stage in STAGES:
            out[f"{stage}_ms"] = per.get(stage, 0.0)
        return out

    def latencies_s(self) -> list[float]:
        """Capture → output latency of the recent frames, seconds."""
        return list(self._lat)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._det.close()

    def __enter__(self) -> LiveAnimator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SideBySide:
    """Live frames rendered side by side, as the file pipeline renders them
    (:meth:`~avatar.pipeline.Animator.renderer`: ``RenderConfig.threads`` frames at once, one per
    core by default): while frames i and i-1 render, the caller captures and tracks frame i+1.
    One frame at a time, a 512 crop took about 37 ms of work and the loop fell behind a 30 fps
    camera; two cores now share it. Output frames come back in capture order.
    """

    def __init__(self, live: LiveAnimator) -> None:
        self._live = live
        self._render = live.animator.renderer(live.source, live.timer, live._label)
        self._meta: deque[tuple[float, Any]] = deque()

    def submit(self, frame: np.ndarray, *, t_capture: float | None = None, dt: float | None = None,
               meta: Any = None) -> Iterator[tuple[np.ndarray, Any]]:
        """Track ``frame`` and start rendering it; yields (output frame, its ``meta``) for every
        frame that is done by now, oldest first (none while the cores are still busy)."""
        t0 = time.perf_counter() if t_capture is None else t_capture
        job = self._live.drive(frame, dt=dt)
        self._meta.append((t0, meta))
        for outs in self._render.submit([job]):
            yield from self._done(outs)

    def drain(self) -> Iterator[tuple[np.ndarray, Any]]:
        """(output frame, meta) of every frame still rendering, in order."""
        for outs in self._render.drain():
            yield from self._done(outs)

    def _done(self, outs: list[np.ndarray]) -> Iterator[tuple[np.ndarray, Any]]:
        for out in outs:
            t_capture, meta = self._meta.popleft()
            self._live._finish(t_capture)
            yield out, meta

    def close(self) -> None:
        """Stop: frames still rendering are dropped."""
        self._render.__exit__(None, None, None)
        self._meta.clear()

    def __enter__(self) -> SideBySide:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
