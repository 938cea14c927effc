"""Frozen configuration dataclasses. Building a config reads no files.

Change a config with :func:`dataclasses.replace`; invalid values raise :class:`ConfigError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .errors import ConfigError


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


@dataclass(frozen=True, slots=True)
class FaceConfig:
    """Face detection and cropping.

    crop_scale: side of the square crop relative to the face box (≈2 keeps hair and chin).
    vertical_offset: shift of the crop centre, in face-box heights; negative moves it up.
    size: internal working size of the crop in pixels (256 or 512 are typical).
    face_index: which face to use when several are found (0 = largest); None = largest,
        but refuse ambiguous images only when ``require_single`` is set.
    """

    crop_scale: float = 2.0
    vertical_offset: float = -0.1
    size: int = 512
    face_index: int | None = None
    require_single: bool = False
    min_confidence: float = 0.5
    backend: Literal["mediapipe", "face_alignment"] = "mediapipe"

    def __post_init__(self) -> None:
        _check(1.0 <= self.crop_scale <= 4.0, f"crop_scale must be in [1, 4], got {self.crop_scale}")
        _check(-1.0 <= self.vertical_offset <= 1.0, f"vertical_offset must be in [-1, 1], got {self.vertical_offset}")
        _check(64 <= self.size <= 1024 and self.size % 8 == 0, f"size must be a multiple of 8 in [64, 1024], got {self.size}")
        _check(self.face_index is None or self.face_index >= 0, f"face_index must be >= 0, got {self.face_index}")
        _check(0.0 < self.min_confidence < 1.0, f"min_confidence must be in (0, 1), got {self.min_confidence}")


@dataclass(frozen=True, slots=True)
class SmoothingConfig:
    """One-Euro filter settings (Casiez et al. 2012); ``enabled=False`` passes data through.

    min_cutoff: Hz at rest (lower = less jitter, more lag); beta: speed coefficient
    (higher = less lag on fast motion).
    """

    enabled: bool = True
    min_cutoff: float = 1.5
    beta: float = 0.5
    d_cutoff: float = 1.0

    def __post_init__(self) -> None:
        _check(self.min_cutoff > 0, f"min_cutoff must be > 0, got {self.min_cutoff}")
        _check(self.beta >= 0, f"beta must be >= 0, got {self.beta}")
        _check(self.d_cutoff > 0, f"d_cutoff must be > 0, got {self.d_cutoff}")


@dataclass(frozen=True, slots=True)
class MotionConfig:
    """Motion transfer from the driver to the portrait.

    mode: "relative" applies the driver's change since its reference frame to the
        source's own pose and shape; "absolute" copies the driver's pose and expression.
    adapt_scale: scale the driver's movements by the ratio of face sizes.
    best_frame: use the driving frame closest to the source as the reference (files only;
        a driver whose first frame has its mouth open would otherwise keep the portrait's shut).
    expression_scale: multiplies expression offsets (1 = as driven).
    max_turn: when above 0, the furthest in degrees the head turns out of the picture's plane
        away from the portrait's own pose (yaw and pitch together; roll is free). Turns up to
        80 % of it pass unchanged and larger ones approach it smoothly; with a whole driving file
        known up front, the reference pose first moves so the clip's turns stay within 80 %. A
        three-quarter portrait then stays nearer its own pose instead of being turned past
        frontal (30 suits one); off by default, as it costs yaw and eye tracking (docs/face.md).
    """

    mode: Literal["relative", "absolute"] = "relative"
    adapt_scale: bool = True
    best_frame: bool = True
    expression_scale: float = 1.0
    max_turn: float = 0.0
    pose_smoothing: SmoothingConfig = field(default_factory=lambda: SmoothingConfig(min_cutoff=6.0, beta=200.0))
    expression_smoothing: SmoothingConfig = field(default_factory=lambda: SmoothingConfig(min_cutoff=8.0, beta=400.0))

    def __post_init__(self) -> None:
        _check(self.mode in ("relative", "absolute"), f"mode must be 'relative' or 'absolute', got {self.mode!r}")
        _check(0.0 <= self.expression_scale <= 3.0, f"expression_scale must be in [0, 3], got {self.expression_scale}")
        _check(0.0 <= self.max_turn <= 180.0, f"max_turn must be in [0, 180] degrees (0: no limit), got {self.max_turn}")


@dataclass(frozen=True, slots=True)
class RenderConfig:
    """Which engine renders, and where.

    engine: "warp" (default, no weights), "fomm" (needs ``checkpoint``), "onnx" (needs ``model_dir``),
    "keyframes" (needs ``pack``; chosen by itself for a video avatar, see docs/clone.md).
    int8: the onnx engine runs the export's int8 generator (``avatar export onnx --int8``; CPU).
    shading: the warp engine carries the driver's change in shading onto the face (relative
    mode, driving video or webcam).
    detail: the warp engine adds the fine motion of the driver's skin that the landmarks miss,
    measured by optical flow (relative mode, driving video or webcam).
    layers: the warp engine splits the portrait into a still background plate and a moving
    person with a soft alpha matte (False: one warp of the whole crop, as before).
    threads: frames rendered at once by an engine whose render is thread-safe (the warp);
    0: one per usable core, at most 4. Batch workers set their share of the cores.
    """

    engine: str = "warp"
    device: str = "cpu"
    half: bool = False
    int8: bool = False
    batch_size: int = 1
    checkpoint: str | None = None
    model_dir: str | None = None
    providers: tuple[str, ...] = ()
    strict_providers: bool = False
    mouth_interior: bool = True
    shading: bool = True
    detail: bool = True
    pack: str | None = None  # the avatar pack a video avatar renders from (engine "keyframes")
    layers: bool = True
    threads: int = 0

    def __post_init__(self) -> None:
        _check(bool(self.engine), "engine must be a non-empty name")
        _check(0 <= self.threads <= 64, f"threads must be in [0, 64], got {self.threads}")
        _check(1 <= self.batch_size <= 256, f"batch_size must be in [1, 256], got {self.batch_size}")
        _check(not self.int8 or self.engine == "onnx", f"int8 is for the onnx engine (--engine onnx --int8), not {self.engine!r}")


@dataclass(frozen=True, slots=True)
class OutputConfig:
    """Output video.

    max_size: longest side of the output in pixels (the source is downscaled above it).
    paste_back: blend the animated crop into the full portrait; False writes the crop.
    restore_detail: paste-back puts back, through the warp's map, the portrait's fine detail that
        the crop cannot hold (a few ms a frame, more at large outputs; False for speed).
    preview_size: longest side of GIF / WebP previews (frames are downscaled to it before labelling).
    """

    max_size: int = 1920
    paste_back: bool = True
    restore_detail: bool = True
    crf: int = 18
    audio: bool = True
    max_frames: int | None = None
    fps: float | None = None
    visible_label: bool = False
    preview_size: int = 640

    def __post_init__(self) -> None:
        _check(64 <= self.preview_size <= 4096, f"preview_size must be in [64, 4096], got {self.preview_size}")
        _check(64 <= self.max_size <= 8192, f"max_size must be in [64, 8192], got {self.max_size}")
        _check(0 <= self.crf <= 51, f"crf must be in [0, 51], got {self.crf}")
        _check(self.max_frames is None or self.max_frames > 0, f"max_frames must be > 0, got {self.max_frames}")
        _check(self.fps is None or 1 <= self.fps <= 240, f"fps must be in [1, 240], got {self.fps}")


@dataclass(frozen=True, slots=True)
class SpeechConfig:
    """Speech-driven animation (``avatar talk``, voice mode of ``avatar live``).

    fps: output frame rate. seed: blinks and idle head motion. voice, rate: espeak-ng voice
    and words per minute for text. blink_rate: blinks per minute (0 = none). head_amplitude:
    idle head motion scale (0 = still). weights: audio-to-mouth weights (None = shipped).
    lead_s: how far the lips run ahead of the sound, seconds (real speakers shape the mouth
    tens of ms before it sounds; in streaming this adds to the latency and the output audio
    is delayed to match). intensity: scales the mouth's movement relative to the portrait's
    own face (1 = a typical speaker's range; 0 = still). recognise: audio without a transcript
    goes through PocketSphinx word recognition + forced alignment (offline only; the network
    when nothing fits).
    """

    fps: float = 25.0
    seed: int = 0
    voice: str = "en-us"
    rate: int = 165
    blink_rate: float = 17.0
    head_amplitude: float = 1.0
    weights: str | None = None
    lead_s: float = 0.06
    intensity: float = 1.0
    recognise: bool = False

    def __post_init__(self) -> None:
        _check(0.0 <= self.lead_s <= 0.25, f"lead_s must be in [0, 0.25] s, got {self.lead_s}")
        _check(0.0 <= self.intensity <= 3.0, f"intensity must be in [0, 3], got {self.intensity}")
        _check(1.0 <= self.fps <= 120.0, f"speech fps must be in [1, 120], got {self.fps}")
        _check(80 <= self.rate <= 450, f"speech rate must be in [80, 450] words per minute, got {self.rate}")
        _check(0.0 <= self.blink_rate <= 60.0, f"blink_rate must be in [0, 60] per minute, got {self.blink_rate}")
        _check(0.0 <= self.head_amplitude <= 5.0, f"head_amplitude must be in [0, 5], got {self.head_amplitude}")


@dataclass(frozen=True, slots=True)
class CloneConfig:
    """Cloning an avatar from a video (``avatar clone VIDEO``).

    min_seconds: shortest usable clip. min_face: smallest median face height (pixels).
    min_found: fraction of tracked frames that must show the face. max_multi: fraction of
    tracked frames allowed to show more than one face. track_fps: frames tracked per second
    (every n-th frame, so a clone takes less than the clip's duration). max_keyframes: cap on
    keyframes (pack size). crop_size: keyframe crop side (pixels; smaller when the clip is).
    keep_footage: store the clip in the pack (the base footage talking avatars play).
    personal_mouth: fit this person's own audio-to-mouth model from the clip's sound
    (:mod:`avatar.motion.audio.personal`); used where it beats the generic one on held-out footage.
    """

    min_seconds: float = 10.0
    min_face: int = 80
    min_found: float = 0.5
    max_multi: float = 0.1
    track_fps: float = 15.0
    max_keyframes: int = 300
    crop_size: int = 512
    keep_footage: bool = True
    personal_mouth: bool = True

    def __post_init__(self) -> None:
        _check(self.min_seconds >= 0, f"min_seconds must be >= 0, got {self.min_seconds}")
        _check(0.0 < self.min_found <= 1.0, f"min_found must be in (0, 1], got {self.min_found}")
        _check(0.0 <= self.max_multi <= 1.0, f"max_multi must be in [0, 1], got {self.max_multi}")
        _check(1.0 <= self.track_fps <= 120.0, f"track_fps must be in [1, 120], got {self.track_fps}")
        _check(1 <= self.max_keyframes <= 5000, f"max_keyframes must be in [1, 5000], got {self.max_keyframes}")
        _check(64 <= self.crop_size <= 1024 and self.crop_size % 8 == 0,
               f"crop_size must be a multiple of 8 in [64, 1024], got {self.crop_size}")


@dataclass(frozen=True, slots=True)
class AvatarConfig:
    """Everything one animation needs; pass to :class:`avatar.Animator`."""

    face: FaceConfig = field(default_factory=FaceConfig)
    motion: MotionConfig = field(default_factory=MotionConfig)
    render: RenderConfig = field(default_factory=RenderConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    speech: SpeechConfig = field(default_factory=SpeechConfig)
