"""Where live frames go: a preview window, a virtual camera, a network stream, a file. Several at once.

Every sink is opened before the camera starts (so a missing backend or an unreachable
receiver fails at once), gets frames with their media time ``t`` in seconds since the
session started, and is closed on every exit path. Frames are (H, W, 3) uint8 RGB and
already carry the watermark and badge (:class:`avatar.live.session.LiveAnimator` adds them).

Timestamps: a frame is stamped ``round(t * fps)`` in units of 1 / fps, so a frame the loop
skipped leaves a gap (variable frame rate) and playback keeps real time; audio (voice mode)
is stamped by its sample count from the same t = 0, which keeps it in sync with the video.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from ..errors import AvatarError, ConfigError, EngineUnavailable, InputError

log = logging.getLogger(__name__)

AUDIO_RATE = 16000
_STREAM_FORMATS = {"udp": "mpegts", "tcp": "mpegts", "srt": "mpegts", "rtp": "rtp_mpegts",
                   "rtmp": "flv", "rtmps": "flv", "rtsp": "rtsp"}
VIRTUAL_CAM_HELP = (
    "Linux: `sudo apt install v4l2loopback-dkms && sudo modprobe v4l2loopback devices=1 exclusive_caps=1 "
    'card_label="avatar"`; Windows: install OBS Studio (>= 26) and start/stop its Virtual Camera once, or '
    "Unity Capture; macOS: install OBS Studio (>= 26.1) and start/stop its Virtual Camera once")


class SinkError(AvatarError):
    """A sink cannot be opened or written (receiver unreachable, disk full, …)."""


class Sink(ABC):
    """One output. ``open`` once with the frame size, ``write`` per frame, ``close`` at the end."""

    name: str = "sink"
    wants_audio: bool = False

    @abstractmethod
    def open(self, width: int, height: int, fps: float, *, audio: bool = False, grant: Any = None) -> None:
        """Prepare for (height, width) RGB frames at ``fps``; ``audio``: 16 kHz mono PCM will follow;
        ``grant``: the session's consent grant (labels what is written)."""

    @abstractmethod
    def write(self, frame: np.ndarray, t: float) -> None:
        """Output one (H, W, 3) uint8 RGB frame shown at ``t`` seconds."""

    def write_audio(self, pcm: np.ndarray) -> None:
        """Append (n,) float32 16 kHz mono PCM following the previous chunk (sinks without sound ignore it)."""

    def poll(self) -> list[str]:
        """User commands since the last call ("recapture", "quit"); only interactive sinks have any."""
        return []

    @abstractmethod
    def close(self) -> None:
        """Finish the output (complete files, flushed streams). Safe to call twice."""

    def abort(self) -> None:
        """Stop without finishing; files are not left behind. Defaults to :meth:`close`."""
        self.close()

    def describe(self) -> str:
        return self.name


# --------------------------------------------------------------------------- PyAV muxing


