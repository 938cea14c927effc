"""Where avatar keeps its files. Nothing here creates folders on import."""

from __future__ import annotations

import logging
import os
import site
import stat
import sys
import threading
from pathlib import Path

log = logging.getLogger(__name__)

# Faces, descriptors, consent records and signing keys are personal data: owner-only modes.
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
_warned: set[str] = set()
_warn_lock = threading.Lock()


def avatar_home() -> Path:
    """Root of avatar's user data: ``$AVATAR_HOME``, else the platform's user data folder
    (``~/.local/share/avatar`` on Linux, ``$XDG_DATA_HOME/avatar`` when that is set)."""
    env = os.environ.get("AVATAR_HOME")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("avatar", appauthor=False))


def cache_dir() -> Path:
    """Downloaded checkpoints: ``$AVATAR_HOME/cache`` or the platform's user cache folder."""
    env = os.environ.get("AVATAR_HOME")
    if env:
        return Path(env).expanduser() / "cache"
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("avatar", appauthor=False))


def shipped_weights_dir() -> Path:
    """The project's ``weights/`` folder (small weights shipped with the code, and the manifest).

    A source checkout (or editable install) uses ``<repo>/weights``; a wheel install puts the
    same files in ``<prefix>/share/avatar/weights``.
    """
    checkout = Path(__file__).resolve().parent.parent / "weights"
    if (checkout / "manifest.toml").is_file():
        return checkout
    for prefix in (sys.prefix, sys.base_prefix, site.USER_BASE or ""):
        installed = Path(prefix) / "share" / "avatar" / "weights"
        if (installed / "manifest.toml").is_file():
            return installed
    return checkout


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) owner-only (0700). An existing folder is left as it
    is: :func:`warn_if_exposed` reports one that others can read."""
    path = Path(path)
    missing = []
    p = path
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=PRIVATE_DIR_MODE)
        except FileExistsError:  # created meanwhile by another process
            continue
        os.chmod(d, PRIVATE_DIR_MODE)  # mkdir's mode is reduced by the umask; ours must not be widened
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` empty and owner-only (0600) unless it already exists."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, PRIVATE_FILE_MODE)
    except FileExistsError:
        return path
    os.close(fd)
    return path


def exposed(path: Path) -> bool:
    """``path`` exists and its group or others have any access to it."""
    try:
        return bool(stat.S_IMODE(os.stat(path).st_mode) & 0o077)
    except OSError:
        return False


def warn_if_exposed(what: str, paths: list[Path]) -> list[Path]:
    """One warning (once per ``what`` and process) listing the ``paths`` others can access.

    Returns the exposed paths. Nothing is changed: the owner decides (the message says how).
    """
    bad = [Path(p) for p in paths if exposed(p)]
    if not bad:
        return bad
    with _warn_lock:
        if what in _warned:
            return bad
        _warned.add(what)
    listed = ", ".join(f"{p} ({stat.S_IMODE(os.stat(p).st_mode):o})" for p in bad)
    log.warning("%s holds faces, consent records or keys, but other users can read: %s; make it private: "
                "chmod -R go-rwx %s", what, listed, bad[0] if bad[0].is_dir() else bad[0].parent)
    return bad
