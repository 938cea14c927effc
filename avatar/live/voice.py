"""Voice mode: microphone (or an audio file) → mouth, blinks and idle head motion → output frames.

The mouth path needs to hear ``latency_s`` past a frame's time (its look-ahead, which includes
the lips' lead over the sound), so the sound that goes out with the frames is delayed by that
much: the output timeline starts with ``delay_s`` of silence, then the input. Frame ``k`` shows
that delayed sound at ``k / fps`` exactly as the offline path would (lips ``lead_s`` ahead), and
it is ready when the input reaches ``k / fps``: sound in to frame out is ``delay_s`` plus the
chunk length and rendering, with the output's audio and video in step.
"""

from __future__ import annotations

import math
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


class VoiceDriver:
    """Turns 16 kHz PCM chunks into labelled output frames through :class:`~avatar.motion.audio.drive.LiveSpeech`.

    Args:
        live: the session (renders, labels and times frames).
        seed: blinks and idle head motion. weights: audio-to-mouth weights (None = shipped).
    """

    def __init__(self, live: LiveAnimator, *, seed: int = 0, weights: str | None = None) -> None:
        from ..motion.audio.drive import LiveSpeech

        self.live = live
        sc = live.animator.config.speech
        # a talking video avatar's own timing (its lag delays targets at render; its lead comes here)
        lead_s = live.animator.engine.speech_lead(live.source.state, sc.lead_s, live.fps)
        # the person's own mouth model, in its variant that reads less far ahead (a shorter delay)
        personal = live.animator.engine.speech_model(live.source.state)
        self.speech = LiveSpeech(live.source.crop.landmarks, live.animator.config.motion, live.fps,
                                 seed=seed, weights=weights or sc.weights, lead_s=lead_s, intensity=sc.intensity,
                                 personal=None if personal is None else personal.for_streaming())
        self.delay_samples = math.ceil(self.speech.latency_s * SAMPLE_RATE - 1e-9)
        self.samples = 0            # samples heard so far
        self.frames = 0             # frames emitted so far
        self._t_audio0: float | None = None
        self._audio_out: list[np.ndarray] = []

    @property
    def latency_s(self) -> float:
        """Algorithmic latency from sound to frame (excludes chunk length and rendering)."""
        return self.speech.latency_s

    @property
    def delay_s(self) -> float:
        """How far the output (sound and frames) runs behind the input: the look-ahead, in whole samples."""
        return self.delay_samples / SAMPLE_RATE

    def push(self, chunk: AudioChunk) -> list[VoiceFrame]:
        """Feed one chunk; returns the frames that became final (their sound: :meth:`take_audio`)."""
        pcm = np.asarray(chunk.pcm, np.float32).reshape(-1)
        if self._t_audio0 is None:
            self._t_audio0 = chunk.t_capture - len(pcm) / SAMPLE_RATE
            pcm = np.concatenate([np.zeros(self.delay_samples, np.float32), pcm])
        self.samples += len(pcm)
        self._audio_out.append(pcm)
        with self.live.timer.time("speech"):
            targets = self.speech.push(pcm)
        return self._render(targets)

    def take_audio(self) -> np.ndarray:
        """The output sound pushed since the last call: the input delayed by :attr:`delay_s` (16 kHz mono)."""
        out = np.concatenate(self._audio_out) if self._audio_out else np.zeros(0, np.float32)
        self._audio_out = []
        return out

    def flush(self) -> list[VoiceFrame]:
        """The frames still held back at the end of the sound."""
        with self.live.timer.time("speech"):
            targets = self.speech.flush()
        return self._render(targets)

    def _render(self, targets: list[np.ndarray]) -> list[VoiceFrame]:
        out = []
        for target in targets:
            t = self.frames / self.live.fps
            heard = (self._t_audio0 or 0.0) + t - self.delay_s  # when the input sound of this frame arrived
            out.append(VoiceFrame(self.live.render_target(target, t_capture=heard), t, heard))
            self.frames += 1
        return out
