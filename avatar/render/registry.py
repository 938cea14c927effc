"""Engine registry: a plain mapping from name to factory."""

from __future__ import annotations

from typing import Callable

from ..config import RenderConfig
from ..errors import ConfigError
from .base import Engine

EngineFactory = Callable[[RenderConfig], Engine]
_FACTORIES: dict[str, EngineFactory] = {}


def register_engine(name: str, factory: EngineFactory) -> None:
    """Make ``create_engine(name, ...)`` call ``factory``."""
    _FACTORIES[name] = factory


def list_engines() -> list[str]:
    """Names of the engines this install knows."""
    _register_builtins()
    return sorted(_FACTORIES)


def create_engine(config: RenderConfig | str = "warp") -> Engine:
    """Build the engine named by ``config.engine`` (heavy imports happen here, lazily)."""
    if isinstance(config, str):
        config = RenderConfig(engine=config)
    _register_builtins()
    try:
        factory = _FACTORIES[config.engine]
    except KeyError:
        raise ConfigError(f"unknown engine {config.engine!r}; choose one of {', '.join(sorted(_FACTORIES))}") from None
    return factory(config)


def _warp(cfg: RenderConfig) -> Engine:
    from .warp import WarpEngine

    return WarpEngine(cfg)


def _fomm(cfg: RenderConfig) -> Engine:
    from .fomm.engine import FommEngine

    return FommEngine(cfg)


def _onnx(cfg: RenderConfig) -> Engine:
    from .onnx import OnnxEngine

    return OnnxEngine(cfg)


def _keyframes(cfg: RenderConfig) -> Engine:
    from .keyframes import KeyframeEngine

    return KeyframeEngine(cfg)


def _register_builtins() -> None:
    for name, fn in (("warp", _warp), ("fomm", _fomm), ("onnx", _onnx), ("keyframes", _keyframes)):
        _FACTORIES.setdefault(name, fn)
