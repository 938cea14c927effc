"""avatar: animate one portrait from a driving video, a webcam or speech.

Public API (heavy modules load on first use)::

    from avatar import Animator, AvatarConfig, animate, talk
    from avatar import clone_video   # a consented video → a video avatar (docs/clone.md)
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .config import (AvatarConfig, CloneConfig, FaceConfig, MotionConfig, OutputConfig, RenderConfig,
                     SmoothingConfig, SpeechConfig)
from .errors import (AvatarError, ConfigError, ConsentError, EngineUnavailable, InputError, NoFaceError,
                     ShapeError, WeightsError)

__version__ = "0.1.0"

_LAZY = {
    "Animator": "avatar.pipeline",
    "AnimationResult": "avatar.pipeline",
    "animate": "avatar.pipeline",
    "talk": "avatar.pipeline",
    "create_engine": "avatar.render.registry",
    "list_engines": "avatar.render.registry",
    "clone_video": "avatar.pack.clone",
}

__all__ = [
    "AvatarConfig", "CloneConfig", "FaceConfig", "MotionConfig", "OutputConfig", "RenderConfig", "SmoothingConfig", "SpeechConfig",
    "AvatarError", "ConfigError", "ConsentError", "EngineUnavailable", "InputError", "NoFaceError",
    "ShapeError", "WeightsError", "__version__", *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'avatar' has no attribute {name!r}")
