"""Where avatar keeps its files. Nothing here creates folders on import."""

from __future__ import annotations

import os
import site
import sys
from pathlib import Path


def avatar_home() -> Path:
    """Root of avatar's user data: ``$AVATAR_HOME`` or the platform's user data folder."""
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
