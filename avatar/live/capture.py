"""Live inputs: cameras (index, device path, URL or a video file as a fake camera) and microphones.

A :class:`Capture` thread reads a :class:`FrameSource` as fast as it delivers and keeps only
the newest frame, so a slow renderer skips stale frames instead of building a queue: latency
stays bounded at about one render time (the avatarify ``VideoCaptureAsync`` design).
Frames are (H, W, 3) uint8 RGB; times are seconds.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from ..errors import EngineUnavailable, InputError

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000  # microphone PCM rate expected by the streaming audio path


@dataclass(frozen=True, eq=False)
class CapturedFrame:
    """One camera frame.

    image: (H, W, 3) uint8 RGB; index: frame number at the source (gaps = dropped frames);
    t_media: seconds since the source started (a file's own timeline, a camera's clock);
    t_capture: ``time.perf_counter()`` when it arrived (the start of the latency measure).
    """

    image: np.ndarray
    index: int
    t_media: float
    t_capture: float


class FrameSource(Protocol):
    """Anything :class:`Capture` can read: ``read()`` blocks for the next frame, None at the end."""

    name: str
    fps: float

    def read(self) -> CapturedFrame | None: ...

    def close(self) -> None: ...


class FileCamera:
    """A video file played as a camera: frames are released at their own timestamps.

    Args:
        path: any video PyAV reads.
        pace: release frames in real time (True, like a camera) or as fast as decoded.
        loop: start again at the end (for benchmarks and demos).
    """

    def __init__(self, path: str | Path, pace: bool = True, loop: bool = False) -> None:
        from ..media.video import probe_video

        self.path = Path(path)
        info = probe_video(self.path)  # InputError for a missing/unreadable file
        self.name = str(self.path)
        self.fps = info.fps
        self.size = (info.width, info.height)
        self.pace, self.loop = pace, loop
        self._reader = None
        self._index = 0
        self._offset = 0.0  # media time of the current pass's first frame
        self._pass_index = 0
        self._t0: float | None = None
        self._closed = False

    def _next_image(self) -> np.ndarray | None:
        from ..media.video import read_frames

        for _ in range(2):
            if self._reader is None:
                self._reader = read_frames(self.path)
            img = next(self._reader, None)
            if img is not None:
                return img
            self._reader = None
            if not self.loop or self._pass_index == 0:
                return None
            self._offset += self._pass_index / self.fps
            self._pass_index = 0
        return None

    def read(self) -> CapturedFrame | None:
        if self._closed:
            return None
        img = self._next_image()
        if img is None:
            return None
        t_media = self._offset + self._pass_index / self.fps
        if self._t0 is None:
            self._t0 = time.perf_counter() - t_media
        if self.pace:
            delay = self._t0 + t_media - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        frame = CapturedFrame(img, self._index, t_media, time.perf_counter())
        self._index += 1
        self._pass_index += 1
        return frame

    def close(self) -> None:
        self._closed = True
        if self._reader is not None:
            self._reader.close()
            self._reader = None


class OpenCvCamera:
    """A local camera (index or /dev/videoN) through OpenCV, with reconnects when it drops out.

    Args:
        device: camera index or device path.
        width, height, fps: requested capture mode (the driver may pick another).
        reconnect_s: how long to keep retrying after the camera stops delivering.
    """

    def __init__(self, device: int | str, width: int | None = None, height: int | None = None,
                 fps: float | None = None, reconnect_s: float = 3.0) -> None:
        self.device = device
        self.name = f"camera {device}"
        self._want = (width, height, fps)
        self.reconnect_s = reconnect_s
        self._cap = self._open()
        self.fps = float(self._cap.get(_cv2().CAP_PROP_FPS) or 0) or (fps or 30.0)
        self._index = 0
        self._t0 = time.perf_counter()

    def _open(self):
        cv2 = _cv2()
        cap = cv2.VideoCapture(self.device)
        if not cap.isOpened():
            cap.release()
            raise InputError(f"{self.name} could not be opened; check that it is plugged in and not used by another "
                             "program, or pass another --camera (index, /dev/videoN, URL or a video file)")
        w, h, fps = self._want
        if w:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, w)
        if h:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, h)
        if fps:
            cap.set(cv2.CAP_PROP_FPS, fps)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the driver's own queue adds latency
        return cap

    def read(self) -> CapturedFrame | None:
        cv2 = _cv2()
        ok, bgr = self._cap.read()
        if not ok:
            bgr = self._reconnect()
        now = time.perf_counter()
        frame = CapturedFrame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), self._index, now - self._t0, now)
        self._index += 1
        return frame

    def _reconnect(self) -> np.ndarray:
        deadline = time.perf_counter() + self.reconnect_s
        log.warning("%s stopped delivering frames; reconnecting for up to %.0f s", self.name, self.reconnect_s)
        while time.perf_counter() < deadline:
            self._cap.release()
            time.sleep(0.25)
            with contextlib.suppress(InputError):
                self._cap = self._open()
                ok, bgr = self._cap.read()
                if ok:
                    log.warning("%s is back", self.name)
                    return bgr
        raise InputError(f"{self.name} stopped delivering frames (unplugged?) and did not come back within "
                         f"{self.reconnect_s:g} s; plug it in and start again")

    def close(self) -> None:
        self._cap.release()


class UrlCamera:
    """A network stream (rtsp://, http://, udp://, …) decoded with PyAV; the sender paces it."""

    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        import av

        self.name = url
        try:
            self._container = av.open(url, timeout=timeout_s, options={"fflags": "nobuffer", "flags": "low_delay"})
        except (av.FFmpegError, OSError) as exc:
            raise InputError(f"cannot open the camera stream {url} ({exc}); check the URL and that the sender "
                             "is running") from None
        if not self._container.streams.video:
            self._container.close()
            raise InputError(f"{url} has no video stream; expected a camera stream")
        stream = self._container.streams.video[0]
        self.fps = float(stream.average_rate or stream.guessed_rate or 30)
        self._frames = self._container.decode(stream)
        self._index = 0
        self._t0 = time.perf_counter()

    def read(self) -> CapturedFrame | None:
        import av

        try:
            vf = next(self._frames, None)
        except (av.FFmpegError, OSError) as exc:
            raise InputError(f"the camera stream {self.name} failed ({exc}); is the sender still running?") from None
        if vf is None:
            return None
        now = time.perf_counter()
        frame = CapturedFrame(vf.to_ndarray(format="rgb24"), self._index, now - self._t0, now)
        self._index += 1
        return frame

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._container.close()


def _cv2():
    import cv2

    return cv2


def open_camera(spec: int | str | Path, *, pace: bool = True, loop: bool = False, width: int | None = None,
                height: int | None = None, fps: float | None = None) -> FrameSource:
    """A frame source from a camera index (``0``), a device path (``/dev/video2``), a URL or a video file.

    ``pace`` and ``loop`` apply to video files only. Raises InputError when nothing can be opened.
    """
    if isinstance(spec, int) or (isinstance(spec, str) and spec.strip().isdigit()):
        return OpenCvCamera(int(spec), width, height, fps)
    text = str(spec)
    if "://" in text:
        return UrlCamera(text)
    if text.startswith("/dev/"):
        if not Path(text).exists():
            raise InputError(f"camera device {text} does not exist; list cameras with `ls /dev/video*` "
                             "(or `v4l2-ctl --list-devices`) and pass one to --camera")
        return OpenCvCamera(text, width, height, fps)
    path = Path(text)
    if not path.exists():
        raise InputError(f"camera {text!r} not found: expected a camera index (0), a device path (/dev/video0), "
                         "a URL (rtsp://…) or an existing video file")
    return FileCamera(path, pace=pace, loop=loop)


class Capture:
    """Reads a :class:`FrameSource` on a thread and keeps only the newest frame.

    ``captured`` counts frames read, ``dropped`` those replaced before anyone took them.
    A source error is re-raised by :meth:`latest` in the consumer's thread.
    """

    def __init__(self, source: FrameSource) -> None:
        self.source = source
        self.captured = 0
        self.dropped = 0
        self._slot: CapturedFrame | None = None
        self._cond = threading.Condition()
        self._ended = False
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="avatar-capture", daemon=True)

    def start(self) -> Capture:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                frame = self.source.read()
                if frame is None:
                    break
                with self._cond:
                    if self._slot is not None:
                        self.dropped += 1
                    self._slot = frame
                    self.captured += 1
                    self._cond.notify_all()
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            self._error = exc
        finally:
            with self._cond:
                self._ended = True
                self._cond.notify_all()

    @property
    def ended(self) -> bool:
        """True once the source has ended and its last frame was taken."""
        with self._cond:
            return self._ended and self._slot is None

    def latest(self, timeout: float | None = None) -> CapturedFrame | None:
        """The newest frame not yet taken; waits for one. None when the source ended or on timeout."""
        with self._cond:
            self._cond.wait_for(lambda: self._slot is not None or self._ended, timeout=timeout)
            frame, self._slot = self._slot, None
            if frame is None and self._error is not None:
                err, self._error = self._error, None
                raise err
            return frame

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        with contextlib.suppress(Exception):
            self.source.close()


