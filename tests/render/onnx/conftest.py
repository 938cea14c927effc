"""Fixtures for the ONNX tests: exports of tiny random FOMM models (session-scoped). The tiny
architecture, random models and the reference fixture are in tests/render/conftest.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

PARITY = Path(__file__).resolve().parents[3] / ".." / "shared" / "fomm" / "parity-small.pt"


@pytest.fixture(scope="session", autouse=True)
def _threads():
    torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def small_models(small_cfg, make_models):
    return make_models(small_cfg)


@pytest.fixture(scope="session")
def small_checkpoint(tmp_path_factory, small_models, small_params) -> Path:
    """A torch.save checkpoint of the random small models with the upstream config embedded."""
    kp, gen = small_models
    path = tmp_path_factory.mktemp("ckpt") / "small-cpk.pth.tar"
    torch.save({"kp_detector": kp.state_dict(), "generator": gen.state_dict(), "config": small_params}, path)
    return path


@pytest.fixture(scope="session")
def small_export(tmp_path_factory, small_checkpoint) -> Path:
    """fp32 + fp16 export of ``small_checkpoint``."""
    from avatar.export.onnx_export import export_onnx

    return export_onnx(small_checkpoint, tmp_path_factory.mktemp("export") / "small", fp16=True)


@pytest.fixture(scope="session")
def parity_path() -> Path:
    if not PARITY.is_file():
        pytest.skip(f"reference fixture {PARITY} not found (CI has it at ../shared/fomm)")
    return PARITY


@pytest.fixture(scope="session")
def parity_export(tmp_path_factory, parity) -> Path:
    from avatar.export.onnx_export import export_onnx

    return export_onnx(PARITY, tmp_path_factory.mktemp("export") / "parity", fp16=True)
