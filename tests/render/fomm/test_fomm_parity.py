"""Numerical parity with the reference implementation (fixture ../shared/fomm/parity-small.pt).

Thresholds: NOTES §11 (about 10x the reference's own float32 spread).
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from avatar.render.fomm.blocks import Keypoints
from avatar.render.fomm.config import FommConfig
from avatar.render.fomm.generator import OcclusionAwareGenerator
from avatar.render.fomm.keypoint_detector import KPDetector
from avatar.render.fomm.motion import movement_scale, normalize_kp


def _close(got: torch.Tensor, want: torch.Tensor, max_abs: float, mean_abs: float | None = None) -> None:
    assert got.shape == want.shape, (got.shape, want.shape)
    diff = (got.double() - want.double()).abs()
    assert diff.max().item() <= max_abs, f"max abs diff {diff.max().item():.3g} > {max_abs}"
    if mean_abs is not None:
        assert diff.mean().item() <= mean_abs, f"mean abs diff {diff.mean().item():.3g} > {mean_abs}"


@pytest.fixture(scope="module")
def models(parity):
    torch.set_num_threads(min(2, torch.get_num_threads()))
    cfg = FommConfig.from_model_params(parity["config"])
    kp, gen = KPDetector(cfg), OcclusionAwareGenerator(cfg)
    kp.load_state_dict(parity["kp_detector"], strict=True)
    gen.load_state_dict(parity["generator"], strict=True)
    return kp.eval(), gen.eval()


def _u8(x: torch.Tensor) -> torch.Tensor:
    return x.float() / 255  # true division (NOTES §1)


def test_config_from_fixture_is_small_vox_like(parity):
    cfg = FommConfig.from_model_params(parity["config"])
    assert cfg.kp_detector.block_expansion == 8 and cfg.generator.num_bottleneck_blocks == 2
    assert cfg.align_corners is False and cfg.kp_detector.pad == 0


@torch.no_grad()
def test_kp_detector_sources(parity, models):
    kp, _ = models
    src = _u8(parity["source_u8"])
    _close(kp.down(src), parity["kp_source_downsampled_input"], 1e-5)
    _close(kp.heatmap_logits(src)[0], parity["kp_source_heatmap_logits"], 1e-4)
    out = kp(src)
    _close(out.value, parity["kp_source_value"], 1e-4)
    _close(out.jacobian, parity["kp_source_jacobian"], 5e-5)


@torch.no_grad()
def test_kp_detector_driving(parity, models):
    kp, _ = models
    for t in range(parity["driving_u8"].shape[1]):
        out = kp(_u8(parity["driving_u8"][:, t]))
        _close(out.value, parity["kp_driving_value"][:, t], 1e-4)
        _close(out.jacobian, parity["kp_driving_jacobian"][:, t], 5e-5)


def _per_source(parity, b: int):
    drv = Keypoints(parity["kp_driving_value"][b], parity["kp_driving_jacobian"][b])
    t = drv.value.shape[0]
    src = Keypoints(parity["kp_source_value"][b : b + 1].expand(t, -1, -1), parity["kp_source_jacobian"][b : b + 1].expand(t, -1, -1, -1))
    init = Keypoints(drv.value[:1].expand(t, -1, -1), drv.jacobian[:1].expand(t, -1, -1, -1))
    return src, drv, init


@pytest.mark.parametrize("b", [0, 1])
def test_normalize_kp_relative_and_absolute(parity, b):
    src, drv, init = _per_source(parity, b)
    rel = normalize_kp(src, drv, init, adapt_movement_scale=True, use_relative_movement=True, use_relative_jacobian=True)
    _close(rel.value, parity["kp_norm_a_value"][b], 1e-4)
    _close(rel.jacobian, parity["kp_norm_a_jacobian"][b], 5e-5)
    ab = normalize_kp(src, drv, init)
    assert torch.equal(ab.value, parity["kp_norm_b_value"][b])
    assert torch.equal(ab.jacobian, parity["kp_norm_b_jacobian"][b])
    scale = movement_scale(src.value[:1], init.value[:1]).double()
    want = parity["adapt_movement_scale"][b]
    assert abs(scale.item() / want.item() - 1) <= 1e-4


@torch.no_grad()
def test_generator(parity, models):
    _, gen = models
    src = _u8(parity["source_u8"])
    kp_src = Keypoints(parity["kp_source_value"], parity["kp_source_jacobian"])
    for i, t in enumerate(parity["gen_a_frames"].tolist()):
        kp_drv = Keypoints(parity["kp_norm_a_value"][:, t], parity["kp_norm_a_jacobian"][:, t])
        out = gen(src, kp_drv, kp_src)
        _close(out.mask, parity["gen_a_mask"][:, i], 2e-4)
        _close(out.occlusion_map, parity["gen_a_occlusion_map"][:, i], 2e-4)
        _close(out.deformation, parity["gen_a_deformation"][:, i], 2e-4)
        _close(out.prediction, parity["gen_a_prediction"][:, i], 3e-3, 1e-4)
        if t == 2:
            _close(out.sparse_deformed, parity["gen_a_sparse_deformed_frame2"], 3e-3, 1e-4)
            _close(out.deformed[:1], parity["gen_a_deformed_source0_frame2"], 5e-3, 1e-4)


@torch.no_grad()
def test_encode_decode_split_equals_forward(parity, models):
    _, gen = models
    src = _u8(parity["source_u8"])
    kp_src = Keypoints(parity["kp_source_value"], parity["kp_source_jacobian"])
    kp_drv = Keypoints(parity["kp_norm_a_value"][:, 1], parity["kp_norm_a_jacobian"][:, 1])
    a = gen(src, kp_drv, kp_src).prediction
    feats = gen.encode(src[:1]).expand(2, -1, -1, -1)
    b = gen.decode(src[:1].expand(2, -1, -1, -1), feats, kp_drv, Keypoints(kp_src.value[:1].expand(2, -1, -1), kp_src.jacobian[:1].expand(2, -1, -1, -1)))
    assert torch.allclose(a[0], b.prediction[0], atol=1e-5)


@torch.no_grad()
def test_align_corners_switch_is_wired(parity):
    """True (the torch-1.0 behaviour the checkpoints were trained with) must change the output (NOTES §9)."""
    cfg = dataclasses.replace(FommConfig.from_model_params(parity["config"]), align_corners=True)
    gen = OcclusionAwareGenerator(cfg).eval()
    gen.load_state_dict(parity["generator"], strict=True)
    kp_src = Keypoints(parity["kp_source_value"], parity["kp_source_jacobian"])
    kp_drv = Keypoints(parity["kp_norm_a_value"][:, 2], parity["kp_norm_a_jacobian"][:, 2])
    out = gen(_u8(parity["source_u8"]), kp_drv, kp_src)
    assert (out.prediction - parity["gen_a_prediction"][:, 1]).abs().max() > 0.05