class _Muxer:
    """H.264 (+ AAC) into any container PyAV can write, with media-time timestamps."""

    def __init__(self, target: str, fmt: str, width: int, height: int, fps: float, *, audio: bool,
                 crf: int, preset: str, zerolatency: bool, metadata: dict[str, str] | None = None,
                 options: dict[str, str] | None = None, container_options: dict[str, str] | None = None,
                 timeout_s: float | None = None) -> None:
        import av

        self._av = av
        self.fps = Fraction(fps).limit_denominator(1001)
        kwargs: dict[str, Any] = {"format": fmt, "options": options or {}, "container_options": container_options or {}}
        if timeout_s is not None:
            kwargs["timeout"] = timeout_s
        self.container = av.open(target, mode="w", **kwargs)
        try:
            for k, v in (metadata or {}).items():
                self.container.metadata[str(k)] = str(v)
            opts = {"crf": str(crf), "preset": preset, "bf": "0"}
            if zerolatency:
                opts["tune"] = "zerolatency"
            vs = self.container.add_stream("libx264", rate=self.fps, options=opts)
            vs.width, vs.height = width + width % 2, height + height % 2
            vs.pix_fmt = "yuv420p"
            vs.codec_context.gop_size = max(1, round(2 * fps))  # a keyframe every 2 s: late joiners can start
            cc = vs.codec_context
            cc.colorspace, cc.color_range, cc.color_primaries, cc.color_trc = 1, 1, 1, 1  # BT.709, limited range
            self.video = vs
            self.audio = None
            if audio:
                self.audio = self.container.add_stream("aac", rate=AUDIO_RATE, layout="mono")
                self.audio.time_base = Fraction(1, AUDIO_RATE)
            self._audio_buf = np.zeros(0, np.float32)
            self._audio_pts = 0
            self._last_pts = -1
            self.frames = 0
            from av.video.reformatter import VideoReformatter

            self._reformatter = VideoReformatter()
        except BaseException:
            with contextlib.suppress(Exception):
                self.container.close()
            raise

    def write(self, frame: np.ndarray, t: float) -> bool:
        """Encode ``frame`` at media time ``t``; False when it falls on the previous frame's slot."""
        from av.video.reformatter import ColorRange, Colorspace, Interpolation

        pts = round(t * self.fps)
        if pts <= self._last_pts:
            return False
        h, w = frame.shape[:2]
        if w % 2 or h % 2:
            frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        vf = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        vf = self._reformatter.reformat(vf, format="yuv420p", src_colorspace=Colorspace.ITU709,
                                        dst_colorspace=Colorspace.ITU709, src_color_range=ColorRange.JPEG,
                                        dst_color_range=ColorRange.MPEG,
                                        interpolation=Interpolation.BILINEAR | Interpolation.ACCURATE_RND)
        vf.pts = pts
        self.container.mux(self.video.encode(vf))
        self._last_pts = pts
        self.frames += 1
        return True

    def write_audio(self, pcm: np.ndarray) -> None:
        if self.audio is None:
            return
        self._audio_buf = np.concatenate([self._audio_buf, np.asarray(pcm, np.float32).reshape(-1)])
        size = self.audio.codec_context.frame_size or 1024
        while len(self._audio_buf) >= size:
            self._encode_audio(self._audio_buf[:size])
            self._audio_buf = self._audio_buf[size:]

    def _encode_audio(self, samples: np.ndarray) -> None:
        af = self._av.AudioFrame.from_ndarray(np.clip(samples, -1, 1)[None, :].astype(np.float32), format="fltp",
                                              layout="mono")
        af.sample_rate = AUDIO_RATE
        af.time_base = Fraction(1, AUDIO_RATE)
        af.pts = self._audio_pts
        self._audio_pts += len(samples)
        self.container.mux(self.audio.encode(af))

    def close(self) -> None:
        try:
            if self.frames:
                self.container.mux(self.video.encode(None))
            if self.audio is not None:
                if len(self._audio_buf):
                    self._encode_audio(self._audio_buf)
                    self._audio_buf = self._audio_buf[:0]
                self.container.mux(self.audio.encode(None))
        finally:
            self.container.close()

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self.container.close()


# --------------------------------------------------------------------------- file


