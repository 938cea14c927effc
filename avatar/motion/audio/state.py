"""Per-frame mouth and head state shared by the audio sources, the rig and the integrator."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MouthState:
    """Mouth at one frame.

    openness: 0 closed .. 1 wide open (jaw + lips); rounding: -1 spread .. 1 fully rounded;
    closed: probability that the lips touch (>= 0.5 seals them exactly in the rig);
    viseme: index into :data:`avatar.motion.audio.visemes.VISEMES`, -1 when unknown.
    """

    openness: float = 0.0
    rounding: float = 0.0
    closed: float = 0.0
    viseme: int = -1


@dataclass(frozen=True, slots=True)
class HeadMotion:
    """Idle head motion at one frame: yaw, pitch, roll in radians; dx, dy in canonical units (IOD = 1)."""

    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0
    dx: float = 0.0
    dy: float = 0.0