# --------------------------------------------------------------------------- audio


@dataclass(frozen=True, eq=False)
class AudioChunk:
    """(n,) float32 mono PCM at 16 kHz; ``t_capture`` is ``perf_counter()`` at its last sample."""

    pcm: np.ndarray
    t_capture: float


class AudioFileMic:
    """An audio (or video) file played as a microphone: 16 kHz mono chunks released in real time.

    Args:
        path: any media file with sound.
        block_s: chunk length in seconds.
        pace: release chunks when their last sample "was spoken" (True) or at once.
    """

    def __init__(self, path: str | Path, block_s: float = 0.02, pace: bool = True) -> None:
        from ..media.video import read_audio

        self.name = str(path)
        self._pcm = read_audio(path, sample_rate=SAMPLE_RATE)
        self._block = max(1, round(block_s * SAMPLE_RATE))
        self.pace = pace
        self._pos = 0
        self._t0: float | None = None

    @property
    def duration_s(self) -> float:
        return len(self._pcm) / SAMPLE_RATE

    def read(self, timeout: float | None = None) -> AudioChunk | None:
        if self._pos >= len(self._pcm):
            return None
        if self._t0 is None:
            self._t0 = time.perf_counter()
        end = min(self._pos + self._block, len(self._pcm))
        if self.pace:
            delay = self._t0 + end / SAMPLE_RATE - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        chunk = self._pcm[self._pos:end]
        self._pos = end
        return AudioChunk(chunk, time.perf_counter())

    def close(self) -> None:
        self._pos = len(self._pcm)


