"""Settings of the Gradio demo: one frozen dataclass, built from CLI flags or by tests."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..config import AvatarConfig
from ..errors import ConfigError

FOMM_ENV = "AVATAR_FOMM_CHECKPOINT"
ONNX_ENV = "AVATAR_ONNX_MODEL_DIR"


@dataclass(frozen=True, slots=True)
class DemoSettings:
    """How the demo runs and what it accepts.

    config: base settings of every render (each request derives its own with ``replace``).
    store_path: consent database; None = the user's default store.
    max_upload_mb: largest upload accepted (Gradio refuses bigger files before they arrive).
    max_seconds: longest driving video / audio accepted, probed before any work.
    concurrency: renders running at once (all tabs share one limit); queue_size: waiting jobs.
    live_fps: webcam frames sent per second to the Live tab; live_seconds: one session's limit.
    """

    config: AvatarConfig = field(default_factory=AvatarConfig)
    store_path: Path | None = None
    max_upload_mb: float = 50.0
    max_seconds: float = 60.0
    concurrency: int = 1
    queue_size: int = 16
    live_fps: float = 10.0
    live_seconds: int = 300
    cache_minutes: int = 60

    def __post_init__(self) -> None:
        if not 0 < self.max_upload_mb <= 10_000:
            raise ConfigError(f"max_upload_mb must be in (0, 10000], got {self.max_upload_mb}")
        if not 0 < self.max_seconds <= 3600:
            raise ConfigError(f"max_seconds must be in (0, 3600], got {self.max_seconds}")
        if not 1 <= self.concurrency <= 64:
            raise ConfigError(f"concurrency must be in [1, 64], got {self.concurrency}")
        if not 1 <= self.queue_size <= 10_000:
            raise ConfigError(f"queue_size must be in [1, 10000], got {self.queue_size}")
        if not 1 <= self.live_fps <= 60:
            raise ConfigError(f"live_fps must be in [1, 60], got {self.live_fps}")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


def available_engines(config: AvatarConfig) -> list[str]:
    """Engines the Animate tab offers: warp always; fomm / onnx only when their weights are configured.

    Weights come from ``config.render`` (checkpoint / model_dir) or ``$AVATAR_FOMM_CHECKPOINT`` /
    ``$AVATAR_ONNX_MODEL_DIR``.
    """
    engines = ["warp"]
    if _fomm_checkpoint(config):
        engines.append("fomm")
    if _onnx_model_dir(config):
        engines.append("onnx")
    return engines


def _fomm_checkpoint(config: AvatarConfig) -> str | None:
    path = config.render.checkpoint or os.environ.get(FOMM_ENV)
    return path if path and Path(path).is_file() else None


def _onnx_model_dir(config: AvatarConfig) -> str | None:
    path = config.render.model_dir or os.environ.get(ONNX_ENV)
    return path if path and Path(path).is_dir() else None


def engine_render_config(config: AvatarConfig, engine: str):
    """The RenderConfig for ``engine`` with its configured weights filled in."""
    from dataclasses import replace

    if engine not in available_engines(config):
        raise ConfigError(f"engine {engine!r} is not available in this demo; choose one of "
                          f"{', '.join(available_engines(config))} (fomm/onnx need their weights configured)")
    if engine == "fomm":
        return replace(config.render, engine="fomm", checkpoint=_fomm_checkpoint(config))
    if engine == "onnx":
        return replace(config.render, engine="onnx", model_dir=_onnx_model_dir(config))
    return replace(config.render, engine="warp")
