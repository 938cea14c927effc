"""The results manifest: one JSON line per finished job, appended and fsynced as each job ends.

A batch killed at any moment (Ctrl-C, kill -9) keeps every line written before; a torn last
line is ignored on reload. Rerunning reads the manifest back (the last line per output wins)
to skip jobs that are already done. A lock file keeps two batches from sharing one manifest.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Entry:
    """What the manifest last said about one output."""

    key: str
    status: str
    size: int | None
    sha256: str | None


class Manifest:
    """Append-only JSONL of job results at ``path`` (created with private permissions)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._fh = None
        self._lock_fd: int | None = None

    def load(self) -> dict[str, Entry]:
        """Output name → its last entry; unreadable lines (a torn write) are skipped with a warning."""
        index: dict[str, Entry] = {}
        if not self.path.exists():
            return index
        try:
            fh = open(self.path, encoding="utf-8", errors="replace")
        except OSError as exc:
            raise InputError(f"cannot read the manifest {self.path}: {exc.strerror or exc}") from None
        with fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                    index[rec["output"]] = Entry(rec["key"], rec["status"], rec.get("size"), rec.get("sha256"))
                except (json.JSONDecodeError, KeyError, TypeError):
                    log.warning("%s line %d is not a complete result (an interrupted write?); ignored", self.path, n)
        return index

    def open(self) -> "Manifest":
        """Lock the manifest for this batch and open it for appending."""
        import fcntl

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_CREAT | os.O_RDWR, 0o600)
        except OSError as exc:
            raise InputError(f"cannot write the manifest {self.path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise InputError(f"another batch is running with the manifest {self.path}; wait for it or use --manifest") from None
        fd = os.open(self.path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)
        self._fh = os.fdopen(fd, "a", encoding="utf-8")
        if self.path.stat().st_size:
            with open(self.path, "rb") as fh:
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":  # a torn last line: start ours on a fresh line
                    self._fh.write("\n")
        return self

    def append(self, record: dict[str, Any]) -> None:
        """Write one result durably (flush + fsync), so a kill right after keeps it."""
        assert self._fh is not None, "open() the manifest first"
        self._fh.write(json.dumps(record, sort_keys=True, default=str) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> "Manifest":
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()
