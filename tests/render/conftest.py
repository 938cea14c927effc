"""Fixtures shared by the FOMM and ONNX tests: the reference fixture, a tiny architecture and random models."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from avatar.render.fomm.config import FommConfig

PARITY = Path(__file__).resolve().parents[2] / ".." / "shared" / "fomm" / "parity-small.pt"

# the parity fixture's architecture (kept here too so the tests without the fixture still run)
SMALL_PARAMS = {
    "model_params": {
        "common_params": {"num_kp": 10, "num_channels": 3, "estimate_jacobian": True},
        "kp_detector_params": {"temperature": 0.1, "block_expansion": 8, "max_features": 32, "scale_factor": 0.25, "num_blocks": 5},
        "generator_params": {
            "block_expansion": 8,
            "max_features": 32,
            "num_down_blocks": 2,
            "num_bottleneck_blocks": 2,
            "estimate_occlusion_map": True,
            "dense_motion_params": {"block_expansion": 8, "max_features": 32, "num_blocks": 5, "scale_factor": 0.25},
        },
    }
}


def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-trivial random weights and BatchNorm statistics (eval mode)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("jacobian.weight"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.01 / p[0].numel() ** 0.5)
            elif name.endswith("jacobian.bias"):
                p.copy_(torch.tensor([1.0, 0.0, 0.0, 1.0]).repeat(p.numel() // 4) + 0.1 * torch.rand(p.shape, generator=g) - 0.05)
            elif p.ndim == 4:
                p.copy_(torch.randn(p.shape, generator=g) / p[0].numel() ** 0.5)
            elif name.endswith("norm.weight") or ".norm1.weight" in name or ".norm2.weight" in name:
                p.copy_(0.6 + 0.8 * torch.rand(p.shape, generator=g))
            else:
                p.copy_(0.4 * torch.rand(p.shape, generator=g) - 0.2)
        for name, b in model.named_buffers():
            if name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=g))
            elif name.endswith("running_mean"):
                b.copy_(0.2 * torch.randn(b.shape, generator=g))
    return model.eval()


def build_models(cfg: FommConfig, seed: int = 0):
    """(kp_detector, generator) of ``cfg`` with random weights (seeded)."""
    from avatar.render.fomm.generator import OcclusionAwareGenerator
    from avatar.render.fomm.keypoint_detector import KPDetector

    torch.manual_seed(seed)
    return randomize(KPDetector(cfg), seed + 1), randomize(OcclusionAwareGenerator(cfg), seed + 2)


@pytest.fixture(scope="session")
def small_params() -> dict:
    """The upstream ``config`` dict of the tiny architecture."""
    return SMALL_PARAMS


@pytest.fixture(scope="session")
def small_cfg() -> FommConfig:
    return FommConfig.from_model_params(SMALL_PARAMS)


@pytest.fixture(scope="session")
def make_models():
    """build_models(cfg, seed) → (kp_detector, generator) with random weights."""
    return build_models


@pytest.fixture(scope="session")
def parity() -> dict:
    if not PARITY.is_file():
        pytest.skip(f"reference fixture {PARITY} not found (CI has it at ../shared/fomm)")
    return torch.load(PARITY, map_location="cpu", weights_only=True)
