"""Exceptions raised by avatar. Every user-facing failure derives from :class:`AvatarError`.

Messages say what was expected, what arrived and, where possible, what to do.
"""

from __future__ import annotations


class AvatarError(Exception):
    """Base class of every error avatar raises on purpose."""


class ConfigError(AvatarError, ValueError):
    """An option has an invalid value."""


class InputError(AvatarError):
    """An input file or array cannot be used (unreadable, empty, wrong kind)."""


class NoFaceError(InputError):
    """No face (or not the requested face) was found in an image or frame."""


class ShapeError(InputError, ValueError):
    """An array has the wrong shape or dtype."""


class WeightsError(AvatarError):
    """A checkpoint is missing, corrupt, unsafe or does not fit the model."""


class EngineUnavailable(AvatarError):
    """An engine cannot run here (missing optional dependency or weights)."""


class ConsentError(AvatarError):
    """No valid consent covers the requested use of a likeness."""
