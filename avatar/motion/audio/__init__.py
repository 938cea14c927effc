"""Speech → face motion: mouth state from TTS timing, forced alignment or a causal network;
blinks and idle head motion. Entry point: :func:`speech_track`; streaming: :class:`MouthStreamer`."""

from .state import HeadMotion, MouthState
from .track import SpeechTrack, head_rotations, load_audio, speech_track, talk_targets

__all__ = ["HeadMotion", "MouthState", "SpeechTrack", "speech_track", "talk_targets", "head_rotations",
           "load_audio", "MouthStreamer"]


def __getattr__(name: str):
    if name == "MouthStreamer":  # loaded on first use
        from .stream import MouthStreamer

        return MouthStreamer
    raise AttributeError(name)
