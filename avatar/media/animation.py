"""Image-based outputs: animated GIF / WebP previews and PNG sequences, written atomically.

Both take (H, W, 3) uint8 RGB frames like :class:`avatar.media.video.VideoWriter` and have the
same life cycle (``write`` … ``close`` or ``abort``; a context manager), so the pipeline treats
every output format alike. Neither carries audio.

- **Previews** (``.gif``, ``.webp``) are downscaled so the longer side is at most ``max_size``
  (:meth:`PreviewWriter.fit`; call it before labelling so the watermark is drawn at the size
  that is stored). Pillow writes them at :meth:`~PreviewWriter.close`, so the frames are held in
  memory: one byte per pixel for GIF (already quantised), three for WebP. Tags: a JSON comment
  (GIF) or an XMP packet (WebP). GIF frames are quantised with a per-frame octree palette.
- **PNG sequences** go to a folder: ``frame_000000.png``, ``frame_000001.png``, … with the tags
  as PNG text chunks (plus ``fps``); the folder is built under a temporary name beside the
  target and renamed at the end, so a failed run leaves nothing.

``finalize_hook(path)`` runs on each finished file before it becomes visible (C2PA signing):
once for a preview, once per frame for a sequence.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import AvatarError, InputError, ShapeError
from .atomic import atomic_path
from .tags import tags_to_json, tags_to_xmp

__all__ = ["PngSequenceWriter", "PreviewWriter", "frame_name"]

PathLike = str | os.PathLike


def frame_name(index: int) -> str:
    """File name of frame ``index`` in a PNG sequence folder."""
    return f"frame_{index:06d}.png"


def _durations(n: int, fps: float, step_ms: int) -> list[int]:
    """Per-frame display times in ms, multiples of ``step_ms``, whose running sum stays on i / fps."""
    edges = [round(i * 1000.0 / fps / step_ms) * step_ms for i in range(n + 1)]
    return [max(step_ms, b - a) for a, b in zip(edges, edges[1:])]


def _check(frame: np.ndarray, index: int, size: tuple[int, int] | None, where: Path) -> tuple[int, int]:
    if not (isinstance(frame, np.ndarray) and frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8):
        got = f"{frame.shape} {frame.dtype}" if isinstance(frame, np.ndarray) else type(frame).__name__
        raise ShapeError(f"writing {where} expects (H, W, 3) uint8 RGB frames, got {got}")
    wh = (frame.shape[1], frame.shape[0])
    if size is not None and wh != size:
        raise ShapeError(f"frame {index} is {wh[0]}x{wh[1]} but {where} is {size[0]}x{size[1]}")
    return wh


class _WriterContext:
    """``with`` support for an atomic writer: closed (written) on success, aborted on an error."""

    def close(self) -> Path:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> "_WriterContext":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is not None:
            self.abort()
        else:
            self.close()


class PreviewWriter(_WriterContext):
    """An animated GIF or WebP preview (looping, no audio), written atomically at :meth:`close`.

    Args:
        path: ``.gif`` or ``.webp``.
        fps: frame rate (GIF stores 10 ms steps, WebP 1 ms; the running time stays exact).
        metadata: tags (GIF: JSON comment; WebP: XMP).
        max_size: longest side the frames are fitted to by :meth:`fit`.
        quality: WebP lossy quality (the watermark survives 80 and up; tested).
    """

    def __init__(self, path: PathLike, fps: float, metadata: dict[str, str] | None = None, *, max_size: int = 640,
                 quality: int = 90, overwrite: bool = True,
                 finalize_hook: Callable[[Path], None] | None = None) -> None:
        self.path = Path(path)
        self.kind = self.path.suffix.lower().lstrip(".")
        if self.kind not in ("gif", "webp"):
            raise InputError(f"a preview is a .gif or .webp file, got {self.path.name}")
        if not overwrite and self.path.exists():
            raise InputError(f"{self.path} already exists; choose another path or allow overwriting")
        self.fps = float(fps)
        self.max_size = int(max_size)
        self.frame_count = 0
        self.size: tuple[int, int] | None = None
        self._meta = dict(metadata or {})
        self._quality = int(quality)
        self._overwrite = overwrite
        self._hook = finalize_hook
        self._frames: list = []
        self._done = False

    def fit(self, frame: np.ndarray) -> np.ndarray:
        """``frame`` downscaled (area filter) so its longer side is at most ``max_size``."""
        h, w = frame.shape[:2]
        scale = self.max_size / max(h, w)
        if scale >= 1.0:
            return frame
        import cv2  # noqa: PLC0415

        return cv2.resize(frame, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)

    def write(self, frame: np.ndarray) -> None:
        """Append one frame (call :meth:`fit` first to get the preview size)."""
        from PIL import Image  # noqa: PLC0415

        if self._done:
            raise AvatarError(f"the writer for {self.path} is already closed")
        self.size = _check(frame, self.frame_count, self.size, self.path)
        im = Image.fromarray(np.ascontiguousarray(frame))
        if self.kind == "gif":  # quantise now: 1 byte per pixel held instead of 3
            im = im.quantize(256, method=Image.Quantize.FASTOCTREE)
        self._frames.append(im)
        self.frame_count += 1

    def close(self) -> Path:
        """Encode, run ``finalize_hook`` on the temp file and rename it onto ``path``."""
        if self._done:
            return self.path
        self._done = True
        frames, self._frames = self._frames, []
        if not frames:
            raise InputError(f"no frames were written to {self.path}; nothing to save")
        if self.kind == "gif":
            opts = {"duration": _durations(len(frames), self.fps, 10), "comment": tags_to_json(self._meta).encode(),
                    "optimize": False, "disposal": 1}
        else:
            opts = {"duration": _durations(len(frames), self.fps, 1), "quality": self._quality, "method": 4,
                    "xmp": tags_to_xmp(self._meta)}
        with atomic_path(self.path, overwrite=self._overwrite) as tmp:
            try:
                frames[0].save(tmp, format=self.kind.upper(), save_all=True, append_images=frames[1:], loop=0, **opts)
            except OSError as exc:
                raise AvatarError(f"writing {self.path} failed ({exc}); is the disk full?") from None
            if self._hook is not None:
                self._hook(tmp)
        return self.path

    def abort(self) -> None:
        """Discard the frames; nothing is written."""
        self._done = True
        self._frames = []


class PngSequenceWriter(_WriterContext):
    """A folder of numbered PNG frames (:func:`frame_name`), built under a temp name and renamed at the end.

    Args:
        path: the folder; with ``overwrite`` an existing one is replaced as a whole.
        fps: stored as the ``fps`` text chunk of every frame.
        metadata: tags, as PNG text chunks of every frame.
        compress_level: zlib level (1: fast; PNG stays lossless at any level).
    """

    def __init__(self, path: PathLike, fps: float, metadata: dict[str, str] | None = None, *, compress_level: int = 1,
                 overwrite: bool = True, finalize_hook: Callable[[Path], None] | None = None) -> None:
        from PIL.PngImagePlugin import PngInfo  # noqa: PLC0415

        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise InputError(f"{self.path} is a file; a PNG sequence is written to a folder")
        if self.path.exists() and not overwrite:
            raise InputError(f"{self.path} already exists; choose another folder or allow overwriting")
        self.fps = float(fps)
        self.frame_count = 0
        self.size: tuple[int, int] | None = None
        self._level = int(compress_level)
        self._overwrite = overwrite
        self._hook = finalize_hook
        self._info = PngInfo()
        for k, v in {**(metadata or {}), "fps": f"{self.fps:g}"}.items():
            self._info.add_itxt(str(k), str(v))  # iTXt: UTF-8, any text
        self._done = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            for _ in range(100):
                tmp = self.path.with_name(f".{self.path.name}.tmp-{secrets.token_hex(4)}")
                with contextlib.suppress(FileExistsError):
                    tmp.mkdir()
                    break
            else:
                raise InputError(f"cannot create a temp folder next to {self.path}")
        except OSError as exc:
            raise InputError(f"cannot write to {self.path.parent}: {exc.strerror or exc}") from None
        self.temp_path = tmp

    def fit(self, frame: np.ndarray) -> np.ndarray:
        """Frames are stored at full size."""
        return frame

    def write(self, frame: np.ndarray) -> None:
        """Write (and finalise) the next frame file."""
        from PIL import Image  # noqa: PLC0415

        if self._done:
            raise AvatarError(f"the writer for {self.path} is already closed")
        self.size = _check(frame, self.frame_count, self.size, self.path)
        file = self.temp_path / frame_name(self.frame_count)
        try:
            Image.fromarray(np.ascontiguousarray(frame)).save(file, format="PNG", pnginfo=self._info,
                                                             compress_level=self._level)
        except OSError as exc:
            self.abort()
            raise AvatarError(f"writing {file.name} of {self.path} failed ({exc}); is the disk full?") from None
        if self._hook is not None:
            try:
                self._hook(file)
            except BaseException:
                self.abort()
                raise
        self.frame_count += 1

    def close(self) -> Path:
        """Rename the finished folder onto ``path`` (replacing an old one when allowed)."""
        if self._done:
            return self.path
        if self.frame_count == 0:
            self.abort()
            raise InputError(f"no frames were written to {self.path}; nothing to save")
        self._done = True
        old = None
        if self.path.exists():
            if not self._overwrite:
                shutil.rmtree(self.temp_path, ignore_errors=True)
                raise InputError(f"{self.path} already exists; choose another folder or allow overwriting")
            old = self.path.with_name(f".{self.path.name}.old-{secrets.token_hex(4)}")
            os.replace(self.path, old)
        os.replace(self.temp_path, self.path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.path

    def abort(self) -> None:
        """Remove the temp folder; the target is left as it was."""
        if not self._done:
            self._done = True
            shutil.rmtree(self.temp_path, ignore_errors=True)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.abort()
