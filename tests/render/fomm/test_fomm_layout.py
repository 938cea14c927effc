"""State-dict layout of the vox-256 models equals the official checkpoint's (no forward pass)."""

from __future__ import annotations

import re

import torch

from avatar.render.fomm.config import FommConfig
from avatar.render.fomm.generator import OcclusionAwareGenerator
from avatar.render.fomm.keypoint_detector import KPDetector


def _meta_models(cfg: FommConfig | None = None):
    with torch.device("meta"):  # shapes and dtypes only, no 230 MB allocation
        return KPDetector(cfg), OcclusionAwareGenerator(cfg)


def _layout(model: torch.nn.Module) -> list[tuple[str, tuple[int, ...], str, str]]:
    params = {n for n, _ in model.named_parameters()}
    return [
        (k, tuple(v.shape), str(v.dtype).removeprefix("torch."), "param" if k in params else "buffer")
        for k, v in model.state_dict().items()
    ]


def _parse(text: str) -> dict[str, list[tuple[str, tuple[int, ...], str, str]]]:
    out: dict[str, list] = {}
    section = None
    for line in text.splitlines():
        if m := re.fullmatch(r"\[(\w+)\]", line.strip()):
            section = out.setdefault(m.group(1), [])
        elif section is not None and line.strip() and not line.lstrip().startswith("#"):
            idx, key, shape, dtype, kind = re.fullmatch(r"\s*(\d+)\s+(\S+)\s+\[([^\]]*)\]\s+(\w+)\s+(\w+)", line).groups()
            assert int(idx) == len(section)
            section.append((key, tuple(int(s) for s in shape.split(",") if s.strip()), dtype, kind))
    return out


def test_vox256_layout_equals_reference_listing(layout_text):
    want = _parse(layout_text)
    kp, gen = _meta_models()
    assert _layout(kp) == want["kp_detector"]
    assert _layout(gen) == want["generator"]


def test_vox256_key_and_parameter_counts():
    kp, gen = _meta_models()
    assert len(kp.state_dict()) == 75 and len(gen.state_dict()) == 196
    assert sum(p.numel() for p in kp.parameters()) == 14_215_368
    assert sum(p.numel() for p in gen.parameters()) == 45_575_391
    assert sum(k.endswith("num_batches_tracked") for k in kp.state_dict()) == 10
    sd = gen.state_dict()
    assert next(iter(sd)).startswith("dense_motion_network.") and list(sd)[-1] == "final.bias"
    assert tuple(sd["dense_motion_network.hourglass.encoder.down_blocks.4.conv.weight"].shape) == (1024, 1024, 3, 3)
    assert tuple(kp.state_dict()["kp.weight"].shape) == (10, 35, 7, 7)
    assert list(kp.state_dict())[-1] == "down.weight"


def test_small_config_keys_are_vox_names(small_cfg):
    kp_small, gen_small = _meta_models(small_cfg)
    kp_vox, gen_vox = _meta_models()
    assert list(kp_small.state_dict()) == list(kp_vox.state_dict())
    assert len(gen_small.state_dict()) == 140
    assert set(gen_small.state_dict()) < set(gen_vox.state_dict())


def test_antialias_kernel_values():
    kp = KPDetector(FommConfig())
    k = kp.down.weight
    assert tuple(k.shape) == (3, 1, 13, 13)
    assert torch.allclose(k.sum(dim=(1, 2, 3)), torch.ones(3))
    assert abs(k[0, 0, 6, 6].item() - 0.070737) < 1e-6
