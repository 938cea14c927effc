"""Speech motion → target landmarks of one portrait, offline (:class:`SpeechDriver`) and live (:class:`LiveSpeech`).

Mouth and blink come from the rig in the portrait's pose-free canonical frame; idle head
motion is applied as a head-pose change through :meth:`MotionTransfer.compose`, exactly as a
driving video's head motion would be, so speech and video share one path to the engines.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ...config import MotionConfig
from ...errors import NoFaceError
from ..rig import MouthRig, RigConfig
from ..transfer import MotionTransfer
from . import idle
from .state import LEAD_S, MouthState
from .track import SpeechTrack, rotation_matrices


class SpeechDriver:
    """Mouth state, blink and head motion → (478, 3) target landmarks in source-crop pixels.

    Args:
        source_landmarks: (478, 3) landmarks of the portrait crop (``PreparedSource.crop.landmarks``).
        motion: uses ``expression_scale`` (scales mouth and blink offsets).
        rig: mouth-rig amplitudes.
    """

    def __init__(self, source_landmarks: np.ndarray, motion: MotionConfig | None = None,
                 rig: RigConfig | None = None) -> None:
        motion = motion or MotionConfig()
        self.transfer = MotionTransfer(np.asarray(source_landmarks, np.float64), motion)
        self.rig = MouthRig(self.transfer.source_canonical, rig or RigConfig())

    def target(self, mouth: MouthState, blink: float, head: np.ndarray) -> np.ndarray:
        """One frame. head: (5,) yaw, pitch, roll (rad), dx, dy (canonical units). Returns (478, 3) float32."""
        move = np.array([float(head[3]), float(head[4]), 0.0])
        return self.posed(mouth, blink, rotation_matrices(head[0:1], head[1:2], head[2:3])[0], 1.0, move)

    def posed(self, mouth: MouthState, blink: float, rotation: np.ndarray, scale_ratio: float,
              translation: np.ndarray) -> np.ndarray:
        """One frame with an explicit head-pose change (as :meth:`MotionTransfer.deltas` returns). (478, 3) float32."""
        expression = self.rig.landmarks(mouth, blink) - self.transfer.source_canonical
        return self.transfer.compose(rotation, scale_ratio, translation, expression).astype(np.float32)

    def targets(self, track: SpeechTrack, head_landmarks: list[np.ndarray | None] | None = None,
                fps: float = 25.0) -> Iterator[np.ndarray]:
        """Every frame of an offline :class:`SpeechTrack`, in order.

        head_landmarks: a driving video's landmarks per frame (None where no face); when given,
        the head follows that video (looped, smoothed, relative to its first face) instead of
        the idle motion, while mouth and blinks follow the speech.
        """
        if head_landmarks is None:
            for k in range(len(track)):
                yield self.target(track.mouth(k), float(track.blink[k]), track.head[k])
            return
        found = [lm for lm in head_landmarks if lm is not None]
        if not found:
            raise NoFaceError("no face found in any frame of the head-motion video")
        head = MotionTransfer(self.transfer.source, self.transfer.config, fps)
        head.set_reference(found[0])
        last = found[0]
        for k in range(len(track)):
            lm = head_landmarks[k % len(head_landmarks)]
            last = lm if lm is not None else last  # no face: hold the last pose
            rotation, scale, translation, _ = head.deltas(last)
            yield self.posed(track.mouth(k), float(track.blink[k]), rotation, scale, translation)


class LiveSpeech:
    """Streaming speech → target landmarks: feed 16 kHz PCM chunks, get the frames that became final.

    Latency is that of :class:`MouthStreamer` (142.5 ms at 25 fps with the default 60 ms lip lead, plus the chunk length);
    memory is bounded whatever the stream length.

    Args:
        source_landmarks: (478, 3) portrait-crop landmarks. motion: expression scale.
        fps: output frame rate. seed: blinks and head motion. weights: audio-to-mouth weights.
        blink_rate: blinks per minute. head_amplitude: idle head motion scale (0 = still).
        lead_s: the mouth runs this far ahead of the sound (adds to the latency).
        intensity: mouth movement scale (see :class:`~avatar.motion.rig.RigConfig`).
        personal: the person's own mouth model, where the avatar has one
            (:class:`~avatar.motion.audio.personal.PersonalMouth`).
    """

    def __init__(self, source_landmarks: np.ndarray, motion: MotionConfig | None = None, fps: float = 25.0, *,
                 seed: int = 0, weights: str | None = None, blink_rate: float = 17.0,
                 head_amplitude: float = 1.0, lead_s: float = LEAD_S, intensity: float = 1.0,
                 personal=None) -> None:
        from .stream import MouthStreamer  # noqa: PLC0415

        self.driver = SpeechDriver(source_landmarks, motion, RigConfig(intensity=intensity))
        self.fps = float(fps)
        self.mouth = MouthStreamer(fps, weights, lead_s, personal)
        self.blinks = idle.BlinkStream(fps, seed, blink_rate)
        self.head = idle.HeadStream(fps, seed, head_amplitude)
        self._hop = 16000.0 / self.fps
        self._pending = np.zeros(0, np.float32)  # samples of frames whose energy is not known yet
        self._pending_start = 0  # absolute sample index of _pending[0]
        self._energy: dict[int, float] = {}
        self._next_energy = 0
        self._emitted = 0

    @property
    def latency_s(self) -> float:
        """Algorithmic latency from sound to frame, in seconds (excludes the chunk length)."""
        return self.mouth.latency_s

    def _energies(self, pcm: np.ndarray, final: bool) -> None:
        """Energy of every frame whose samples have all arrived (or, at the end, any left)."""
        self._pending = np.concatenate([self._pending, pcm])
        end = self._pending_start + len(self._pending)
        while True:
            k = self._next_energy
            a, b = int(k * self._hop), int((k + 1) * self._hop)
            if b > end and not (final and a < end):
                break
            self._energy[k] = idle.energy_of(self._pending[a - self._pending_start: b - self._pending_start])
            self._next_energy += 1
        cut = int(self._next_energy * self._hop) - self._pending_start
        if cut > 0:
            self._pending = self._pending[cut:]
            self._pending_start += cut

    def _frames(self, states: list[MouthState]) -> list[np.ndarray]:
        out = []
        for m in states:
            energy = self._energy.pop(self._emitted, 0.0)
            out.append(self.driver.target(m, self.blinks.step(), self.head.step(energy)))
            self._emitted += 1
        return out

    def push(self, pcm16k: np.ndarray) -> list[np.ndarray]:
        """Feed float32 mono 16 kHz samples; returns (478, 3) targets for the frames now final."""
        x = np.asarray(pcm16k, np.float32).reshape(-1)
        states = self.mouth.push(x)
        self._energies(x, final=False)
        return self._frames(states)

    def flush(self) -> list[np.ndarray]:
        """End of stream: the remaining frames."""
        states = self.mouth.flush()
        self._energies(np.zeros(0, np.float32), final=True)
        return self._frames(states)


__all__ = ["SpeechDriver", "LiveSpeech"]
