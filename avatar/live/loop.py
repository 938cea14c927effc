"""The live run loop: camera (or microphone) → :class:`LiveAnimator` → every sink, until told to stop.

Stops on: ``max_frames`` / ``max_seconds``, the camera or audio file ending, ``q`` in the
preview, Ctrl-C (SIGINT) or ``stop.set()``, and a consent re-check that fails (revoked or
expired: checked every ``consent_check_s``). Every path closes the sinks, so recordings
are complete and playable, and returns a :class:`LiveReport`.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigError, ConsentError
from ..pipeline import one_blas_thread
from .capture import AudioFileMic, Capture, FrameSource, Microphone, open_camera
from .session import STAGES, LiveAnimator, LiveOptions, percentile_ms
from .sinks import PreviewSink, Sink

if TYPE_CHECKING:
    from ..config import AvatarConfig
    from ..pipeline import Animator

log = logging.getLogger(__name__)

STOP_REASONS = ("max_frames", "max_seconds", "camera_ended", "audio_ended", "user", "interrupted", "consent_revoked")


@dataclass
class LiveReport:
    """What a live session did.

    fps: frames out per second of session; latency: capture (or, in voice mode, the sound
    being heard) → frame handed to every sink; timings_ms: per-frame ms per stage (sinks
    included as ``sink:<name>``); dropped: camera frames skipped because newer ones arrived
    first; stopped_by: one of :data:`STOP_REASONS`; outputs: what was written (files, URLs).
    """

    frames: int = 0
    captured: int = 0
    dropped: int = 0
    seconds: float = 0.0
    fps: float = 0.0
    latency_ms_median: float = 0.0
    latency_ms_p95: float = 0.0
    timings_ms: dict[str, float] = field(default_factory=dict)
    faces_missing: int = 0
    stopped_by: str = "user"
    message: str = ""
    outputs: list[str] = field(default_factory=list)
    mode: str = "video"

    def summary(self) -> str:
        stages = ", ".join(f"{k} {v:.1f}" for k, v in self.timings_ms.items() if v > 0.05)
        extra = f"; {self.faces_missing} frame(s) without a face held the pose" if self.faces_missing else ""
        src = f"{self.captured} captured, {self.dropped} stale dropped, " if self.mode == "video" else ""
        return (f"live ({self.mode}): {self.frames} frames in {self.seconds:.1f} s ({src}{self.fps:.1f} fps); "
                f"latency median {self.latency_ms_median:.0f} ms, p95 {self.latency_ms_p95:.0f} ms; "
                f"ms/frame: {stages}{extra}; stopped: {self.stopped_by}")


class _ConsentWatch:
    """Re-checks the grant every ``every_s`` seconds; ``ok()`` is False once it is revoked or expired."""

    def __init__(self, grant: Any, store: Any, every_s: float) -> None:
        if every_s <= 0:
            raise ConfigError(f"consent_check_s must be > 0, got {every_s}")
        self.grant, self.every_s = grant, every_s
        self._own = None
        if store is None and grant.policy != "research":
            from ..output.consent import ConsentStore

            store = self._own = ConsentStore()
        self.store = store
        self._next = time.monotonic() + every_s

    def ok(self) -> bool:
        now = time.monotonic()
        if now < self._next:
            return True
        self._next = now + self.every_s
        from ..output.consent import grant_still_valid

        return grant_still_valid(self.store, self.grant)

    def message(self) -> str:
        g = self.grant
        return (f"consent for avatar {g.avatar_id} is no longer valid (revoked or expired); "
                "the live session stopped and its outputs were closed")

    def close(self) -> None:
        if self._own is not None:
            self._own.close()


@contextlib.contextmanager
def _sigint_sets(stop: threading.Event, enabled: bool):
    """While inside, the first Ctrl-C sets ``stop`` (a clean shutdown); a third one interrupts for good."""
    presses = [0]
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield presses
        return

    def handler(signum, frame):
        presses[0] += 1
        stop.set()
        if presses[0] >= 3:
            raise KeyboardInterrupt

    old = signal.signal(signal.SIGINT, handler)
    try:
        yield presses
    finally:
        signal.signal(signal.SIGINT, old)


class _Outputs:
    """The sinks of one session: opened together, written together, always closed."""

    def __init__(self, sinks: Sequence[Sink], timer: Any) -> None:
        self.sinks = list(sinks)
        self.timer = timer
        self._opened: list[Sink] = []

    def open(self, width: int, height: int, fps: float, audio: bool, grant: Any) -> None:
        for s in self.sinks:
            s.open(width, height, fps, audio=audio and s.wants_audio, grant=grant)
            self._opened.append(s)

    def write(self, frame: np.ndarray, t: float) -> None:
        for s in self._opened:
            with self.timer.time(f"sink:{s.name}"):
                s.write(frame, t)

    def write_audio(self, pcm: np.ndarray) -> None:
        for s in self._opened:
            if s.wants_audio:
                s.write_audio(pcm)

    def commands(self) -> list[str]:
        return [c for s in self._opened for c in s.poll()]

    def set_status(self, text: str) -> None:
        for s in self._opened:
            if isinstance(s, PreviewSink):
                s.status = text

    def close(self) -> list[str]:
        """Close every opened sink (errors logged, the first re-raised after all are closed)."""
        first: BaseException | None = None
        for s in self._opened:
            try:
                s.close()
            except BaseException as exc:  # noqa: BLE001 - every sink must get its close()
                log.error("closing %s failed: %s", s.name, exc)
                first = first or exc
        self._opened = []
        if first is not None:
            raise first
        return [s.describe() for s in self.sinks]


def _status_line(stats: dict[str, float], extra: str = "") -> str:
    stages = " ".join(f"{k[:-3]} {stats.get(k, 0):.0f}" for k in (f"{s}_ms" for s in STAGES))
    return (f"{stats.get('fps', 0):.1f} fps  latency {stats.get('latency_ms_median', 0):.0f}/"
            f"{stats.get('latency_ms_p95', 0):.0f} ms{extra}\nms: {stages}")


class _StatusTicker:
    """Every ``every_s``: the running figures as the outputs' status line and to ``on_status``."""

    def __init__(self, live: LiveAnimator, outputs: _Outputs, every_s: float,
                 on_status: Callable[[dict[str, float]], None] | None) -> None:
        self.live, self.outputs, self.every_s, self.on_status = live, outputs, every_s, on_status
        self._next = time.monotonic() + every_s

    def tick(self, dropped: int | None = None) -> None:
        if time.monotonic() < self._next:
            return
        self._next = time.monotonic() + self.every_s
        stats = self.live.stats
        if dropped is not None:
            stats["dropped"] = float(dropped)
        self.outputs.set_status(_status_line(stats, "" if dropped is None else f"  dropped {dropped}"))
        if self.on_status:
            self.on_status(stats)


