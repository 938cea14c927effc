"""Where a batch's videos go: a local folder, or any fsspec URL (``s3://``, ``gs://``, ``memory://``...).

Local outputs are written in place, atomically (temp file + rename, see :mod:`avatar.media.atomic`).
Remote outputs are rendered to a local temp file first and then uploaded whole: object
stores only show an object once its upload completes, so no reader sees half a video.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path

from ..errors import InputError

# atomic_path's temp names: ".NAME.tmp-XXXXXXXX.SUFFIX" (nested for C2PA signing)
_TEMP = re.compile(r"^\..+\.tmp-[0-9a-f]{8}(\.[^.]+)?$")


class OutputDir:
    """A batch's output folder; ``url`` is a local path or an fsspec URL."""

    def __init__(self, url: str | os.PathLike[str]) -> None:
        text = os.fspath(url)
        self.url = text
        protocol = text.split("://", 1)[0] if "://" in text else "file"
        self.local = protocol in ("file", "local")
        if self.local:
            self.root = Path(text.split("://", 1)[1] if "://" in text else text).expanduser().resolve()
            self.fs = None
        else:
            try:
                import fsspec
            except ImportError:
                raise InputError(f"output folder {text} is a URL: install fsspec (pip install 'avatar[batch]')") from None
            try:
                self.fs, path = fsspec.url_to_fs(text)
            except (ImportError, ValueError) as exc:
                raise InputError(f"cannot use the output folder {text}: {exc} "
                                 f"(install the fsspec backend for {protocol}://, e.g. s3fs or gcsfs)") from None
            self.root_path = path.rstrip("/")

    def target(self, name: str) -> str:
        """Where the output ``name`` ends up (path or URL)."""
        if self.local:
            return str(self.root / name)
        return self.fs.unstrip_protocol(f"{self.root_path}/{name}")

    def check_writable(self) -> None:
        """Create the folder and prove that a file can be written there; InputError naming it otherwise."""
        try:
            if self.local:
                self.root.mkdir(parents=True, exist_ok=True)
                with tempfile.NamedTemporaryFile(dir=self.root, prefix=".avatar-batch-probe-"):
                    pass
            else:
                self.fs.makedirs(self.root_path, exist_ok=True)
                probe = f"{self.root_path}/.avatar-batch-probe"
                self.fs.pipe_file(probe, b"")
                self.fs.rm_file(probe)
        except (OSError, PermissionError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            raise InputError(f"the output folder {self.url} is not writable: {reason}") from None

    def size(self, name: str) -> int | None:
        """Size in bytes of the finished output ``name``, or None if there is none."""
        try:
            if self.local:
                st = (self.root / name).stat()
                return st.st_size
            return int(self.fs.size(f"{self.root_path}/{name}"))
        except (OSError, FileNotFoundError):
            return None

    def upload(self, local_file: str | os.PathLike[str], name: str) -> str:
        """Copy a finished local file to ``name`` (remote folders); returns the target URL."""
        dest = f"{self.root_path}/{name}"
        parent = dest.rsplit("/", 1)[0]
        with contextlib.suppress(OSError, NotImplementedError):
            self.fs.makedirs(parent, exist_ok=True)
        try:
            self.fs.put_file(os.fspath(local_file), dest)
        except OSError as exc:
            raise InputError(f"cannot upload {name} to {self.url}: {exc}") from None
        return self.target(name)

    def remove_temps(self, name: str | None = None) -> int:
        """Delete leftover temp files of interrupted writes (all, or those of output ``name``); the count.

        Only safe while this batch holds the manifest lock (no other writer in this folder).
        """
        if not self.local or not self.root.is_dir():
            return 0
        if name is not None:
            final = self.root / name
            folders, prefix = [final.parent], f".{final.name}.tmp-"
        else:
            folders, prefix = [Path(d) for d, _, _ in os.walk(self.root)], "."
        n = 0
        for folder in folders:
            with contextlib.suppress(OSError):
                for entry in os.scandir(folder):
                    if entry.is_file() and entry.name.startswith(prefix) and _TEMP.match(entry.name):
                        with contextlib.suppress(OSError):
                            os.unlink(entry.path)
                            n += 1
        return n
