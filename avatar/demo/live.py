"""Live webcam sessions of the demo: one :class:`~avatar.live.session.LiveAnimator` per browser tab.

Gradio calls :meth:`LiveSessions.process` for every streamed webcam frame; a session is keyed
by Gradio's session hash, re-created when the chosen avatar changes, re-checks its consent
every ``RECHECK_S`` seconds and is closed when the page unloads.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConsentError, InputError
from .service import DemoService, Viewer

RECHECK_S = 10.0


def sustainable_fps(config: Any, frames: int = 8, lo: float = 5.0, hi: float = 30.0) -> float:
    """Webcam frames per second this machine sustains in the Live tab, measured at start-up.

    Times the per-frame work of a live session (landmarks in tracking mode, render, paste-back)
    on the bundled public-domain portrait, nothing written or shown, and leaves 30 % headroom
    for the browser's image encoding; clamped to [lo, hi].
    """
    from ..examples import example_portrait
    from ..pipeline import Animator
    from ..types import DriveTarget

    animator = Animator(config)
    image = example_portrait()
    with animator.detector(video=False) as still:
        face = still.detect(image)[0]
    crop, state, paste = animator._source_state(image, face.landmarks)
    times = []
    with animator.detector(video=True) as det:
        for k in range(frames + 2):
            t0 = time.perf_counter()
            det.detect(image)
            out = animator.engine.render(state, [DriveTarget(crop.landmarks, None, None)])
            paste(out[0])
            if k >= 2:  # first calls start graphs and allocate
                times.append(time.perf_counter() - t0)
    animator.engine.close()
    per_frame = float(np.median(times)) * 1.3
    return float(np.clip(1.0 / max(per_frame, 1e-3), lo, hi))


@dataclass
class _Session:
    avatar_id: str
    live: Any
    grant: Any
    checked: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)


class LiveSessions:
    """Live sessions of the demo's visitors (thread-safe)."""

    def __init__(self, service: DemoService) -> None:
        self.service = service
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()

    def _open(self, avatar_id: str, viewer: Viewer | None) -> _Session:
        from ..live.session import LiveAnimator

        self.service.record(avatar_id, viewer)
        cfg = self.service.render_config(avatar_id)
        cfg = dataclasses.replace(cfg, render=dataclasses.replace(cfg.render, batch_size=1))
        animator = self.service.own_animator(cfg)
        prepared = animator.prepare(self.service.portrait_of(avatar_id, viewer), use="live", avatar_id=avatar_id)
        return _Session(avatar_id, LiveAnimator(animator, prepared, fps=self.service.settings.live_fps), prepared.grant)

    def session(self, key: str, avatar_id: str | None, viewer: Viewer | None = None) -> _Session:
        """The visitor's session for ``avatar_id`` (opened, or re-opened for another avatar)."""
        if not avatar_id:
            raise ConsentError("choose an avatar first (create one with consent in the Clone tab)")
        with self._lock:
            s = self._sessions.get(key)
        if s is not None and s.avatar_id == avatar_id:
            return s
        self.stop(key)
        s = self._open(avatar_id, viewer)
        with self._lock:
            self._sessions[key] = s
        return s

    def process(self, key: str, avatar_id: str | None, frame: np.ndarray | None,
                viewer: Viewer | None = None) -> tuple[np.ndarray | None, dict]:
        """One webcam frame (H, W, 3) uint8 RGB → (output frame, stats). None frames pass through."""
        from ..output.consent import grant_still_valid

        if frame is None:
            return None, {}
        if not (isinstance(frame, np.ndarray) and frame.ndim == 3 and frame.shape[2] in (3, 4)):
            raise InputError("the webcam sent something that is not an RGB image; reload the page")
        s = self.session(key, avatar_id, viewer)
        now = time.monotonic()
        if now - s.checked > RECHECK_S:
            s.checked = now
            if not grant_still_valid(self.service.store, s.grant):
                self.stop(key)
                raise ConsentError(f"consent for avatar {avatar_id} was revoked or expired; the live session stopped")
        with s.lock:  # frames of one session are processed in order, one at a time
            out = s.live.process(np.ascontiguousarray(frame[..., :3]).astype(np.uint8, copy=False))
            stats = dict(s.live.stats)
        return out, stats

    def recapture(self, key: str) -> bool:
        """Make the next frame with a face the neutral reference; False when no session is open."""
        with self._lock:
            s = self._sessions.get(key)
        if s is None:
            return False
        s.live.recapture()
        return True

    def stop(self, key: str) -> None:
        with self._lock:
            s = self._sessions.pop(key, None)
        if s is not None:
            with s.lock:
                s.live.close()

    def close_all(self) -> None:
        with self._lock:
            keys = list(self._sessions)
        for k in keys:
            self.stop(k)


def format_stats(stats: dict) -> str:
    """One Markdown line: achieved fps, latency and per-stage cost."""
    if not stats:
        return "waiting for the webcam…"
    stages = ", ".join(f"{k[:-3]} {v:.0f}" for k, v in stats.items() if k.endswith("_ms") and v > 0.5)
    return (f"**{stats.get('fps', 0.0):.1f} fps achieved** · latency median {stats.get('latency_ms_median', 0):.0f} ms"
            f" (p95 {stats.get('latency_ms_p95', 0):.0f}) · {int(stats.get('frames', 0))} frames"
            + (f" · ms/frame: {stages}" if stages else ""))
