"""Per-frame mouth and head state shared by the audio sources, the rig and the integrator."""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import ConfigError

from ...config import SpeechConfig

# Lips lead the sound at onsets (audio-visual speech studies measure tens of ms up to ~150 ms):
# every mouth track shows at time t the mouth of the sound at t + LEAD_S. 60 ms gave the best
# mean zero-lag correlation over the real dev clips among 0 / 60 / 100 ms.
LEAD_S = SpeechConfig().lead_s
MAX_LEAD_S = 0.25


def check_lead(lead_s: float) -> float:
    """``lead_s`` as a float, or ConfigError outside [0, MAX_LEAD_S] seconds."""
    if not isinstance(lead_s, (int, float)) or not 0.0 <= float(lead_s) <= MAX_LEAD_S:
        raise ConfigError(f"lip lead must be in [0, {MAX_LEAD_S}] s, got {lead_s!r}")
    return float(lead_s)


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