class RecordSink(Sink):
    """An MP4/MOV recording, atomic and labelled like :meth:`Animator.animate`'s output:
    provenance tags in the container, the watermark in the frames, a signed C2PA manifest.

    Args:
        path: .mp4, .m4v or .mov; it appears only once complete.
        grant: the consent grant that labels the file (default: the session's, given to ``open``).
        crf: H.264 quality; overwrite: replace an existing file.
    """

    wants_audio = True

    def __init__(self, path: str | Path, grant: Any = None, crf: int = 18, overwrite: bool = False,
                 preset: str = "veryfast") -> None:
        self.path = Path(path)
        if self.path.suffix.lower() not in (".mp4", ".m4v", ".mov"):
            raise ConfigError(f"--record needs a .mp4, .m4v or .mov path, got {self.path.name!r}")
        if self.path.exists() and not overwrite:
            raise InputError(f"{self.path} exists; pass --overwrite (or overwrite=True) to replace it")
        self.name = f"file {self.path}"
        self.grant, self.crf, self.overwrite, self.preset = grant, crf, overwrite, preset
        self._mux: _Muxer | None = None
        self._stack: contextlib.ExitStack | None = None
        self._tmp: Path | None = None
        self.frames = 0
        self.written: Path | None = None

    def open(self, width: int, height: int, fps: float, *, audio: bool = False, grant: Any = None) -> None:
        from ..media.atomic import atomic_path
        from ..output import provenance

        self.grant = self.grant or grant
        if self.grant is None:
            raise SinkError(f"recording {self.path} needs the session's consent grant to label it")
        self._stack = contextlib.ExitStack()
        self._tmp = self._stack.enter_context(atomic_path(self.path, overwrite=self.overwrite))
        fmt = "mov" if self.path.suffix.lower() == ".mov" else "mp4"
        try:
            self._mux = _Muxer(str(self._tmp), fmt, width, height, fps, audio=audio, crf=self.crf,
                               preset=self.preset, zerolatency=False,
                               metadata=provenance.provenance_metadata(self.grant),
                               container_options={"movflags": "+faststart+use_metadata_tags"})
        except BaseException as exc:  # noqa: BLE001
            self._fail(exc)
            raise SinkError(f"cannot open {self.path} for recording ({exc})") from None

    def write(self, frame: np.ndarray, t: float) -> None:
        import av

        try:
            if self._mux is not None and self._mux.write(frame, t):
                self.frames += 1
        except (OSError, av.FFmpegError) as exc:
            raise SinkError(f"recording to {self.path} failed at frame {self.frames} ({exc}); is the disk full?") from None

    def write_audio(self, pcm: np.ndarray) -> None:
        if self._mux is not None:
            self._mux.write_audio(pcm)

    def close(self) -> None:
        if self._mux is None:
            return
        mux, self._mux = self._mux, None
        if self.frames == 0:
            mux.abort()
            self._fail(InputError("no frames"))
            log.warning("nothing was recorded to %s (no frames); no file written", self.path)
            return
        from ..output import provenance

        try:
            mux.close()
            provenance.sign_c2pa(self._tmp, self.grant, provenance.mime_for(self.path))  # signing is the last write
        except BaseException as exc:  # noqa: BLE001
            self._fail(exc)
            raise SinkError(f"cannot finish the recording {self.path} ({exc})") from None
        self._stack.close()  # atomic rename onto the final path
        self.written = self.path

    def abort(self) -> None:
        if self._mux is not None:
            self._mux.abort()
            self._mux = None
        self._fail(AvatarError("aborted"))

    def _fail(self, exc: BaseException) -> None:
        if self._stack is not None:
            stack, self._stack = self._stack, None
            with contextlib.suppress(BaseException):
                stack.__exit__(type(exc), exc, exc.__traceback__)


# --------------------------------------------------------------------------- network


