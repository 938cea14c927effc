"""FOMM keypoint detector: K soft-argmax keypoints and their local jacobians (NOTES §5)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .blocks import AntiAliasInterpolation2d, Hourglass, Keypoints, make_coordinate_grid
from .config import FommConfig


class KPDetector(nn.Module):
    """Keypoints from an image.

    Args:
        cfg: architecture; ``cfg.kp_detector`` and the common fields are used.

    ``forward(image)``: image (B, C, H, W) float in [0, 1] (H = W = cfg.image_size for the
    released weights) → :class:`Keypoints` value (B, K, 2), jacobian (B, K, 2, 2). Without
    ``estimate_jacobian`` the jacobians are identities, which the rest of the model treats
    exactly like the reference's "no jacobian" path.
    Convention: (x, y) order; the heatmap grid spans the valid (unpadded) head output, so
    coordinates are scaled by 63/57 relative to the feature map at vox-256 (trained that way).
    """

    def __init__(self, cfg: FommConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or FommConfig()
        kc = cfg.kp_detector
        self.num_kp = cfg.num_kp
        self.temperature = kc.temperature
        self.estimate_jacobian = cfg.estimate_jacobian
        self.predictor = Hourglass(kc.block_expansion, in_features=cfg.num_channels, num_blocks=kc.num_blocks, max_features=kc.max_features)
        self.kp = nn.Conv2d(self.predictor.out_filters, cfg.num_kp, kernel_size=(7, 7), padding=kc.pad)
        if cfg.estimate_jacobian:
            self.jacobian = nn.Conv2d(self.predictor.out_filters, 4 * cfg.num_kp, kernel_size=(7, 7), padding=kc.pad)
            # the untrained model starts from identity jacobians (as upstream)
            nn.init.zeros_(self.jacobian.weight)
            with torch.no_grad():
                self.jacobian.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 1.0] * cfg.num_kp))
        self.down = AntiAliasInterpolation2d(cfg.num_channels, kc.scale_factor) if kc.scale_factor != 1 else nn.Identity()

    def heatmap_logits(self, image: Tensor) -> tuple[Tensor, Tensor]:
        """Raw keypoint-conv output (B, K, h, w) and the hourglass features it came from."""
        feature_map = self.predictor(self.down(image))
        return self.kp(feature_map), feature_map

    def forward(self, image: Tensor) -> Keypoints:
        logits, feature_map = self.heatmap_logits(image)
        b, k, h, w = logits.shape
        heatmap = F.softmax(logits.reshape(b, k, h * w) / self.temperature, dim=2).reshape(b, k, h, w)
        grid = make_coordinate_grid(h, w, device=heatmap.device, dtype=heatmap.dtype)
        value = (heatmap.unsqueeze(-1) * grid.view(1, 1, h, w, 2)).sum(dim=(2, 3))
        if self.estimate_jacobian:
            jacobian_map = self.jacobian(feature_map).reshape(b, k, 4, h, w)
            jacobian = (heatmap.unsqueeze(2) * jacobian_map).reshape(b, k, 4, h * w).sum(dim=-1)
            jacobian = jacobian.reshape(b, k, 2, 2)
        else:
            eye = torch.eye(2, device=value.device, dtype=value.dtype)
            jacobian = eye.expand(b, k, 2, 2)
        return Keypoints(value, jacobian)