@one_blas_thread
def run_live(config: AvatarConfig | None = None, source: Any = None, *, avatar_id: str | None = None,
             camera: int | str | Path | FrameSource = 0, sinks: Sequence[Sink] = (), audio: Any = None,
             max_frames: int | None = None, max_seconds: float | None = None, fps: float | None = None,
             loop_camera: bool = False, pace: bool = True, consent_check_s: float = 5.0,
             options: LiveOptions | None = None, animator: Animator | None = None, store: Any = None,
             stop: threading.Event | None = None, handle_sigint: bool = True,
             on_status: Callable[[dict[str, float]], None] | None = None, status_every_s: float = 1.0,
             seed: int = 0) -> LiveReport:
    """Run a live session and return its report.

    Args:
        config: settings (engine, crop size, output size, smoothing); default AvatarConfig().
        source: the portrait (path, bytes or (H, W, 3) array); None with ``avatar_id`` uses the
            avatar's stored consented image.
        avatar_id: the consented avatar (``avatar clone``); the gate checks scope "live".
        camera: index, /dev/videoN, URL, video file, or a :class:`FrameSource` (video mode).
        sinks: where frames go (:mod:`avatar.live.sinks`); several at once.
        audio: voice mode: "mic" (default microphone), a media file (a fake microphone paced
            in real time), or an object with ``read() -> AudioChunk | None``.
        max_frames, max_seconds: stop after this many output frames / seconds.
        fps: output rate (default: the camera's; 25 in voice mode).
        loop_camera, pace: for video-file cameras: loop at the end; release frames in real time.
        consent_check_s: seconds between consent re-checks.
        stop: set it (from another thread) to end the session cleanly.
        handle_sigint: Ctrl-C ends the session cleanly instead of raising KeyboardInterrupt.
        on_status: called about every ``status_every_s`` with the running figures.
    Raises:
        ConsentError (before anything starts), InputError (camera / audio cannot be opened),
        EngineUnavailable (virtual camera, preview or microphone backend missing), SinkError.
    """
    from ..config import AvatarConfig
    from ..pipeline import Animator

    if max_frames is not None and max_frames < 1:
        raise ConfigError(f"max_frames must be >= 1, got {max_frames}")
    stop = stop or threading.Event()
    animator = animator or Animator(config or AvatarConfig(), consent_store=store)
    if source is None:
        if avatar_id is None:
            raise ConfigError("a live session needs a portrait or an avatar id (--avatar ID)")
        from ..output.consent import ConsentStore

        with contextlib.ExitStack() as es:
            st = store if store is not None else es.enter_context(ConsentStore())
            source = st.source_image(avatar_id)
    prepared = animator.prepare(source, use="live", avatar_id=avatar_id)
    watch = _ConsentWatch(prepared.grant, store, consent_check_s)
    try:
        if audio is not None:
            return _run_voice(animator, prepared, audio, sinks, fps or 25.0, max_frames, max_seconds, options,
                              stop, handle_sigint, watch, on_status, status_every_s, seed)
        return _run_video(animator, prepared, camera, sinks, fps, max_frames, max_seconds, loop_camera, pace,
                          options, stop, handle_sigint, watch, on_status, status_every_s)
    finally:
        watch.close()


