"""Voice mode: microphone (or an audio file) → mouth, blinks and idle head motion → output frames.

Frame ``k`` shows the sound at ``k / fps`` on the same timeline as the audio samples, so a
stream that carries both stays in sync; it is ready once the streaming audio path has heard
``latency_s`` past it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .capture import SAMPLE_RATE, AudioChunk

if TYPE_CHECKING:
    from .session import LiveAnimator


@dataclass(frozen=True, eq=False)
class VoiceFrame:
    """One output frame of voice mode: ``image`` shown at ``t`` s; ``t_capture``: when its sound was heard."""

    image: np.ndarray
    t: float
    t_capture: float


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run the tiny audio network on one thread: on a busy 2-core machine torch's intra-op pool makes a
    20 ms chunk cost ≈ 16 ms instead of ≈ 0.5 ms (measured), which would eat the real-time budget."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


class VoiceDriver:
    """Turns 16 kHz PCM chunks into labelled output frames through :class:`~avatar.motion.audio.drive.LiveSpeech`.

    Args:
        live: the session (renders, labels and times frames).
        seed: blinks and idle head motion. weights: audio-to-mouth weights (None = shipped).
    """

    def __init__(self, live: LiveAnimator, *, seed: int = 0, weights: str | None = None) -> None:
        from ..motion.audio.drive import LiveSpeech

        self.live = live
        # the network's first call is slow (≈1 s: torch initialises); pay it before the microphone runs
        with one_torch_thread():
            LiveSpeech(live.source.crop.landmarks, live.animator.config.motion, live.fps, weights=weights).push(
                np.zeros(SAMPLE_RATE // 5, np.float32))
        self.speech = LiveSpeech(live.source.crop.landmarks, live.animator.config.motion, live.fps,
                                 seed=seed, weights=weights)
        self.samples = 0            # samples heard so far
        self.frames = 0             # frames emitted so far
        self._t_audio0: float | None = None

    @property
    def latency_s(self) -> float:
        """Algorithmic latency from sound to frame (excludes chunk length and rendering)."""
        return self.speech.latency_s

    def push(self, chunk: AudioChunk) -> list[VoiceFrame]:
        """Feed one chunk; returns the frames that became final."""
        pcm = np.asarray(chunk.pcm, np.float32).reshape(-1)
        if self._t_audio0 is None:
            self._t_audio0 = chunk.t_capture - len(pcm) / SAMPLE_RATE
        self.samples += len(pcm)
        with self.live.timer.time("speech"), one_torch_thread():
            targets = self.speech.push(pcm)
        return self._render(targets)

    def flush(self) -> list[VoiceFrame]:
        """The frames still held back at the end of the sound."""
        with self.live.timer.time("speech"), one_torch_thread():
            targets = self.speech.flush()
        return self._render(targets)

    def _render(self, targets: list[np.ndarray]) -> list[VoiceFrame]:
        out = []
        for target in targets:
            t = self.frames / self.live.fps
            heard = (self._t_audio0 or 0.0) + t
            out.append(VoiceFrame(self.live.render_target(target, t_capture=heard), t, heard))
            self.frames += 1
        return out
