"""Atomic file output: write to a temp file in the target folder, then rename over the target.

A reader never sees a half-written file, and a failure leaves the previous file (if any)
untouched. The temp file sits in the same folder (same filesystem, so ``os.replace`` is
atomic) and keeps the target's suffix, so writers that guess the format from the name
(PIL, FFmpeg muxers) still pick the right one.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from ..errors import InputError

__all__ = ["atomic_path", "atomic_write_bytes"]


def _temp_sibling(final: Path, mode: int) -> Path:
    """Create (exclusively) and return an empty temp file next to ``final``."""
    for _ in range(100):
        tmp = final.with_name(f".{final.name}.tmp-{secrets.token_hex(4)}{final.suffix}")
        try:
            # O_EXCL: never clobber someone else's temp. The mode is set at creation (the
            # umask still applies), so a private key is never readable, not even briefly;
            # mkstemp's fixed 0o600 would instead leak onto ordinary outputs.
            fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise InputError(f"cannot create a temp file next to {final}; clean up stale '.{final.name}.tmp-*' files")


def _fsync(path: Path) -> None:
    # Without fsync a crash right after the rename can leave an empty file in place of
    # the old one on some filesystems.
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike[str], overwrite: bool = True, mode: int = 0o666) -> Iterator[Path]:
    """Yield a temp path next to ``final``; on success rename it onto ``final``.

    The temp file exists (empty) when the block starts; write to it by name. On any
    exception inside the block the temp file is deleted and ``final`` is left as it was.
    Missing parent folders are created.

    Args:
        final: the path the finished file should have.
        overwrite: if False and ``final`` already exists, raise :class:`InputError`
            (before the block runs, and again at rename time if it appeared meanwhile).
        mode: permission bits of the new file, before the umask (0o600 for secrets).

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> with atomic_path(d / "a.txt") as tmp:
        ...     _ = tmp.write_text("hi")
        >>> (d / "a.txt").read_text()
        'hi'
    """
    final = Path(final)
    if not overwrite and final.exists():
        raise InputError(f"{final} already exists; choose another path or allow overwriting")
    if final.exists() and final.is_dir():
        raise InputError(f"{final} is a folder; expected a file path to write")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create folder {final.parent} for {final.name}: {exc.strerror or exc}") from None
    try:
        tmp = _temp_sibling(final, mode)
    except OSError as exc:
        raise InputError(f"cannot write to {final.parent}: {exc.strerror or exc}") from None
    try:
        yield tmp
        if not tmp.exists():
            raise InputError(f"the temp file for {final} vanished before it was finished")
        _fsync(tmp)
        if overwrite:
            os.replace(tmp, final)
        else:
            try:
                # link() refuses to clobber: closes the race between the check above and now.
                os.link(tmp, final)
            except FileExistsError:
                raise InputError(f"{final} already exists; choose another path or allow overwriting") from None
            except OSError:  # filesystems without hard links
                if final.exists():
                    raise InputError(f"{final} already exists; choose another path or allow overwriting") from None
                os.replace(tmp, final)
            else:
                tmp.unlink()
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, overwrite: bool = True, mode: int = 0o666) -> Path:
    """Write ``data`` to ``path`` atomically (``mode`` as in :func:`atomic_path`); return the path."""
    path = Path(path)
    with atomic_path(path, overwrite=overwrite, mode=mode) as tmp:
        tmp.write_bytes(data)
    return path