def _frame_size(animator: Animator, prepared: Any) -> tuple[int, int]:
    if animator.config.output.paste_back:
        h, w = prepared.frame.shape[:2]
    else:
        h = w = prepared.crop.size
    return w, h


def _run_video(animator, prepared, camera, sinks, fps, max_frames, max_seconds, loop_camera, pace, options,
               stop, handle_sigint, watch, on_status, status_every_s) -> LiveReport:
    cam = camera if hasattr(camera, "read") and not isinstance(camera, (str, Path)) else \
        open_camera(camera, pace=pace, loop=loop_camera)
    out_fps = float(fps or min(max(getattr(cam, "fps", 25.0) or 25.0, 1.0), 60.0))
    live = LiveAnimator(animator, prepared, out_fps, options)
    outputs = _Outputs(sinks, live.timer)
    report = LiveReport(mode="video")
    latencies: list[float] = []
    capture: Capture | None = None
    pipe = None
    t_first: float | None = None
    t_base: float | None = None
    last_media: float | None = None

    def emit(done) -> bool:
        """Write finished frames to the sinks; False once ``max_frames`` is reached."""
        for image, (t, t_capture) in done:
            outputs.write(image, t)
            latencies.append(time.perf_counter() - t_capture)
            report.frames += 1
            if max_frames is not None and report.frames >= max_frames:
                report.stopped_by = "max_frames"
                return False
        return True

    try:
        outputs.open(*_frame_size(animator, prepared), out_fps, audio=False, grant=prepared.grant)
        live.warmup()
        capture = Capture(cam).start()
        pipe = live.side_by_side()
        status = _StatusTicker(live, outputs, status_every_s, on_status)
        with _sigint_sets(stop, handle_sigint) as presses:
            try:
                while True:
                    if stop.is_set():
                        report.stopped_by = "interrupted" if presses[0] else "user"
                        break
                    for cmd in outputs.commands():
                        if cmd == "recapture":
                            live.recapture()
                        elif cmd == "quit":
                            stop.set()
                    if stop.is_set():
                        report.stopped_by = "user"
                        break
                    if not watch.ok():
                        report.stopped_by, report.message = "consent_revoked", watch.message()
                        break
                    frame = capture.latest(timeout=0.25)
                    if frame is None:
                        if capture.ended:
                            report.stopped_by = "camera_ended"
                            emit(pipe.drain())  # the frames still rendering belong to the recording
                            break
                        continue
                    if t_base is None:
                        t_base, t_first = frame.t_media, time.perf_counter()
                    t = frame.t_media - t_base
                    dt = None if last_media is None else max(frame.t_media - last_media, 1e-3)
                    last_media = frame.t_media
                    if not emit(pipe.submit(frame.image, t_capture=frame.t_capture, dt=dt, meta=(t, frame.t_capture))):
                        break
                    if max_seconds is not None and time.perf_counter() - t_first >= max_seconds:
                        report.stopped_by = "max_seconds"
                        emit(pipe.drain())
                        break
                    status.tick(dropped=capture.dropped)
            except KeyboardInterrupt:
                report.stopped_by = "interrupted"
    finally:
        if pipe is not None:
            pipe.close()
        if capture is not None:
            capture.close()
            report.captured, report.dropped = capture.captured, capture.dropped
        live.close()
        report.seconds = time.perf_counter() - t_first if t_first is not None else 0.0
        report.outputs = outputs.close()
    return _finish(report, live, latencies)


