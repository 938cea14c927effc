"""FOMM occlusion-aware generator: encode the source, warp its features, decode (NOTES §8)."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .blocks import DownBlock2d, Keypoints, ResBlock2d, SameBlock2d, UpBlock2d
from .config import FommConfig
from .dense_motion import DenseMotionNetwork


class GeneratorOut(NamedTuple):
    """Generator outputs (upstream dict keys, in order, plus the deformation).

    mask (B, K+1, h, w); sparse_deformed (B, K+1, C, h, w); occlusion_map (B, 1, h, w);
    deformed (B, C, H, W) the source warped by the upsampled deformation (visualisation);
    prediction (B, C, H, W) in (0, 1); deformation (B, h, w, 2).
    """

    mask: Tensor
    sparse_deformed: Tensor
    occlusion_map: Tensor
    deformed: Tensor
    prediction: Tensor
    deformation: Tensor


class OcclusionAwareGenerator(nn.Module):
    """Animates the source image so that its keypoints move from ``kp_source`` to ``kp_driving``.

    ``forward(source, kp_driving, kp_source)``: source (B, C, H, W) float in [0, 1] →
    :class:`GeneratorOut`. ``encode(source)`` + ``decode(source, features, ...)`` split the
    source-only encoder off so that callers can compute it once per portrait.
    """

    def __init__(self, cfg: FommConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or FommConfig()
        gc = cfg.generator
        self.align_corners = cfg.align_corners
        self.dense_motion_network = DenseMotionNetwork(cfg)
        self.first = SameBlock2d(cfg.num_channels, gc.block_expansion, kernel_size=7, padding=3)

        def width(level: int) -> int:
            return min(gc.max_features, gc.block_expansion * (2**level))

        n = gc.num_down_blocks
        self.down_blocks = nn.ModuleList(DownBlock2d(width(i), width(i + 1)) for i in range(n))
        self.up_blocks = nn.ModuleList(UpBlock2d(width(n - i), width(n - i - 1)) for i in range(n))
        self.bottleneck = nn.Sequential()
        for i in range(gc.num_bottleneck_blocks):
            self.bottleneck.add_module(f"r{i}", ResBlock2d(width(n)))
        self.final = nn.Conv2d(gc.block_expansion, cfg.num_channels, kernel_size=(7, 7), padding=(3, 3))
        # resizing the motion fields is decided from the config, not from tensor shapes, so that
        # tracing sees no shape comparisons (the reference resizes on a size mismatch)
        self._resize_to_features = gc.dense_motion.scale_factor != 0.5**n
        self._resize_to_source = gc.dense_motion.scale_factor != 1

    def encode(self, source: Tensor) -> Tensor:
        """(B, C, H, W) → source features (B, F, H/2^n, W/2^n)."""
        out = self.first(source)
        for block in self.down_blocks:
            out = block(out)
        return out

    def _warp(self, x: Tensor, deformation: Tensor, resize: bool) -> Tensor:
        if resize:
            deformation = F.interpolate(deformation.permute(0, 3, 1, 2), size=x.shape[2:], mode="bilinear", align_corners=False)
            deformation = deformation.permute(0, 2, 3, 1)
        return F.grid_sample(x, deformation.to(x.dtype), mode="bilinear", padding_mode="zeros", align_corners=self.align_corners)

    def decode(self, source: Tensor, features: Tensor, kp_driving: Keypoints, kp_source: Keypoints) -> GeneratorOut:
        """Warp ``features`` (from :meth:`encode` of ``source``) with the predicted motion and decode."""
        motion = self.dense_motion_network(source, kp_driving, kp_source)
        out = self._warp(features, motion.deformation, self._resize_to_features)
        occlusion = motion.occlusion_map
        if self._resize_to_features:
            occlusion = F.interpolate(occlusion, size=out.shape[2:], mode="bilinear", align_corners=False)
        out = out * occlusion.to(out.dtype)
        deformed = self._warp(source, motion.deformation, self._resize_to_source)
        out = self.bottleneck(out)
        for block in self.up_blocks:
            out = block(out)
        prediction = torch.sigmoid(self.final(out))
        return GeneratorOut(motion.mask, motion.sparse_deformed, motion.occlusion_map, deformed, prediction, motion.deformation)

    def forward(self, source: Tensor, kp_driving: Keypoints, kp_source: Keypoints) -> GeneratorOut:
        return self.decode(source, self.encode(source), kp_driving, kp_source)
