"""FOMM dense motion network: K+1 local motions blended into one dense deformation (NOTES §7)."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .blocks import (
    AntiAliasInterpolation2d,
    Hourglass,
    Keypoints,
    inv2x2,
    kp2gaussian,
    make_coordinate_grid,
)
from .config import FommConfig


class DenseMotionOut(NamedTuple):
    """Outputs at the motion resolution h × w (64 × 64 at vox-256).

    mask: (B, K+1, h, w) softmax weights (background first); sparse_deformed: (B, K+1, C, h, w)
    source warped by each local motion; occlusion_map: (B, 1, h, w) in (0, 1) (ones when the
    model has no occlusion head); deformation: (B, h, w, 2) driving → source sampling grid.
    """

    mask: Tensor
    sparse_deformed: Tensor
    occlusion_map: Tensor
    deformation: Tensor


def sparse_motions(h: int, w: int, kp_driving: Keypoints, kp_source: Keypoints) -> Tensor:
    """(B, K+1, h, w, 2): identity for the background, then kp_s + J_s·J_d⁻¹·(z − kp_d) per keypoint."""
    b, k, _ = kp_driving.value.shape
    identity = make_coordinate_grid(h, w, device=kp_source.value.device, dtype=kp_source.value.dtype).view(1, 1, h, w, 2)
    coords = identity - kp_driving.value.view(b, k, 1, 1, 2)
    jac = torch.matmul(kp_source.jacobian, inv2x2(kp_driving.jacobian))  # (B, K, 2, 2)
    coords = torch.matmul(jac.view(b, k, 1, 1, 2, 2), coords.unsqueeze(-1)).squeeze(-1)
    driving_to_source = coords + kp_source.value.view(b, k, 1, 1, 2)
    return torch.cat([identity.expand(b, 1, h, w, 2), driving_to_source], dim=1)


class DenseMotionNetwork(nn.Module):
    """Predicts the dense motion from the driving to the source frame.

    ``forward(source, kp_driving, kp_source)``: source (B, C, H, W) float in [0, 1];
    keypoints as :class:`Keypoints` → :class:`DenseMotionOut` at (H, W)·scale_factor.
    align_corners: passed to grid_sample (config; False matches the reference on torch ≥ 1.3).
    """

    def __init__(self, cfg: FommConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or FommConfig()
        dc = cfg.generator.dense_motion
        self.num_kp = cfg.num_kp
        self.kp_variance = dc.kp_variance
        self.align_corners = cfg.align_corners
        self.hourglass = Hourglass(
            dc.block_expansion, in_features=(cfg.num_kp + 1) * (cfg.num_channels + 1), num_blocks=dc.num_blocks, max_features=dc.max_features
        )
        self.mask = nn.Conv2d(self.hourglass.out_filters, cfg.num_kp + 1, kernel_size=(7, 7), padding=(3, 3))
        self.occlusion = (
            nn.Conv2d(self.hourglass.out_filters, 1, kernel_size=(7, 7), padding=(3, 3)) if cfg.generator.estimate_occlusion_map else None
        )
        self.down = AntiAliasInterpolation2d(cfg.num_channels, dc.scale_factor) if dc.scale_factor != 1 else nn.Identity()

    def forward(self, source: Tensor, kp_driving: Keypoints, kp_source: Keypoints) -> DenseMotionOut:
        source = self.down(source)
        b, c, h, w = source.shape
        k1 = self.num_kp + 1
        # heatmap channel per slot: gaussian(driving) - gaussian(source), background slot zero
        heat = kp2gaussian(kp_driving.value, h, w, self.kp_variance) - kp2gaussian(kp_source.value, h, w, self.kp_variance)
        heat = torch.cat([torch.zeros_like(heat[:, :1]), heat], dim=1).unsqueeze(2)  # (B, K+1, 1, h, w)

        motions = sparse_motions(h, w, kp_driving, kp_source)  # (B, K+1, h, w, 2)
        repeated = source.unsqueeze(1).expand(b, k1, c, h, w).reshape(b * k1, c, h, w)
        deformed = F.grid_sample(
            repeated, motions.reshape(b * k1, h, w, 2).to(repeated.dtype), mode="bilinear", padding_mode="zeros", align_corners=self.align_corners
        ).reshape(b, k1, c, h, w)

        # interleaved per slot: [h0, R0, G0, B0, h1, R1, ...] (NOTES §7)
        features = self.hourglass(torch.cat([heat.to(deformed.dtype), deformed], dim=2).reshape(b, k1 * (c + 1), h, w))
        mask = F.softmax(self.mask(features), dim=1)
        deformation = (motions.permute(0, 1, 4, 2, 3) * mask.unsqueeze(2)).sum(dim=1).permute(0, 2, 3, 1)
        if self.occlusion is not None:
            occlusion = torch.sigmoid(self.occlusion(features))
        else:
            occlusion = torch.ones_like(mask[:, :1])
        return DenseMotionOut(mask, deformed, occlusion, deformation)