def _finish(report: LiveReport, live: LiveAnimator, latencies: list[float]) -> LiveReport:
    report.fps = report.frames / report.seconds if report.seconds > 0 else 0.0
    report.latency_ms_median = percentile_ms(latencies, 50)
    report.latency_ms_p95 = percentile_ms(latencies, 95)
    report.timings_ms = {k: v for k, v in live.timer.per_frame_ms(report.frames).items() if k != "faces_missing"}
    report.faces_missing = live.faces_missing
    return report


def _open_audio(audio: Any, pace: bool = True):
    if hasattr(audio, "read") and not isinstance(audio, (str, Path)):
        return audio
    if isinstance(audio, str) and audio == "mic":
        return Microphone()
    if isinstance(audio, str) and audio.startswith("mic:"):
        dev = audio[4:]
        return Microphone(int(dev) if dev.isdigit() else dev)
    return AudioFileMic(audio, pace=pace)


def _run_voice(animator, prepared, audio, sinks, fps, max_frames, max_seconds, options, stop, handle_sigint,
               watch, on_status, status_every_s, seed) -> LiveReport:
    from .voice import VoiceDriver

    # voice mode renders speech: the engine's state for it (a video avatar talks over its own footage)
    prepared = animator.for_speech(prepared)
    mic = _open_audio(audio)
    live = LiveAnimator(animator, prepared, fps, options)
    outputs = _Outputs(sinks, live.timer)
    report = LiveReport(mode="voice")
    latencies: list[float] = []
    t_first: float | None = None
    try:
        live.warmup()
        driver = VoiceDriver(live, seed=seed)
        outputs.open(*_frame_size(animator, prepared), fps, audio=True, grant=prepared.grant)
        status = _StatusTicker(live, outputs, status_every_s, on_status)

        def emit(frames) -> bool:
            for vf in frames:
                outputs.write(vf.image, vf.t)
                latencies.append(time.perf_counter() - vf.t_capture)
                report.frames += 1
                if max_frames is not None and report.frames >= max_frames:
                    report.stopped_by = "max_frames"
                    return False
            return True

        with _sigint_sets(stop, handle_sigint) as presses:
            try:
                while True:
                    if stop.is_set():
                        report.stopped_by = "interrupted" if presses[0] else "user"
                        break
                    if any(c == "quit" for c in outputs.commands()):
                        report.stopped_by = "user"
                        break
                    if not watch.ok():
                        report.stopped_by, report.message = "consent_revoked", watch.message()
                        break
                    chunk = mic.read()
                    if t_first is None and chunk is not None:  # the session clock starts with the first sound
                        t_first = chunk.t_capture - len(chunk.pcm) / 16000.0
                    if chunk is None:
                        if emit(driver.flush()):
                            report.stopped_by = "audio_ended"
                        break
                    frames = driver.push(chunk)
                    outputs.write_audio(driver.take_audio())  # the input, delayed by the mouth path's look-ahead
                    if not emit(frames):
                        break
                    if max_seconds is not None and time.perf_counter() - t_first >= max_seconds:
                        report.stopped_by = "max_seconds"
                        break
                    status.tick()
            except KeyboardInterrupt:
                report.stopped_by = "interrupted"
    finally:
        with contextlib.suppress(Exception):
            mic.close()
        live.close()
        report.seconds = time.perf_counter() - t_first if t_first is not None else 0.0
        report.outputs = outputs.close()
    return _finish(report, live, latencies)


def check_revoked(report: LiveReport) -> None:
    """Raise ConsentError when the session ended because consent was withdrawn (for callers that prefer errors)."""
    if report.stopped_by == "consent_revoked":
        raise ConsentError(report.message)
