"""Video and audio in and out with PyAV (FFmpeg), no ffmpeg binary needed.

Conventions: frames are (H, W, 3) uint8 RGB, upright (the container's rotation applied);
audio is float32 in [-1, 1]; times are seconds; frame ``i`` of a written video is shown
at ``i / fps`` and written audio starts at t = 0 with it.

Colour: frames are converted to YUV 4:2:0 with the BT.709 matrix (limited range) and the
stream is tagged BT.709, which is what browsers and players assume for untagged video.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np
from av.video.reformatter import ColorRange, Colorspace, Interpolation, VideoReformatter

from ..errors import AvatarError, ConfigError, InputError, ShapeError
from .atomic import atomic_path

__all__ = [
    "AudioSpec",
    "FrameReader",
    "VideoInfo",
    "VideoWriter",
    "apply_rotation",
    "has_audio",
    "probe_video",
    "read_audio",
    "read_frames",
]

PathLike = str | os.PathLike

# Sample rates the AAC encoder accepts; other rates are resampled to 48 kHz.
_AAC_RATES = frozenset({96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350})
# Opus accepts only these; other rates are resampled to 48 kHz.
_OPUS_RATES = frozenset({48000, 24000, 16000, 12000, 8000})
# suffix → (muxer, video encoder, audio encoder, audio rates)
_CONTAINERS = {
    ".mp4": ("mp4", "libx264", "aac", _AAC_RATES),
    ".m4v": ("mp4", "libx264", "aac", _AAC_RATES),
    ".mov": ("mov", "libx264", "aac", _AAC_RATES),
    ".webm": ("webm", "libvpx-vp9", "libopus", _OPUS_RATES),
}
# VP9's constant-quality scale (0-63) sits above x264's: x264 CRF 18 ≈ VP9 CRF 31 (YouTube's 1080p value).
_VP9_CRF_OFFSET = 13
# codec threads per decoder / encoder (unset or 0: FFmpeg's choice, one per core); batch workers
# given a share of the cores set it, so two workers do not run two encoders of all cores each
CODEC_THREADS_ENV = "AVATAR_CODEC_THREADS"
_X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo")
# swscale's defaults round carelessly and upsample chroma roughly (mean abs error ≈3 on
# an RGB→YUV→RGB round trip); these flags bring it to ≈0.6 for ≈0.5 ms per 512² frame.
_TO_YUV_FLAGS = Interpolation.BILINEAR | Interpolation.ACCURATE_RND
_TO_RGB_FLAGS = Interpolation.BILINEAR | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT
# Demuxers that read still images; a driving "video" in one of these is a mistake.
_STILL_FORMATS = ("image2", "_pipe")


def _err_text(exc: BaseException) -> str:
    return str(getattr(exc, "strerror", None) or exc)


# --------------------------------------------------------------------------- reading


def _open_input(path: PathLike, what: str = "video") -> tuple[Path, av.container.InputContainer]:
    """Open a media file for reading; every failure is an InputError naming the file."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: {what} file not found; check the path")
    if path.is_dir():
        raise InputError(f"{path} is a folder; expected a {what} file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: {what} file is empty (0 bytes)")
    try:
        container = av.open(str(path), mode="r", metadata_errors="replace")
    except (av.FFmpegError, OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{path} is not a readable {what} ({_err_text(exc)}); expected e.g. MP4, MOV, WebM, WAV, MP3") from None
    return path, container


def _video_stream(path: Path, container: av.container.InputContainer) -> av.video.stream.VideoStream:
    if not container.streams.video:
        container.close()
        raise InputError(f"{path} has no video stream; expected a video file")
    fmt = container.format.name or ""
    if fmt == _STILL_FORMATS[0] or fmt.endswith(_STILL_FORMATS[1]):
        container.close()
        raise InputError(f"{path} is a still image, not a video; pass it as the source portrait instead")
    stream = container.streams.video[0]
    _thread(stream)
    return stream


def _thread(stream: av.stream.Stream) -> None:
    """Frame and slice threads for a codec, as many as :data:`CODEC_THREADS_ENV` allows."""
    stream.thread_type = "AUTO"
    try:
        n = int(os.environ.get(CODEC_THREADS_ENV, "0"))
    except ValueError:
        n = 0
    if n > 0:
        stream.codec_context.thread_count = n


def _frames_present(path: Path, stream: av.video.stream.VideoStream) -> tuple[int, int] | None:
    """(frames whose data is in the file, frames in the index) if the file is cut short, else None.

    A half-copied MP4 keeps its full index (moov) but lacks media data; FFmpeg then just
    stops early, so compare the index with the file size to say so.
    """
    try:
        entries = stream.index_entries
        total = len(entries)
        if total == 0:
            return None
        size = path.stat().st_size
        present = sum(1 for i in range(total) if entries[i].pos + entries[i].size <= size)
    except Exception:  # an index we cannot read is no evidence of truncation
        return None
    return (present, total) if present < total else None


def apply_rotation(image: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate an (H, W, C) frame counter-clockwise by ``degrees`` (a multiple of 90).

    ``degrees`` follows FFmpeg's display matrix (``VideoFrame.rotation``): the angle the
    stored frame must be turned counter-clockwise to display upright. Phones that record
    in portrait store landscape frames with -90 (i.e. 270).
    """
    k = round(degrees / 90.0) % 4
    return np.ascontiguousarray(np.rot90(image, k)) if k else image


def _norm_rotation(degrees: float) -> int:
    return int(round(degrees / 90.0) % 4) * 90


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe_video` found.

    width, height: displayed size, i.e. after the rotation is applied.
    fps: average frame rate; frame_count: exact when the container indexes frames,
    else duration * fps rounded; rotation: 0/90/180/270, counter-clockwise, as applied
    by :func:`read_frames`.
    """

    path: Path
    width: int
    height: int
    fps: float
    frame_count: int
    duration: float
    has_audio: bool
    rotation: int


def probe_video(path: PathLike) -> VideoInfo:
    """Describe a video file; decodes its first frame to check that it has one.

    Raises:
        InputError: missing/empty/unreadable file, no video stream, no decodable frame.
    """
    path, container = _open_input(path)
    with container:
        stream = _video_stream(path, container)
        try:
            first = next(container.decode(stream), None)
        except av.FFmpegError as exc:
            raise InputError(f"{path}: cannot decode the first video frame ({_err_text(exc)})") from None
        if first is None:
            raise InputError(f"{path} has no video frames; expected at least one")
        cut = _frames_present(path, stream)
        if cut is not None:
            raise InputError(
                f"{path} is truncated: only {cut[0]} of {cut[1]} video frames are in the file; re-copy or re-export it"
            )
        rotation = _norm_rotation(first.rotation)
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate or rate <= 0:
            raise InputError(f"{path}: cannot determine the frame rate of its video stream")
        fps = float(rate)
        duration = 0.0
        if stream.duration and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif container.duration:
            duration = container.duration / av.time_base
        frame_count = int(stream.frames) if stream.frames and stream.frames > 0 else max(1, round(duration * fps))
        if duration <= 0:
            duration = frame_count / fps
        w, h = first.width, first.height
        if rotation in (90, 270):
            w, h = h, w
        return VideoInfo(
            path=path,
            width=w,
            height=h,
            fps=fps,
            frame_count=frame_count,
            duration=duration,
            has_audio=bool(container.streams.audio),
            rotation=rotation,
        )


class FrameReader(Iterator[np.ndarray]):
    """Iterator over a video's frames as (H, W, 3) uint8 RGB, rotation applied.

    Opens the file on construction (so a bad path fails at once) and closes it when
    exhausted, on error, on :meth:`close` or when used as a context manager. Frames come
    in decode (= presentation) order, so variable frame rate needs nothing special.
    """

    def __init__(self, path: PathLike, max_frames: int | None = None) -> None:
        if max_frames is not None and max_frames < 1:
            raise ConfigError(f"max_frames must be >= 1 or None, got {max_frames}")
        self.path, self._container = _open_input(path)
        self._stream = _video_stream(self.path, self._container)
        self._frames = self._container.decode(self._stream)
        self._reformatter = VideoReformatter()
        self._max = max_frames
        self.index = 0  # frames yielded so far
        self.time = 0.0  # presentation time (s) of the last frame yielded: variable frame rate needs it
        self._closed = False

    def __iter__(self) -> FrameReader:
        return self

    def __next__(self) -> np.ndarray:
        if self._closed or (self._max is not None and self.index >= self._max):
            self.close()
            raise StopIteration
        try:
            frame = next(self._frames)
        except StopIteration:
            cut = _frames_present(self.path, self._stream)  # before close(): needs the open stream
            self.close()
            if self.index == 0:
                raise InputError(f"{self.path} has no decodable video frames; expected at least one") from None
            if cut is not None:
                raise InputError(
                    f"{self.path} is truncated: decoding stopped at frame {self.index} of {cut[1]}; re-copy or re-export it"
                ) from None
            raise
        except (av.FFmpegError, OSError) as exc:
            self.close()
            raise InputError(
                f"{self.path}: decoding failed at frame {self.index} ({_err_text(exc)}); the file may be truncated or corrupt"
            ) from None
        rgb = self._reformatter.reformat(frame, format="rgb24", interpolation=_TO_RGB_FLAGS).to_ndarray()
        self.index += 1
        self.time = float(frame.time) if frame.time is not None else self.time
        return apply_rotation(rgb, frame.rotation)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            with contextlib.suppress(Exception):
                self._container.close()

    def __enter__(self) -> FrameReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


def read_frames(path: PathLike, max_frames: int | None = None) -> FrameReader:
    """Frames of the first video stream as (H, W, 3) uint8 RGB, upright, in order.

    Raises InputError for a bad file at call time, if the file yields no frame, and for a
    decode error mid-file (naming the frame index).
    """
    return FrameReader(path, max_frames=max_frames)


def has_audio(path: PathLike) -> bool:
    """True if the media file has at least one audio stream."""
    path, container = _open_input(path, what="media")
    with container:
        return bool(container.streams.audio)


def iter_audio(path: PathLike, sample_rate: int = 16000, mono: bool = True) -> Iterator[np.ndarray]:
    """Decode the first audio stream of any media file chunk by chunk (bounded memory).

    Yields float32 in [-1, 1] chunks at ``sample_rate``: (n,) if ``mono`` (channels averaged),
    else (n, C). Sample 0 is the first sample the decoder outputs (encoder priming is skipped
    as the container says).

    Raises:
        InputError: missing/unreadable file, no audio stream, corrupt data, no audio samples.
    """
    if not 1000 <= sample_rate <= 384_000:
        raise ConfigError(f"sample_rate must be in [1000, 384000], got {sample_rate}")
    path, container = _open_input(path, what="audio")
    with container:
        if not container.streams.audio:
            raise InputError(f"{path} has no audio stream; expected a file with sound")
        stream = container.streams.audio[0]
        # Keep the channels and average them here: swresample's own downmix adds L and R
        # at -3 dB each, which changes the level and can clip. Packed float output:
        # to_ndarray() is (1, n * C), interleaved.
        resampler = av.AudioResampler(format="flt", layout=None, rate=sample_rate)
        produced = 0

        def convert(out: av.AudioFrame) -> np.ndarray:
            channels = out.layout.nb_channels
            x = np.clip(out.to_ndarray().reshape(-1, channels).astype(np.float32, copy=False), -1.0, 1.0)
            return x.mean(axis=1, dtype=np.float32) if mono else x

        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunk = convert(out)
                    produced += len(chunk)
                    yield chunk
            for out in resampler.resample(None):
                chunk = convert(out)
                produced += len(chunk)
                yield chunk
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise InputError(f"{path}: decoding audio failed ({_err_text(exc)}); the file may be truncated or corrupt") from None
        if produced == 0:
            raise InputError(f"{path}: audio stream has no samples; expected some sound")


def read_audio(path: PathLike, sample_rate: int = 16000, mono: bool = True) -> np.ndarray:
    """Decode the first audio stream of any media file, resampled to ``sample_rate``.

    Returns:
        float32 in [-1, 1]: (N,) if ``mono`` (channels averaged), else (N, C) with the
        file's channels (see :func:`iter_audio`).

    Raises:
        InputError: missing/unreadable file, no audio stream, no audio samples.
    """
    return np.concatenate(list(iter_audio(path, sample_rate, mono)), axis=0)


def audio_duration(path: PathLike) -> float | None:
    """Duration in seconds of the first audio stream as the container states it (None if unknown)."""
    path, container = _open_input(path, what="audio")
    with container:
        if not container.streams.audio:
            raise InputError(f"{path} has no audio stream; expected a file with sound")
        stream = container.streams.audio[0]
        if stream.duration is not None and stream.time_base:
            return float(stream.duration * stream.time_base)
        if container.duration is not None:
            return container.duration / 1_000_000
    return None


def _as_rate(fps: float | Fraction) -> Fraction:
    """Frame rate as an exact fraction; values near 24/30/60 × 1000/1001 snap to NTSC rates."""
    if isinstance(fps, Fraction):
        rate = fps
    else:
        try:
            f = float(fps)
        except (TypeError, ValueError):
            raise ConfigError(f"fps must be a number, got {fps!r}") from None
        if not math.isfinite(f):
            raise ConfigError(f"fps must be finite, got {fps!r}")
        rate = Fraction(f).limit_denominator(1001)
        for base in (24, 30, 48, 60, 120, 240):
            ntsc = Fraction(base * 1000, 1001)
            if abs(f - float(ntsc)) < 2e-3:
                rate = ntsc
                break
    if not 1 <= rate <= 240:
        raise ConfigError(f"fps must be in [1, 240], got {float(rate):g}")
    return rate


@dataclass(frozen=True, eq=False)
class AudioSpec:
    """Audio to mux into a :class:`VideoWriter`: exactly one of ``source`` or ``samples``.

    source: a media file (e.g. the driving video) whose first audio stream is transcoded.
    samples: (N,) mono or (N, 2) stereo PCM, float in [-1, 1] or int16, at ``sample_rate``.
    The audio is encoded to AAC, starts with video frame 0 and is cut at the video's end.
    """

    source: Path | None = None
    samples: np.ndarray | None = None
    sample_rate: int | None = None
    bitrate: int = 128_000

    def __post_init__(self) -> None:
        if (self.source is None) == (self.samples is None):
            raise ConfigError("AudioSpec needs exactly one of source= (a media file) or samples= (a PCM array)")
        if self.source is not None:
            object.__setattr__(self, "source", Path(self.source))
        else:
            s = np.asarray(self.samples)
            if not (s.ndim == 1 or (s.ndim == 2 and s.shape[1] in (1, 2))):
                raise ShapeError(f"audio samples must be (N,) or (N, 1|2), got shape {s.shape}")
            if not (np.issubdtype(s.dtype, np.floating) or s.dtype == np.int16):
                raise ShapeError(f"audio samples must be float in [-1, 1] or int16, got {s.dtype}")
            if self.sample_rate is None or not 1000 <= int(self.sample_rate) <= 384_000:
                raise ConfigError(f"sample_rate must be in [1000, 384000] with samples=, got {self.sample_rate}")
        if not 16_000 <= self.bitrate <= 512_000:
            raise ConfigError(f"audio bitrate must be in [16000, 512000], got {self.bitrate}")

    @classmethod
    def from_file(cls, path: PathLike, bitrate: int = 128_000) -> AudioSpec:
        return cls(source=Path(path), bitrate=bitrate)

    @classmethod
    def from_array(cls, samples: np.ndarray, sample_rate: int, bitrate: int = 128_000) -> AudioSpec:
        return cls(samples=samples, sample_rate=int(sample_rate), bitrate=bitrate)


class _PcmSource:
    """Yields (C, n) float32 chunks at ``rate`` from an in-memory array."""

    def __init__(self, spec: AudioSpec, rates: frozenset[int] = _AAC_RATES) -> None:
        s = np.asarray(spec.samples)
        s = s.astype(np.float32) / 32768.0 if s.dtype == np.int16 else s.astype(np.float32)
        s = np.clip(np.nan_to_num(s), -1.0, 1.0)
        planar = np.ascontiguousarray(s[None, :] if s.ndim == 1 else s.T)  # (C, N)
        self.channels = planar.shape[0]
        src_rate = int(spec.sample_rate)  # type: ignore[arg-type]
        self.rate = src_rate if src_rate in rates else 48000
        if self.rate != src_rate and planar.shape[1]:
            planar = _resample_planar(planar, src_rate, self.rate)
        self._data: np.ndarray | None = planar

    def read(self) -> np.ndarray | None:
        data, self._data = self._data, None
        return data

    def close(self) -> None:
        self._data = None


def _layout(channels: int) -> str:
    return "mono" if channels == 1 else "stereo"


def _resample_planar(planar: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """(C, N) float32 → (C, M) float32 at ``dst_rate`` with libswresample."""
    frame = av.AudioFrame.from_ndarray(planar, format="fltp", layout=_layout(planar.shape[0]))
    frame.sample_rate = src_rate
    rs = av.AudioResampler(format="fltp", layout=_layout(planar.shape[0]), rate=dst_rate)
    out = [f.to_ndarray() for f in rs.resample(frame) + rs.resample(None)]
    return np.ascontiguousarray(np.concatenate(out, axis=1)) if out else planar[:, :0]


class _FileSource:
    """Decodes the first audio stream of a media file lazily into (C, n) float32 chunks.

    Sample 0 is aligned with the start of the file's first video stream (or with its own
    first sample for audio-only files): audio that starts late is padded with silence,
    audio that starts early is cut, so driving frame 0 and its sound stay together.
    """

    def __init__(self, spec: AudioSpec, rates: frozenset[int] = _AAC_RATES) -> None:
        path, self._container = _open_input(spec.source, what="media")  # type: ignore[arg-type]
        if not self._container.streams.audio:
            self._container.close()
            raise InputError(f"{path} has no audio stream to copy; pass audio=None or another file")
        self.path = path
        stream = self._container.streams.audio[0]
        src_channels = stream.codec_context.channels or stream.layout.nb_channels or 2
        self.channels = 1 if src_channels == 1 else 2
        src_rate = stream.codec_context.sample_rate or stream.rate or 48000
        self.rate = src_rate if src_rate in rates else 48000
        self._resampler = av.AudioResampler(format="fltp", layout=_layout(self.channels), rate=self.rate)
        self._frames = self._container.decode(stream)
        self._video_start: float | None = None
        if self._container.streams.video:
            v = self._container.streams.video[0]
            if v.start_time is not None and v.time_base:
                self._video_start = float(v.start_time * v.time_base)
        self._started = False
        self._skip = 0  # samples still to drop (audio that starts before the video)
        self._done = False

    def read(self) -> np.ndarray | None:
        while not self._done:
            try:
                frame = next(self._frames, None)
            except (av.FFmpegError, OSError) as exc:
                raise InputError(f"{self.path}: decoding its audio failed ({_err_text(exc)})") from None
            if frame is None:
                self._done = True
                out = self._resampler.resample(None)
            else:
                offset = 0
                if not self._started:
                    self._started = True
                    if self._video_start is not None and frame.time is not None:
                        offset = round((frame.time - self._video_start) * self.rate)
                out = self._resampler.resample(frame)
            arrays = [f.to_ndarray() for f in out]
            chunk = np.concatenate(arrays, axis=1) if arrays else np.zeros((self.channels, 0), np.float32)
            if frame is not None and offset:
                if offset > 0:
                    chunk = np.concatenate([np.zeros((self.channels, offset), np.float32), chunk], axis=1)
                else:
                    self._skip = -offset
            if self._skip:
                cut = min(self._skip, chunk.shape[1])
                chunk = chunk[:, cut:]
                self._skip -= cut
            if chunk.shape[1]:
                return np.ascontiguousarray(chunk, dtype=np.float32)
        return None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._container.close()


class _AudioTrack:
    """Encodes audio (AAC or Opus) in step with the video so the file stays interleaved."""

    def __init__(self, spec: AudioSpec, codec: str = "aac", rates: frozenset[int] = _AAC_RATES) -> None:
        # Open the source now so a bad audio file fails before any video is encoded.
        self.codec = codec
        self.source: _PcmSource | _FileSource = (_FileSource(spec, rates) if spec.source is not None
                                                 else _PcmSource(spec, rates))
        self.rate = self.source.rate
        self._bitrate = spec.bitrate
        self._layout = _layout(self.source.channels)
        self._buf: list[np.ndarray] = []
        self._buffered = 0
        self._pts = 0  # samples handed to the encoder
        self._exhausted = False

    def attach(self, container: av.container.OutputContainer) -> None:
        """Add the audio stream (after the video stream, so video is stream 0)."""
        self.stream = container.add_stream(self.codec, rate=self.rate, layout=self._layout)
        self.stream.bit_rate = self._bitrate
        self.stream.time_base = Fraction(1, self.rate)

    def _pull(self, needed: int) -> None:
        while self._buffered < needed and not self._exhausted:
            chunk = self.source.read()
            if chunk is None:
                self._exhausted = True
                break
            self._buf.append(chunk)
            self._buffered += chunk.shape[1]

    def _take(self, n: int) -> np.ndarray:
        data = np.concatenate(self._buf, axis=1) if len(self._buf) > 1 else self._buf[0]
        out, rest = data[:, :n], data[:, n:]
        self._buf = [rest] if rest.shape[1] else []
        self._buffered = rest.shape[1]
        return np.ascontiguousarray(out)

    def _encode(self, samples: np.ndarray) -> list[av.Packet]:
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout=self._layout)
        frame.sample_rate = self.rate
        frame.time_base = Fraction(1, self.rate)
        frame.pts = self._pts
        self._pts += samples.shape[1]
        return self.stream.encode(frame)

    def feed_until(self, seconds: float, final: bool = False) -> list[av.Packet]:
        """Encode audio up to ``seconds``; with ``final``, also the last partial frame and the flush."""
        target = round(seconds * self.rate)
        frame_size = self.stream.codec_context.frame_size or 1024
        packets: list[av.Packet] = []
        self._pull(target - self._pts)
        while self._buffered >= frame_size and self._pts + frame_size <= target:
            packets += self._encode(self._take(frame_size))
        if final:
            left = min(self._buffered, target - self._pts)
            while left > 0:
                n = min(frame_size, left)
                packets += self._encode(self._take(n))
                left -= n
            packets += self.stream.encode(None)
        return packets

    def close(self) -> None:
        self.source.close()


class VideoWriter:
    """Write RGB frames to an H.264 MP4/MOV (AAC audio) or a VP9 WebM (Opus audio), atomically.

    Args:
        path: output file (.mp4, .m4v, .mov or .webm); it appears only when :meth:`close` succeeds.
        fps: frame rate; 29.97 etc. snap to exact NTSC fractions. Frame i is at i / fps.
        size: (width, height) every frame must have; None takes the first frame's size.
        crf: x264 quality, 0 (lossless) to 51; 18 is visually lossless. WebM uses
            ``crf + 13`` on VP9's 0–63 scale.
        metadata: container tags (any keys; MP4/MOV keep them via ``use_metadata_tags``,
            WebM as Matroska tags).
        audio: an :class:`AudioSpec`; cut to the video's duration, starting at frame 0.
        preset: x264 speed/size trade-off ("ultrafast" … "veryslow").
        overwrite: if False, refuse to replace an existing file.
        finalize_hook: called with the finished temp file after the container is closed
            and before it is renamed onto ``path`` (e.g. to sign it); if it raises, no
            output is written.

    Odd widths/heights are padded to even (4:2:0 needs even sizes) by repeating the last
    column/row, so the output may be 1 pixel wider/taller than the frames.

    Example:
        >>> with VideoWriter(out_path, fps=25) as w:  # doctest: +SKIP
        ...     for frame in frames:
        ...         w.write(frame)
    """

    def __init__(
        self,
        path: PathLike,
        fps: float | Fraction,
        size: tuple[int, int] | None = None,
        crf: int = 18,
        metadata: dict[str, str] | None = None,
        audio: AudioSpec | None = None,
        *,
        preset: str = "veryfast",
        overwrite: bool = True,
        finalize_hook: Callable[[Path], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.fps = _as_rate(fps)
        if preset not in _X264_PRESETS:
            raise ConfigError(f"preset must be one of {', '.join(_X264_PRESETS)}, got {preset!r}")
        if not 0 <= int(crf) <= 51:
            raise ConfigError(f"crf must be in [0, 51], got {crf}")
        if size is not None and (len(size) != 2 or min(int(size[0]), int(size[1])) < 1):
            raise ConfigError(f"size must be (width, height) with positive values, got {size}")
        self.size = (int(size[0]), int(size[1])) if size is not None else None
        self.frame_count = 0
        self._crf = int(crf)
        self._preset = preset
        self._hook = finalize_hook
        self._audio: _AudioTrack | None = None
        self._stream: av.video.stream.VideoStream | None = None
        self._reformatter = VideoReformatter()
        self._done = False
        spec = _CONTAINERS.get(self.path.suffix.lower())
        if spec is None:
            raise ConfigError(f"cannot write video to {self.path}: use a .mp4, .m4v, .mov or .webm suffix")
        fmt, self._vcodec, acodec, rates = spec

        self._stack = contextlib.ExitStack()
        self.temp_path: Path = self._stack.enter_context(atomic_path(self.path, overwrite=overwrite))
        try:
            self._container = av.open(
                str(self.temp_path),
                mode="w",
                format=fmt,
                container_options={"movflags": "+faststart+use_metadata_tags"} if fmt != "webm" else {},
            )
            if audio is not None:
                self._audio = _AudioTrack(audio, acodec, rates)
            for key, value in (metadata or {}).items():
                self._container.metadata[str(key)] = str(value)
            if self.size is not None:
                self._add_streams(*self.size)
        except BaseException as exc:
            self._abort(exc)
            if isinstance(exc, av.FFmpegError):
                raise AvatarError(f"cannot open {self.path} for writing ({_err_text(exc)})") from None
            raise

    # -- setup

    def _add_streams(self, width: int, height: int) -> None:
        if self._vcodec == "libx264":
            options = {"crf": str(self._crf), "preset": self._preset}
        else:  # libvpx-vp9: constant quality, realtime speed (the x264 preset has no VP9 meaning)
            options = {"crf": str(min(63, self._crf + _VP9_CRF_OFFSET)), "b": "0", "deadline": "realtime",
                       "cpu-used": "8", "row-mt": "1"}
        stream = self._container.add_stream(self._vcodec, rate=self.fps, options=options)
        stream.width = width + width % 2
        stream.height = height + height % 2
        stream.pix_fmt = "yuv420p"
        _thread(stream)
        cc = stream.codec_context
        cc.colorspace = int(Colorspace.ITU709)  # AVCOL_SPC_BT709 == SWS_CS_ITU709 == 1
        cc.color_range = int(ColorRange.MPEG)
        cc.color_primaries = 1  # AVCOL_PRI_BT709
        cc.color_trc = 1  # AVCOL_TRC_BT709
        self._stream = stream
        self.size = (width, height)
        if self._audio is not None:
            self._audio.attach(self._container)

    def _mux(self, packets: list[av.Packet]) -> None:
        if packets:
            self._container.mux(packets)

    # -- writing

    def fit(self, frame: np.ndarray) -> np.ndarray:
        """Video is stored at the frames' own size (the image writers downscale previews here)."""
        return frame

    def write(self, frame: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 RGB frame."""
        if self._done:
            raise AvatarError(f"VideoWriter for {self.path} is already closed")
        if not (isinstance(frame, np.ndarray) and frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8):
            got = f"{frame.shape} {frame.dtype}" if isinstance(frame, np.ndarray) else type(frame).__name__
            raise ShapeError(f"VideoWriter.write expects an (H, W, 3) uint8 RGB frame, got {got}")
        h, w = frame.shape[:2]
        if self._stream is None:
            self._add_streams(w, h)
        elif (w, h) != self.size:
            raise ShapeError(f"frame {self.frame_count} is {w}x{h} but the video is {self.size[0]}x{self.size[1]}")  # type: ignore[index]
        if w % 2 or h % 2:
            frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        vf = self._reformatter.reformat(
            vf,
            format="yuv420p",
            src_colorspace=Colorspace.ITU709,
            dst_colorspace=Colorspace.ITU709,
            src_color_range=ColorRange.JPEG,
            dst_color_range=ColorRange.MPEG,
            interpolation=_TO_YUV_FLAGS,
        )
        vf.pts = self.frame_count
        try:
            self._mux(self._stream.encode(vf))  # type: ignore[union-attr]
            if self._audio is not None:
                self._mux(self._audio.feed_until((self.frame_count + 1) / self.fps))
        except (av.FFmpegError, OSError) as exc:
            raise AvatarError(
                f"writing {self.path} failed at frame {self.frame_count} ({_err_text(exc)}); is the disk full?"
            ) from None
        self.frame_count += 1

    @property
    def duration(self) -> float:
        """Seconds of video written so far."""
        return float(self.frame_count / self.fps)

    # -- finishing

    def close(self) -> Path:
        """Flush, close, run ``finalize_hook`` and rename onto ``path``; return the path."""
        if self._done:
            return self.path
        if self.frame_count == 0:
            exc = InputError(f"no frames were written to {self.path}; nothing to save")
            self._abort(exc)
            raise exc
        try:
            self._mux(self._stream.encode(None))  # type: ignore[union-attr]
            if self._audio is not None:
                self._mux(self._audio.feed_until(self.frame_count / self.fps, final=True))
                self._audio.close()
            self._container.close()
            if self._hook is not None:
                self._hook(self.temp_path)
        except BaseException as exc:
            self._abort(exc)
            if isinstance(exc, av.FFmpegError):
                raise AvatarError(f"cannot finish writing {self.path} ({_err_text(exc)})") from None
            raise
        self._done = True
        self._stack.close()  # atomic rename
        return self.path

    def abort(self) -> None:
        """Discard everything written so far; no output file is left."""
        self._abort(None)

    def _abort(self, exc: BaseException | None) -> None:
        if self._done:
            return
        self._done = True
        if self._audio is not None:
            self._audio.close()
        container = getattr(self, "_container", None)
        if container is not None:
            with contextlib.suppress(Exception):
                container.close()
        err = exc if exc is not None else AvatarError("aborted")
        with contextlib.suppress(BaseException):
            self._stack.__exit__(type(err), err, err.__traceback__)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is not None:
            self._abort(exc)
        else:
            self.close()

    def __del__(self) -> None:
        # A writer dropped without close() must not leave its temp file behind.
        with contextlib.suppress(Exception):
            if not self._done:
                self._abort(None)
