"""The ``fomm`` engine: First Order Motion Model driven by driving-video crops.

This module alone chooses the device, dtype and autocast; the networks stay device-agnostic.
"""

from __future__ import annotations

import contextlib
import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ...config import MotionConfig, RenderConfig
from ...errors import ConfigError, EngineUnavailable, InputError, ShapeError
from ...types import DriveTarget, FaceCrop
from ..base import Engine
from .blocks import Keypoints
from .config import CONFIGS, FommConfig
from .generator import OcclusionAwareGenerator
from .keypoint_detector import KPDetector
from .motion import best_frame_index, normalize_kp

log = logging.getLogger(__name__)

_REFERENCE_CACHE = 8


@dataclass(eq=False)
class FommState:
    """Everything that depends on the source only (plus a small cache of reference keypoints).

    source: (1, C, 256, 256) model input; kp_source: its keypoints; features: the generator's
    encoding of the source; size: side S of the source crop (the output size).
    """

    size: int
    source: Tensor
    kp_source: Keypoints
    features: Tensor
    references: OrderedDict[int, tuple[FaceCrop, Keypoints]] = field(default_factory=OrderedDict)


def _device(name: str) -> torch.device:
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device must be cpu, cuda, cuda:N or mps, got {name!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise EngineUnavailable(f"device {name!r} requested but torch sees no CUDA GPU; use --device cpu")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise EngineUnavailable(f"device {name!r} requested but MPS is not available; use --device cpu")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"device must be cpu, cuda, cuda:N or mps, got {name!r}")
    return dev


def _check_image(image: Any, what: str) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        got = f"{tuple(image.shape)} {image.dtype}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ShapeError(f"{what} must be an (S, S, 3) uint8 RGB array, got {got}")
    if image.shape[0] != image.shape[1] or image.shape[0] < 8:
        raise ShapeError(f"{what} must be square (S, S, 3) with S >= 8, got {tuple(image.shape)}")
    return image