def stream_format(url: str) -> tuple[str, str, dict[str, str]]:
    """(url to open, container format, protocol options) for a stream URL; ConfigError for others."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _STREAM_FORMATS or not parts.hostname:
        raise ConfigError(f"--stream needs a URL like udp://127.0.0.1:5000, tcp://HOST:PORT, rtmp://HOST/app/key "
                          f"or rtsp://HOST:8554/path, got {url!r}")
    options: dict[str, str] = {}
    if scheme == "udp" and "pkt_size" not in parts.query:
        url += ("&" if parts.query else "?") + "pkt_size=1316"  # 7 TS packets: no IP fragmentation
    if scheme == "rtsp":
        options["rtsp_transport"] = "tcp"
    return url, _STREAM_FORMATS[scheme], options


def _play_hint(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme == "tcp":
        return f"start the receiver first, e.g. `ffplay 'tcp://{parts.hostname}:{parts.port}?listen'`"
    if parts.scheme in ("rtmp", "rtmps", "rtsp"):
        return "start the server first (e.g. nginx-rtmp, mediamtx or OBS's media source) and check the URL"
    return "check the address"


class StreamSink(Sink):
    """A live network stream written with PyAV; the container follows the URL scheme.

    udp:// tcp:// srt:// → MPEG-TS; rtp:// → RTP/MPEG-TS; rtmp:// → FLV; rtsp:// → RTSP push
    (to a server such as mediamtx). H.264 ``tune=zerolatency`` and, in voice mode, AAC audio.
    """

    wants_audio = True

    def __init__(self, url: str, crf: int = 23, preset: str = "ultrafast", timeout_s: float = 5.0) -> None:
        self.url, self.format, self.options = stream_format(url)
        self.name = f"stream {url}"
        self.crf, self.preset, self.timeout_s = crf, preset, timeout_s
        self._mux: _Muxer | None = None
        self._failed = False
        self.frames = 0

    def open(self, width: int, height: int, fps: float, *, audio: bool = False, grant: Any = None) -> None:
        import av

        cont = {"flush_packets": "1"}
        if self.format == "mpegts":
            cont.update(muxdelay="0", muxpreload="0")
        meta = {}
        if grant is not None:  # MPEG-TS carries only the service names: enough to say what this is
            from ..output import provenance

            tags = provenance.provenance_metadata(grant)
            meta = {"service_provider": "avatar (AI-generated)", "service_name": tags["comment"], **tags}
        try:
            self._mux = _Muxer(self.url, self.format, width, height, fps, audio=audio, crf=self.crf,
                               preset=self.preset, zerolatency=True, options=self.options, metadata=meta,
                               container_options=cont, timeout_s=self.timeout_s)
            self._mux.container.start_encoding()  # connect now: an absent receiver fails before the camera starts
        except (av.FFmpegError, OSError) as exc:
            if self._mux is not None:
                self._mux.abort()
                self._mux = None
            raise SinkError(f"cannot open the stream {self.url} ({exc}); {_play_hint(self.url)}") from None

    def write(self, frame: np.ndarray, t: float) -> None:
        import av

        if self._mux is None:
            return
        try:
            if self._mux.write(frame, t):
                self.frames += 1
        except (av.FFmpegError, OSError) as exc:
            self._failed = True
            raise SinkError(f"the stream {self.url} failed at frame {self.frames} ({exc}); "
                            "the receiver may have gone away") from None

    def write_audio(self, pcm: np.ndarray) -> None:
        if self._mux is not None:
            self._mux.write_audio(pcm)

    def close(self) -> None:
        if self._mux is None:
            return
        mux, self._mux = self._mux, None
        if self._failed:
            mux.abort()
            return
        try:
            mux.close()
        except Exception as exc:  # noqa: BLE001 - the receiver went away while flushing: nothing left to save
            log.warning("closing %s: %s", self.url, exc)


# --------------------------------------------------------------------------- virtual camera


class VirtualCamSink(Sink):
    """A virtual webcam other apps (Zoom, Meet, OBS) can pick, through ``pyvirtualcam``.

    device: e.g. /dev/video10 (Linux); backend: "v4l2loopback", "obs" or "unitycapture".
    """

    def __init__(self, device: str | None = None, backend: str | None = None) -> None:
        self.device, self.backend = device, backend
        self.name = "virtual camera"
        self._cam = None
        self._pvc = import_pyvirtualcam()

    def open(self, width: int, height: int, fps: float, *, audio: bool = False, grant: Any = None) -> None:
        pvc = self._pvc
        try:
            self._cam = pvc.Camera(width, height, fps, fmt=pvc.PixelFormat.RGB, device=self.device,
                                   backend=self.backend, print_fps=False)
        except Exception as exc:  # noqa: BLE001 - RuntimeError / KeyError from the backends
            raise EngineUnavailable(f"no virtual camera backend is available ({exc}). {VIRTUAL_CAM_HELP}") from None
        self.name = f"virtual camera {self._cam.device}"

    def write(self, frame: np.ndarray, t: float) -> None:
        if self._cam is not None:
            self._cam.send(np.ascontiguousarray(frame))

    def close(self) -> None:
        if self._cam is not None:
            cam, self._cam = self._cam, None
            with contextlib.suppress(Exception):
                cam.close()


def import_pyvirtualcam():
    """The ``pyvirtualcam`` module, or EngineUnavailable naming what to install."""
    try:
        import pyvirtualcam
    except ImportError:
        raise EngineUnavailable("--virtual-cam needs the pyvirtualcam package (`pip install pyvirtualcam`) and a "
                                f"virtual camera backend. {VIRTUAL_CAM_HELP}") from None
    return pyvirtualcam


# --------------------------------------------------------------------------- preview


def has_display() -> bool:
    """Whether a window can be shown (Windows and macOS always; elsewhere X11 or Wayland)."""
    if sys.platform in ("win32", "darwin"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class PreviewSink(Sink):
    """An OpenCV window. Keys: r = re-capture the neutral reference, q or Esc = stop.

    ``status`` (set by the loop) is drawn on the preview only, never on the other outputs.
    """

    def __init__(self, title: str = "avatar live (r: recapture, q: quit)", overlay: bool = True) -> None:
        if not has_display():
            raise EngineUnavailable("--preview needs a display (no $DISPLAY or $WAYLAND_DISPLAY here); "
                                    "drop --preview, or watch the --stream with ffplay/VLC instead")
        self.title, self.overlay = title, overlay
        self.name = "preview window"
        self.status = ""
        self._commands: list[str] = []
        self._open = False

    def open(self, width: int, height: int, fps: float, *, audio: bool = False, grant: Any = None) -> None:
        import cv2

        try:
            cv2.namedWindow(self.title, cv2.WINDOW_NORMAL)
        except cv2.error as exc:
            raise EngineUnavailable(f"cannot open a preview window ({str(exc).strip().splitlines()[-1]}); "
                                    "the installed OpenCV may be a headless build: `pip install opencv-python`") from None
        self._open = True

    def write(self, frame: np.ndarray, t: float) -> None:
        import cv2

        if not self._open:
            return
        bgr = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
        if self.overlay and self.status:
            draw_status(bgr, self.status)
        cv2.imshow(self.title, bgr)
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("r"), ord("R"), ord(" ")):
            self._commands.append("recapture")
        elif key in (ord("q"), ord("Q"), 27):
            self._commands.append("quit")

    def poll(self) -> list[str]:
        out, self._commands = self._commands, []
        return out

    def close(self) -> None:
        import cv2

        if self._open:
            self._open = False
            with contextlib.suppress(Exception):
                cv2.destroyWindow(self.title)
                cv2.waitKey(1)


def draw_status(image: np.ndarray, text: str) -> None:
    """Draw ``text`` (lines split on newlines) in the top-left corner of ``image``, in place."""
    import cv2

    y = 18
    for line in text.splitlines():
        cv2.putText(image, line, (8, y), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(image, line, (8, y), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
        y += 18


# --------------------------------------------------------------------------- callbacks


class CallbackSink(Sink):
    """Hands every frame to ``fn(frame, t)`` (tests, benchmarks, embedding in another app)."""

    def __init__(self, fn: Callable[[np.ndarray, float], None], name: str = "callback") -> None:
        self.fn, self.name = fn, name

    def open(self, width: int, height: int, fps: float, *, audio: bool = False, grant: Any = None) -> None:
        pass

    def write(self, frame: np.ndarray, t: float) -> None:
        self.fn(frame, t)

    def close(self) -> None:
        pass
