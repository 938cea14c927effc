"""FOMM architecture hyper-parameters (frozen). The defaults are ``config/vox-256.yaml``.

The official checkpoints only load into models built with the matching architecture, so
these values come from the weights manifest (``config = "vox-256"``), never from user flags.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from ...errors import ConfigError


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


@dataclass(frozen=True, slots=True)
class KPDetectorConfig:
    """Keypoint detector: hourglass on the 0.25-downsampled image, 7×7 heads with ``pad``."""

    temperature: float = 0.1
    block_expansion: int = 32
    max_features: int = 1024
    scale_factor: float = 0.25
    num_blocks: int = 5
    pad: int = 0

    def __post_init__(self) -> None:
        _check(self.temperature > 0, f"kp temperature must be > 0, got {self.temperature}")
        _check(0 < self.scale_factor <= 1, f"kp scale_factor must be in (0, 1], got {self.scale_factor}")
        _check(self.num_blocks >= 1 and self.block_expansion >= 1, "kp num_blocks and block_expansion must be >= 1")


@dataclass(frozen=True, slots=True)
class DenseMotionConfig:
    """Dense motion network (runs at ``scale_factor`` of the generator input)."""

    block_expansion: int = 64
    max_features: int = 1024
    num_blocks: int = 5
    scale_factor: float = 0.25
    kp_variance: float = 0.01

    def __post_init__(self) -> None:
        _check(0 < self.scale_factor <= 1, f"dense-motion scale_factor must be in (0, 1], got {self.scale_factor}")
        _check(self.kp_variance > 0, f"kp_variance must be > 0, got {self.kp_variance}")


@dataclass(frozen=True, slots=True)
class GeneratorConfig:
    """Occlusion-aware generator."""

    block_expansion: int = 64
    max_features: int = 512
    num_down_blocks: int = 2
    num_bottleneck_blocks: int = 6
    estimate_occlusion_map: bool = True
    dense_motion: DenseMotionConfig = field(default_factory=DenseMotionConfig)


@dataclass(frozen=True, slots=True)
class FommConfig:
    """Whole FOMM architecture. ``FommConfig()`` is vox-256.

    align_corners: passed to every ``grid_sample``. The released checkpoints were trained
        under torch 1.0 (behaviour of True), but the reference code run on today's torch uses
        False, and the parity fixture was made that way; False is the default (NOTES §9).
    image_size: side of the square input the models were trained on (256 for vox-256).
    """

    num_kp: int = 10
    num_channels: int = 3
    estimate_jacobian: bool = True
    kp_detector: KPDetectorConfig = field(default_factory=KPDetectorConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    align_corners: bool = False
    image_size: int = 256

    def __post_init__(self) -> None:
        _check(self.num_kp >= 3, f"num_kp must be >= 3 (the movement scale needs a hull), got {self.num_kp}")
        _check(self.num_channels >= 1, f"num_channels must be >= 1, got {self.num_channels}")
        _check(self.image_size >= 32, f"image_size must be >= 32, got {self.image_size}")

    @classmethod
    def from_model_params(cls, params: Mapping[str, Any], **overrides: Any) -> FommConfig:
        """Build from the upstream yaml layout: ``{'model_params': {...}}`` or the inner dict."""
        mp = params.get("model_params", params)
        try:
            common = dict(mp["common_params"])
            kp = dict(mp["kp_detector_params"])
            gen = dict(mp["generator_params"])
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"FOMM model_params need common_params, kp_detector_params and generator_params; missing {exc}") from None
        dm = dict(gen.pop("dense_motion_params", {}) or {})
        _check(not kp.pop("single_jacobian_map", False), "single_jacobian_map=True is not supported")
        try:
            return cls(
                num_kp=int(common["num_kp"]),
                num_channels=int(common["num_channels"]),
                estimate_jacobian=bool(common.get("estimate_jacobian", False)),
                kp_detector=_build(KPDetectorConfig, kp),
                generator=GeneratorConfig(dense_motion=_build(DenseMotionConfig, dm), **_known(GeneratorConfig, gen)),
                **overrides,
            )
        except TypeError as exc:
            raise ConfigError(f"bad FOMM model_params: {exc}") from None


def _known(cls: type, d: Mapping[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    unknown = set(d) - names
    _check(not unknown, f"unknown {cls.__name__} keys {sorted(unknown)}")
    return dict(d)


def _build(cls: type, d: Mapping[str, Any]) -> Any:
    return cls(**_known(cls, d))


VOX_256 = FommConfig()
CONFIGS: dict[str, FommConfig] = {"vox-256": VOX_256}
