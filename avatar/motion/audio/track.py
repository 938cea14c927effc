"""``speech_track``: audio and/or text → per-frame mouth, blink and head motion (one entry point).

Sources, best first: ``text`` (espeak-ng speaks it; exact phone timing), ``audio`` +
``transcript`` (PocketSphinx forced alignment; falls back to the network with a warning
when the transcript does not fit), ``audio`` alone (the shipped causal network).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import ConfigError, InputError
from . import idle
from .coarticulation import frame_tracks
from .effort import frame_gains
from .state import LEAD_S, HeadMotion, MouthState, check_lead

MAX_SECONDS = 4 * 3600  # offline arrays above this belong in MouthStreamer


@dataclass(frozen=True, eq=False)
class SpeechTrack:
    """Per-frame face motion from speech, T frames at ``fps`` (frame k at t = k / fps).

    openness, rounding, closed: (T,) float32 mouth state; viseme: (T,) int (-1 unknown);
    blink: (T,) 0..1; head: (T, 5) yaw, pitch, roll (rad), dx, dy (canonical);
    audio: the speech (float32 mono) at ``sample_rate`` for muxing; source: which path ran.
    """

    fps: float
    openness: np.ndarray
    rounding: np.ndarray
    closed: np.ndarray
    viseme: np.ndarray
    blink: np.ndarray
    head: np.ndarray
    audio: np.ndarray
    sample_rate: int
    source: str

    def __len__(self) -> int:
        return len(self.openness)

    def mouth(self, k: int) -> MouthState:
        """Mouth state of frame k."""
        return MouthState(float(self.openness[k]), float(self.rounding[k]), float(self.closed[k]), int(self.viseme[k]))

    def head_motion(self, k: int) -> HeadMotion:
        """Head motion of frame k."""
        return HeadMotion(*(float(v) for v in self.head[k]))


def to_mono_16k(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Any float/int PCM, (N,) or (N, C) / (C, N) with C ≤ 8, any rate → (N',) float32 16 kHz."""
    if not isinstance(sample_rate, (int, np.integer)) or not 1000 <= int(sample_rate) <= 384_000:
        raise InputError(f"sample_rate must be an integer in [1000, 384000] Hz, got {sample_rate!r}")
    x = np.asarray(audio)
    if x.dtype.kind not in "fiu":
        raise InputError(f"audio must be a numeric array, got dtype {x.dtype}")
    if x.dtype.kind in "iu":
        info = np.iinfo(x.dtype)
        x = (x.astype(np.float64) - (info.max + info.min + 1) / 2) / (info.max + 1 - (info.max + info.min + 1) / 2)
    x = x.astype(np.float32)
    if x.ndim == 2:
        x = x.mean(axis=1) if x.shape[1] <= 8 and x.shape[1] < x.shape[0] else x.mean(axis=0)
    elif x.ndim != 1:
        raise InputError(f"audio must be (N,) or (N, channels), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise InputError("audio contains NaN or infinite samples; expected finite PCM")
    if len(x) > MAX_SECONDS * sample_rate:
        raise InputError(f"audio is longer than {MAX_SECONDS // 3600} h; stream it with MouthStreamer instead")
    if int(sample_rate) != 16000 and len(x):
        import soxr  # noqa: PLC0415

        x = soxr.resample(x, int(sample_rate), 16000).astype(np.float32)
    return x


def load_audio(path: str | Path) -> np.ndarray:
    """Decode any audio/video file to (N,) float32 mono 16 kHz (via avatar.media.video.read_audio)."""
    from ...media.video import read_audio  # noqa: PLC0415

    return read_audio(path, 16000, True).astype(np.float32)


def _num_frames(seconds: float, fps: float) -> int:
    return math.ceil(seconds * fps - 1e-9) if seconds > 0 else 0


def _from_states(states: list[MouthState], n: int) -> tuple[np.ndarray, ...]:
    states = states[:n]
    return (np.array([s.openness for s in states], np.float32).reshape(-1),
            np.array([s.rounding for s in states], np.float32).reshape(-1),
            np.array([s.closed for s in states], np.float32).reshape(-1),
            np.array([s.viseme for s in states], np.int64).reshape(-1))


def speech_track(audio: np.ndarray | None, sample_rate: int, fps: float, *, text: str | None = None,
                 transcript: str | None = None, seed: int = 0, voice: str = "en-us", rate: int = 165,
                 blink_rate: float = 17.0, head_amplitude: float = 1.0, weights: str | None = None,
                 lead_s: float = LEAD_S, recognise: bool = False, personal=None) -> SpeechTrack:
    """Per-frame mouth, blink and head motion for speech.

    Args:
        audio: (N,) or (N, C) PCM at ``sample_rate`` (any rate, ints or floats), or None with ``text``.
        fps: render frame rate. text: speak this with espeak-ng (audio must be None).
        transcript: what ``audio`` says (enables forced alignment). seed: blinks and head motion.
        voice, rate: espeak-ng voice and words per minute for ``text``.
        blink_rate: blinks per minute (0 = none). head_amplitude: scales idle head motion (0 = still).
        weights: alternative network weights (default: shipped). personal: a person's own
            mouth model for the network path (:mod:`avatar.motion.audio.personal`).
        lead_s: the mouth runs this far ahead of the sound (seconds), on every path.
        recognise: without a transcript, let PocketSphinx recognise the words and force-align
            them (phones give closures and lip shapes; on real speech it beats the network, see
            docs/talk.md); falls back to the network, with a warning, when nothing fits.
    Returns:
        SpeechTrack; for ``text`` its audio is the synthesised speech (22.05 kHz); otherwise
        the input resampled to 16 kHz mono.
    Raises:
        InputError: neither or both of audio/text, bad audio; EngineUnavailable: espeak-ng
        missing for ``text``; ConfigError: bad fps/rates.
    """
    if not (isinstance(fps, (int, float)) and 1.0 <= fps <= 240.0):
        raise ConfigError(f"fps must be in [1, 240], got {fps!r}")
    if blink_rate < 0 or head_amplitude < 0:
        raise ConfigError(f"blink_rate and head_amplitude must be >= 0, got {blink_rate}, {head_amplitude}")
    lead_s = check_lead(lead_s)
    if (audio is None) == (text is None):
        raise InputError("pass either audio (with an optional transcript) or text to speak, not both and not neither")
    if text is not None:
        from . import espeak  # noqa: PLC0415
        from .phones import from_espeak  # noqa: PLC0415

        u = espeak.synthesize(text, voice=voice, rate=rate)
        pad = np.zeros(int(0.15 * u.sample_rate), np.float32)  # mouth shuts before and after
        out_audio = np.concatenate([pad, u.audio, pad])
        shift = len(pad) / u.sample_rate
        phones = from_espeak([(p.symbol, p.start + shift) for p in u.phones], len(out_audio) / u.sample_rate)
        n = _num_frames(len(out_audio) / u.sample_rate, fps)
        tr = frame_tracks(phones, fps, n, lead_s=lead_s)
        mouth = (tr.openness, tr.rounding, tr.closed, tr.viseme)
        out_sr, source = u.sample_rate, "tts"
        a16 = to_mono_16k(out_audio, u.sample_rate)
    else:
        a16 = to_mono_16k(audio, sample_rate)
        out_audio, out_sr = a16, 16000
        n = _num_frames(len(a16) / 16000.0, fps)
        mouth, source = None, "network"
        if (transcript is not None or recognise) and n > 0:
            from .align import AlignmentError, align  # noqa: PLC0415
            from .align import recognise as recognise_words  # noqa: PLC0415

            try:
                phones = align(a16, transcript if transcript is not None else recognise_words(a16))
                tr = frame_tracks(phones, fps, n, lead_s=lead_s)
                mouth = (tr.openness, tr.rounding, tr.closed, tr.viseme)
                source = "alignment" if transcript is not None else "recognition"
            except AlignmentError as exc:
                warnings.warn(f"{exc}; using the audio-only network instead", stacklevel=2)
        if mouth is None:
            if n == 0:
                mouth = (np.zeros(0, np.float32),) * 3 + (np.zeros(0, np.int64),)
            else:
                from .stream import network_frames  # noqa: PLC0415

                mouth = _from_states(network_frames(a16, fps, weights, lead_s, personal), n)
    if source != "network" and n:  # the network path applies the same gain as it streams
        mouth = (mouth[0] * frame_gains(a16, fps, n, lead_s).astype(np.float32),) + tuple(mouth[1:])
    energy = idle.frame_energy(a16, fps, n)
    return SpeechTrack(float(fps), *mouth, idle.blinks(n, fps, seed, blink_rate),
                       idle.head_motion(energy, fps, seed, head_amplitude), out_audio.astype(np.float32), int(out_sr), source)


def talk_targets(neutral_canonical: np.ndarray, track: SpeechTrack, rig=None) -> np.ndarray:
    """(T, 478, 3) canonical landmarks: the portrait's neutral face with each frame's mouth and blink.

    ``rig`` defaults to ``MouthRig(neutral_canonical)``; head pose is separate (:func:`head_rotations`).
    """
    from ..rig import MouthRig  # noqa: PLC0415

    rig = rig or MouthRig(neutral_canonical)
    out = np.empty((len(track), 478, 3), np.float64)
    for k in range(len(track)):
        out[k] = rig.landmarks(track.mouth(k), float(track.blink[k]))
    return out


def rotation_matrices(yaw: np.ndarray, pitch: np.ndarray, roll: np.ndarray) -> np.ndarray:
    """(T,) angles in radians → (T, 3, 3) rotations R = Rz(roll) · Ry(yaw) · Rx(pitch), canonical frame."""
    yaw, pitch, roll = (np.asarray(a, np.float64) for a in (yaw, pitch, roll))
    cy, sy, cp, sp, cr, sr = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    one, zero = np.ones_like(yaw), np.zeros_like(yaw)
    rx = np.stack([np.stack([one, zero, zero], -1), np.stack([zero, cp, -sp], -1), np.stack([zero, sp, cp], -1)], -2)
    ry = np.stack([np.stack([cy, zero, sy], -1), np.stack([zero, one, zero], -1), np.stack([-sy, zero, cy], -1)], -2)
    rz = np.stack([np.stack([cr, -sr, zero], -1), np.stack([sr, cr, zero], -1), np.stack([zero, zero, one], -1)], -2)
    return rz @ ry @ rx


def head_rotations(track: SpeechTrack) -> tuple[np.ndarray, np.ndarray]:
    """(T, 3, 3) rotations R = Rz(roll) · Ry(yaw) · Rx(pitch) and (T, 2) translations (dx, dy), canonical."""
    return rotation_matrices(track.head[:, 0], track.head[:, 1], track.head[:, 2]), track.head[:, 3:5].astype(np.float64)