class FommEngine(Engine):
    """Renders the portrait with FOMM, one driving crop per target.

    Args:
        cfg: ``checkpoint`` (a path, a manifest name such as "vox", or a file in the cache),
            ``device``, ``half`` (fp16 autocast, CUDA only) and ``batch_size`` are used.
        arch: architecture of the checkpoint (default vox-256).
        kp_detector, generator: ready models (e.g. random weights in tests); when given,
            ``cfg.checkpoint`` is not read.
        adapt_movement_scale: in relative mode, scale the driver's motion by the ratio of
            keypoint hull sizes (per sample).
        relative_jacobian: in relative mode, also transfer jacobians relatively.

    Relative mode is chosen per target: ``target.reference`` set → relative to that driving
    reference crop; None → absolute driving keypoints.
    """

    name = "fomm"
    needs_driving_image = True

    def __init__(
        self,
        cfg: RenderConfig | None = None,
        arch: FommConfig | None = None,
        *,
        kp_detector: KPDetector | None = None,
        generator: OcclusionAwareGenerator | None = None,
        adapt_movement_scale: bool = True,
        relative_jacobian: bool = True,
    ) -> None:
        self.cfg = cfg or RenderConfig(engine="fomm")
        self.arch = arch or CONFIGS["vox-256"]
        self.device = _device(self.cfg.device)
        self.half = bool(self.cfg.half) and self.device.type == "cuda"
        if self.cfg.half and not self.half:
            log.warning("half precision is only used on CUDA; running %s in float32", self.device.type)
        self.adapt_movement_scale = adapt_movement_scale
        self.relative_jacobian = relative_jacobian
        if (kp_detector is None) != (generator is None):
            raise ConfigError("pass both kp_detector and generator, or neither (then cfg.checkpoint is loaded)")
        if kp_detector is None:
            from ...weights_registry import resolve_checkpoint
            from .weights import load_models

            path = resolve_checkpoint(self.cfg.checkpoint)
            kp_detector, generator = load_models(path, self.arch, device=self.device)
        self.kp_detector = kp_detector.to(self.device).eval()
        self.generator = generator.to(self.device).eval()  # type: ignore[union-attr]

    def configure(self, motion: MotionConfig) -> None:
        """``motion.adapt_scale`` switches movement-scale adaptation (relative mode)."""
        self.adapt_movement_scale = bool(motion.adapt_scale)

    # -- helpers -------------------------------------------------------------------------

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.half:
            return torch.autocast(device_type="cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    def _to_input(self, images: Sequence[np.ndarray]) -> Tensor:
        """(S, S, 3) uint8 crops → (B, 3, 256, 256) float in [0, 1] on the device (anti-aliased resize)."""
        n = self.arch.image_size
        if len({im.shape for im in images}) == 1:
            groups = [np.stack(images)]
        else:  # crops of different sizes: resize one by one
            groups = [im[None] for im in images]
        batch = []
        for g in groups:
            t = torch.from_numpy(np.ascontiguousarray(g)).to(self.device).permute(0, 3, 1, 2)
            t = t.float() / 255  # true division, as the reference's input conversion (NOTES §1)
            if t.shape[-1] != n:
                t = F.interpolate(t, size=(n, n), mode="bilinear", align_corners=False, antialias=True).clamp_(0, 1)
            batch.append(t)
        return torch.cat(batch, dim=0)

    def _to_output(self, prediction: Tensor, size: int) -> np.ndarray:
        """(B, 3, 256, 256) float → (B, S, S, 3) uint8."""
        x = prediction.float()
        if x.shape[-1] != size:
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=size < x.shape[-1])
        x = (x.clamp(0, 1) * 255).round_().to(torch.uint8)
        return x.permute(0, 2, 3, 1).contiguous().cpu().numpy()

    # -- the networks: the three hooks a runtime other than eager torch overrides (OnnxEngine) --

    def _keypoints(self, images: Tensor) -> Keypoints:
        """(B, C, 256, 256) → float32 keypoints (B, K, 2), jacobians (B, K, 2, 2)."""
        kp = self.kp_detector(images)
        return Keypoints(kp.value.float(), kp.jacobian.float())

    def _encode(self, source: Tensor) -> Tensor:
        """(1, C, 256, 256) → the generator's source features (1, F, 64, 64)."""
        return self.generator.encode(source)

    def _predict(self, source: Tensor, features: Tensor, kp_driving: Keypoints, kp_source: Keypoints) -> Tensor:
        """Batched (B, ...) inputs → prediction (B, C, 256, 256) in (0, 1)."""
        return self.generator.decode(source, features, kp_driving, kp_source).prediction

    def _reference_kp(self, state: FommState, reference: FaceCrop) -> Keypoints:
        key = id(reference)
        hit = state.references.get(key)
        if hit is not None and hit[0] is reference:
            state.references.move_to_end(key)
            return hit[1]
        image = _check_image(reference.image, "target.reference.image")
        kp = self._keypoints(self._to_input([image]))
        state.references[key] = (reference, kp)  # keeps the object alive, so its id stays unique
        while len(state.references) > _REFERENCE_CACHE:
            state.references.popitem(last=False)
        return kp

    # -- Engine interface ----------------------------------------------------------------

    def prepare(self, source: FaceCrop) -> FommState:
        """Resize the source crop to 256², compute its keypoints and generator encoding."""
        image = _check_image(source.image, "source.image")
        with torch.inference_mode(), self._autocast():
            src = self._to_input([image])
            kp = self._keypoints(src)
            features = self._encode(src)
        return FommState(size=image.shape[0], source=src, kp_source=kp, features=features)

    def render(self, state: FommState, targets: Sequence[DriveTarget]) -> np.ndarray:
        """(B, S, S, 3) uint8 crops, one per target, rendered in chunks of ``cfg.batch_size``."""
        if not isinstance(state, FommState):
            raise InputError(f"render needs the state returned by {type(self).__name__}.prepare, got {type(state).__name__}")
        for i, t in enumerate(targets):
            if t.driving is None:
                raise InputError(f"the {self.name} engine needs a driving crop for every target; target {i} has driving=None")
            _check_image(t.driving.image, f"targets[{i}].driving.image")
        if not targets:
            return np.zeros((0, state.size, state.size, 3), np.uint8)
        step = self.cfg.batch_size
        return np.concatenate([self._render_batch(state, targets[i : i + step]) for i in range(0, len(targets), step)])

    def _render_batch(self, state: FommState, targets: Sequence[DriveTarget]) -> np.ndarray:
        b = len(targets)
        with torch.inference_mode(), self._autocast():
            kp_driving = self._keypoints(self._to_input([t.driving.image for t in targets]))  # type: ignore[union-attr]
            kp_src = Keypoints(state.kp_source.value.expand(b, -1, -1), state.kp_source.jacobian.expand(b, -1, -1, -1))
            relative = [t.reference is not None for t in targets]
            kp_norm = kp_driving
            if any(relative):
                refs = [self._reference_kp(state, t.reference) if t.reference is not None else None for t in targets]
                # absolute samples use their own keypoints as the reference; replaced below
                init = Keypoints(
                    torch.cat([r.value if r is not None else kp_driving.value[i : i + 1] for i, r in enumerate(refs)]),
                    torch.cat([r.jacobian if r is not None else kp_driving.jacobian[i : i + 1] for i, r in enumerate(refs)]),
                )
                rel = normalize_kp(
                    kp_src,
                    kp_driving,
                    init,
                    adapt_movement_scale=self.adapt_movement_scale,
                    use_relative_movement=True,
                    use_relative_jacobian=self.relative_jacobian,
                )
                mask = torch.tensor(relative, device=self.device)
                kp_norm = Keypoints(
                    torch.where(mask.view(b, 1, 1), rel.value, kp_driving.value),
                    torch.where(mask.view(b, 1, 1, 1), rel.jacobian, kp_driving.jacobian),
                )
            prediction = self._predict(
                state.source.expand(b, -1, -1, -1), state.features.expand(b, -1, -1, -1), kp_norm, kp_src
            )
            return self._to_output(prediction, state.size)

    def best_reference_index(self, state: FommState, crops: Sequence[FaceCrop]) -> int:
        """Index of the driving crop whose normalised FOMM keypoints are closest to the source's.

        (For landmark-based selection use :func:`avatar.render.fomm.motion.best_frame_index`.)
        """
        if not crops:
            raise InputError("best_reference_index needs at least one driving crop")
        values = []
        with torch.inference_mode(), self._autocast():
            step = self.cfg.batch_size
            for i in range(0, len(crops), step):
                imgs = [_check_image(c.image, f"crops[{i + j}].image") for j, c in enumerate(crops[i : i + step])]
                values.append(self._keypoints(self._to_input(imgs)).value)
            return int(best_frame_index(state.kp_source.value[0], torch.cat(values)))

    def close(self) -> None:
        """Drop the models (and cached CUDA memory). Safe to call twice."""
        if getattr(self, "generator", None) is None:
            return
        self.kp_detector = None  # type: ignore[assignment]
        self.generator = None  # type: ignore[assignment]
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
