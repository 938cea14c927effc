"""Output formats, chosen by the output path, and the writer for each.

| path | format | audio | tags | C2PA (c2pa-python) |
|---|---|---|---|---|
| ``.mp4`` ``.m4v`` ``.mov`` | H.264 + AAC | yes | MP4/MOV metadata | yes |
| ``.webm`` | VP9 + Opus | yes | Matroska tags | no: c2pa-python has no WebM/Matroska support |
| ``.gif`` | animated GIF preview | no | JSON comment | yes |
| ``.webp`` | animated WebP preview | no | XMP | yes |
| a folder: ``NAME/`` or an existing folder | PNG sequence | no | PNG iTXt chunks | yes, every frame |

Every writer takes (H, W, 3) uint8 RGB frames through ``fit`` (the size it stores) and
``write``, and appears atomically at ``close``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = ["FORMATS", "OutputFormat", "open_writer", "output_format"]


@dataclass(frozen=True)
class OutputFormat:
    """name: "mp4" | "mov" | "webm" | "gif" | "webp" | "png-sequence".
    c2pa_mime: the MIME type c2pa-python signs for each written file; None where it cannot.
    audio: whether the format carries the sound. preview: downscaled to the preview size."""

    name: str
    c2pa_mime: str | None
    audio: bool
    preview: bool = False


FORMATS: dict[str, OutputFormat] = {
    ".mp4": OutputFormat("mp4", "video/mp4", True),
    ".m4v": OutputFormat("mp4", "video/mp4", True),
    ".mov": OutputFormat("mov", "video/quicktime", True),
    ".webm": OutputFormat("webm", None, True),
    ".gif": OutputFormat("gif", "image/gif", False, preview=True),
    ".webp": OutputFormat("webp", "image/webp", False, preview=True),
}
PNG_SEQUENCE = OutputFormat("png-sequence", "image/png", False)
SUPPORTED = ".mp4, .m4v, .mov, .webm, .gif, .webp, or a folder ending in '/' for a PNG sequence"


def output_format(path: str | os.PathLike[str]) -> OutputFormat:
    """The format an output path asks for: its suffix, or a PNG sequence for a folder.

    A folder is a path that ends in ``/`` (or the OS separator) or an existing directory.

    Raises:
        ConfigError: any other suffix (naming the supported ones).
    """
    text = os.fspath(path)
    if text.endswith(("/", os.sep)) or Path(text).is_dir():
        return PNG_SEQUENCE
    suffix = Path(text).suffix.lower()
    fmt = FORMATS.get(suffix)
    if fmt is None:
        what = f"the extension {suffix!r}" if suffix else "no extension"
        hint = " (a PNG sequence is written to a folder: end the path with '/')" if suffix == ".png" else ""
        raise ConfigError(f"cannot write {text}: {what} is not an output format; use {SUPPORTED}{hint}")
    return fmt


def open_writer(path: str | os.PathLike[str], fps: float, *, metadata: dict[str, str] | None = None,
                audio: Any = None, crf: int = 18, overwrite: bool = False, preview_size: int = 640,
                finalize_hook: Callable[[Path], None] | None = None) -> Any:
    """A writer for ``path`` in the format :func:`output_format` gives (audio is ignored where the
    format has none; the caller decides whether to warn)."""
    fmt = output_format(path)
    if fmt.name == "png-sequence":
        from .animation import PngSequenceWriter  # noqa: PLC0415

        return PngSequenceWriter(path, fps, metadata, overwrite=overwrite, finalize_hook=finalize_hook)
    if fmt.preview:
        from .animation import PreviewWriter  # noqa: PLC0415

        return PreviewWriter(path, fps, metadata, max_size=preview_size, overwrite=overwrite,
                             finalize_hook=finalize_hook)
    from .video import VideoWriter  # noqa: PLC0415

    return VideoWriter(path, fps, crf=crf, metadata=metadata, audio=audio, overwrite=overwrite,
                       finalize_hook=finalize_hook)