class Microphone:
    """The default (or a named) input device through ``sounddevice``, as 16 kHz mono chunks."""

    def __init__(self, device: int | str | None = None, block_s: float = 0.02) -> None:
        sd = import_sounddevice()
        self.name = f"microphone {device if device is not None else '(default)'}"
        self._q: queue.Queue[AudioChunk] = queue.Queue(maxsize=500)
        self.overflows = 0

        def callback(indata, frames, time_info, status) -> None:  # PortAudio's thread
            if status:
                self.overflows += 1
            with contextlib.suppress(queue.Full):
                self._q.put_nowait(AudioChunk(indata[:, 0].astype(np.float32, copy=True), time.perf_counter()))

        try:
            self._stream = sd.InputStream(samplerate=SAMPLE_RATE, channels=1, dtype="float32", device=device,
                                          blocksize=max(1, int(block_s * SAMPLE_RATE)), callback=callback)
            self._stream.start()
        except Exception as exc:  # noqa: BLE001 - PortAudioError has no stable import path
            raise InputError(f"cannot open {self.name} ({exc}); check `python -m sounddevice` for input devices, "
                             "or use --audio FILE") from None

    def read(self, timeout: float | None = 1.0) -> AudioChunk | None:
        try:
            return self._q.get(timeout=timeout)
        except queue.Empty:
            raise InputError(f"{self.name} delivered no sound for {timeout:g} s; is it muted or unplugged?") from None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._stream.stop()
            self._stream.close()


def import_sounddevice():
    """The ``sounddevice`` module, or EngineUnavailable naming what to install."""
    try:
        import sounddevice as sd
    except ImportError:
        raise EngineUnavailable("--mic needs the sounddevice package: `pip install sounddevice` "
                                "(Linux also: `apt install libportaudio2`); or use --audio FILE") from None
    except OSError as exc:  # the wheel loads PortAudio at import time
        raise EngineUnavailable(f"--mic needs the PortAudio library ({exc}): `apt install libportaudio2` on "
                                "Debian/Ubuntu (it ships with the sounddevice wheels on Windows and macOS); "
                                "or use --audio FILE") from None
    return sd
