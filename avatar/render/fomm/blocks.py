"""Building blocks shared by the FOMM networks, plus the small maths helpers they need.

Convention: coordinates are normalised to [-1, 1] with -1/+1 on the first/last pixel centre
and stored as (x, y) pairs (NOTES §3). Module attribute names mirror the upstream modules so
that the official state_dict keys load unchanged.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Keypoints(NamedTuple):
    """FOMM keypoints.

    value: (B, K, 2) positions (x, y) in [-1, 1]; jacobian: (B, K, 2, 2) local affine maps
    acting on column vectors (x, y).
    """

    value: Tensor
    jacobian: Tensor


def make_coordinate_grid(h: int, w: int, *, device: torch.device | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
    """(h, w, 2) grid of (x, y) in [-1, 1], computed in the reference's order for bit parity."""
    x = torch.arange(w, device=device, dtype=dtype)
    y = torch.arange(h, device=device, dtype=dtype)
    x = 2 * (x / (w - 1)) - 1
    y = 2 * (y / (h - 1)) - 1
    xx = x.view(1, w).expand(h, w)
    yy = y.view(h, 1).expand(h, w)
    return torch.stack([xx, yy], dim=2)


def inv2x2(m: Tensor, eps: float = 1e-6) -> Tensor:
    """Closed-form inverse of (..., 2, 2) matrices; |det| is clamped to >= ``eps``.

    Exports to any ONNX runtime (torch.inverse does not) and never returns inf/nan for a
    singular matrix.
    """
    a, b = m[..., 0, 0], m[..., 0, 1]
    c, d = m[..., 1, 0], m[..., 1, 1]
    det = a * d - b * c
    det = torch.where(det >= 0, det.clamp(min=eps), det.clamp(max=-eps))
    inv = torch.stack([d, -b, -c, a], dim=-1) / det.unsqueeze(-1)
    return inv.unflatten(-1, (2, 2))


def kp2gaussian(value: Tensor, h: int, w: int, kp_variance: float) -> Tensor:
    """Unnormalised Gaussians exp(-|z - kp|² / (2·var)) of (B, K, 2) points → (B, K, h, w)."""
    grid = make_coordinate_grid(h, w, device=value.device, dtype=value.dtype)
    diff = grid.view(1, 1, h, w, 2) - value.unsqueeze(2).unsqueeze(2)
    return torch.exp(-0.5 * (diff**2).sum(-1) / kp_variance)


class AntiAliasInterpolation2d(nn.Module):
    """Gaussian blur then keep every (1/scale)-th pixel from index 0 (NOTES §2).

    The kernel is a persistent buffer named ``weight`` ((C, 1, k, k)), as in the checkpoints.
    The stride-s convolution computes exactly the samples the reference keeps after slicing.
    """

    def __init__(self, channels: int, scale: float) -> None:
        super().__init__()
        sigma = (1 / scale - 1) / 2
        kernel_size = 2 * round(sigma * 4) + 1
        self.ka = kernel_size // 2
        grids = torch.meshgrid(
            torch.arange(kernel_size, dtype=torch.float32), torch.arange(kernel_size, dtype=torch.float32), indexing="ij"
        )
        kernel = torch.ones((), dtype=torch.float32)
        mean = (kernel_size - 1) / 2
        for g in grids:
            kernel = kernel * torch.exp(-((g - mean) ** 2) / (2 * sigma**2))
        kernel = kernel / torch.sum(kernel)
        self.register_buffer("weight", kernel.view(1, 1, kernel_size, kernel_size).repeat(channels, 1, 1, 1))
        self.groups = channels
        self.stride = int(1 / scale)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) → (B, C, ceil(H·scale), ceil(W·scale))."""
        return F.conv2d(x, self.weight.to(x.dtype), stride=self.stride, padding=self.ka, groups=self.groups)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, affine=True)


class DownBlock2d(nn.Module):
    """conv → BN → ReLU → 2×2 average pool."""

    def __init__(self, in_features: int, out_features: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size=kernel_size, padding=padding)
        self.norm = _bn(out_features)
        self.pool = nn.AvgPool2d(kernel_size=(2, 2))

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(F.relu(self.norm(self.conv(x))))


class UpBlock2d(nn.Module):
    """nearest ×2 → conv → BN → ReLU."""

    def __init__(self, in_features: int, out_features: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size=kernel_size, padding=padding)
        self.norm = _bn(out_features)

    def forward(self, x: Tensor) -> Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return F.relu(self.norm(self.conv(x)))


class SameBlock2d(nn.Module):
    """conv → BN → ReLU at the same resolution."""

    def __init__(self, in_features: int, out_features: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size=kernel_size, padding=padding)
        self.norm = _bn(out_features)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.norm(self.conv(x)))


class ResBlock2d(nn.Module):
    """Pre-activation residual block: BN → ReLU → conv → BN → ReLU → conv, plus the input.

    Registration order conv1, conv2, norm1, norm2 matches the checkpoint key order.
    """

    def __init__(self, features: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, kernel_size=kernel_size, padding=padding)
        self.conv2 = nn.Conv2d(features, features, kernel_size=kernel_size, padding=padding)
        self.norm1 = _bn(features)
        self.norm2 = _bn(features)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(F.relu(self.norm1(x)))
        out = self.conv2(F.relu(self.norm2(out)))
        return out + x


def _width(block_expansion: int, max_features: int, level: int) -> int:
    return min(max_features, block_expansion * (2**level))


class Encoder(nn.Module):
    """Hourglass encoder: returns the input and every down block's output, shallowest first."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int) -> None:
        super().__init__()
        self.down_blocks = nn.ModuleList(
            DownBlock2d(
                in_features if i == 0 else _width(block_expansion, max_features, i),
                _width(block_expansion, max_features, i + 1),
            )
            for i in range(num_blocks)
        )

    def forward(self, x: Tensor) -> list[Tensor]:
        outs = [x]
        for block in self.down_blocks:
            outs.append(block(outs[-1]))
        return outs


class Decoder(nn.Module):
    """Hourglass decoder: each up block's output is concatenated in front of the skip feature."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int) -> None:
        super().__init__()
        blocks = []
        for i in reversed(range(num_blocks)):
            mult = 1 if i == num_blocks - 1 else 2
            blocks.append(UpBlock2d(mult * _width(block_expansion, max_features, i + 1), _width(block_expansion, max_features, i)))
        self.up_blocks = nn.ModuleList(blocks)
        self.out_filters = block_expansion + in_features

    def forward(self, feats: list[Tensor]) -> Tensor:
        out = feats[-1]
        for i, block in enumerate(self.up_blocks):
            out = torch.cat([block(out), feats[-2 - i]], dim=1)
        return out


class Hourglass(nn.Module):
    """U-Net style hourglass. (B, in_features, H, W) → (B, block_expansion + in_features, H, W).

    H and W must be divisible by 2**num_blocks.
    """

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int = 3, max_features: int = 256) -> None:
        super().__init__()
        self.encoder = Encoder(block_expansion, in_features, num_blocks, max_features)
        self.decoder = Decoder(block_expansion, in_features, num_blocks, max_features)
        self.out_filters = self.decoder.out_filters

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.encoder(x))
