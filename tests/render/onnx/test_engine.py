"""OnnxEngine: same frames as FommEngine, provider selection and honest fallback reports, bad folders."""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import onnxruntime as ort
import pytest
from skimage import data
from skimage.transform import resize

from avatar.config import RenderConfig
from avatar.errors import ConfigError, EngineUnavailable, WeightsError
from avatar.render import onnx as onnx_engine
from avatar.render.fomm.engine import FommEngine
from avatar.render.onnx import (
    OnnxEngine,
    provider_fallback,
    provider_options,
    requested_providers,
)
from avatar.render.registry import create_engine
from avatar.types import DriveTarget, FaceCrop


def _crop(size: int, shift: int = 0) -> FaceCrop:
    img = data.astronaut()[:400, 50:450]
    img = (resize(img, (size, size), anti_aliasing=True) * 255).round().astype(np.uint8)
    return FaceCrop(image=np.roll(img, shift, axis=1), landmarks=np.zeros((478, 3), np.float32), crop_from_frame=np.eye(2, 3), frame_size=(size, size))


def _target(driving, reference=None):
    return DriveTarget(landmarks=np.zeros((478, 3), np.float32), driving=driving, reference=reference)


def _cfg(folder, **kw):
    return RenderConfig(engine="onnx", model_dir=str(folder), **kw)


def _missing_provider() -> str:
    for name in ("CUDAExecutionProvider", "TensorrtExecutionProvider", "ROCMExecutionProvider"):
        if name not in ort.get_available_providers():
            return name
    pytest.skip("every GPU provider is available in this onnxruntime build")


def test_renders_the_same_frames_as_the_fomm_engine(small_export, small_models, small_cfg):
    kp, gen = small_models
    torch_engine = FommEngine(RenderConfig(engine="fomm", batch_size=2), small_cfg, kp_detector=kp, generator=gen)
    engine = create_engine(_cfg(small_export, batch_size=2))
    assert isinstance(engine, OnnxEngine) and engine.needs_driving_image and engine.name == "onnx"
    assert engine.providers["generator"][0] == "CPUExecutionProvider" and engine.io_binding is False
    src, ref = _crop(200), _crop(200, 3)
    targets = [_target(_crop(200, 6), ref), _target(_crop(200, -5)), _target(_crop(200, 9), ref)]  # relative, absolute, relative
    want = torch_engine.render(torch_engine.prepare(src), targets).astype(int)
    got = engine.render(engine.prepare(src), targets).astype(int)
    assert got.shape == (3, 200, 200, 3) and got.std() > 2
    # ~1e-5 keypoint differences move the warp of this deliberately sensitive random model a little
    assert np.abs(got - want).mean() < 0.5 and np.percentile(np.abs(got - want), 99) <= 3
    assert np.abs(got[0] - got[1]).mean() > 0.1  # the targets really differ
    # the IO-binding path (used on CUDA) gives the same frames on CPU
    bound = OnnxEngine(_cfg(small_export, batch_size=2), io_binding=True)
    assert np.array_equal(bound.render(bound.prepare(src), targets), got.astype(np.uint8))
    engine.close()
    engine.close()


def test_half_uses_the_fp16_graphs(small_export):
    engine = OnnxEngine(_cfg(small_export, half=True))
    src = _crop(128)
    a = engine.render(engine.prepare(src), [_target(_crop(128, 4))]).astype(int)
    full = OnnxEngine(_cfg(small_export))
    b = full.render(full.prepare(src), [_target(_crop(128, 4))]).astype(int)
    assert 0 < np.abs(a - b).max() <= 40 and np.abs(a - b).mean() < 1.5


def test_unavailable_provider_warns_and_strict_raises(small_export):
    missing = _missing_provider()
    with pytest.warns(RuntimeWarning, match=f"not on {missing} as asked"):
        engine = OnnxEngine(_cfg(small_export, providers=(missing, "CPUExecutionProvider")))
    assert engine.providers["generator"] == ["CPUExecutionProvider"]
    with pytest.raises(EngineUnavailable, match=f"{missing}.*strict-providers"):
        OnnxEngine(_cfg(small_export, providers=(missing,), strict_providers=True))
    # asking for what is there is silent, also when strict
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        OnnxEngine(_cfg(small_export, providers=("cpu",), strict_providers=True))


def test_provider_order_and_options(tmp_path):
    assert requested_providers((), ["CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"]) == [
        "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert requested_providers((), ["AzureExecutionProvider", "CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert requested_providers(("cuda", "cpu", "cuda"), []) == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    with pytest.raises(ConfigError, match="unknown onnxruntime provider"):
        requested_providers(("gpu",), [])
    assert provider_fallback(["CPUExecutionProvider"], ["CPUExecutionProvider"], "g") is None
    assert "CUDAExecutionProvider" in provider_fallback(["CPUExecutionProvider"], ["CUDAExecutionProvider", "CPUExecutionProvider"], "g")
    # TensorRT dropped but CUDA kept is still a fallback
    assert provider_fallback(["CUDAExecutionProvider", "CPUExecutionProvider"], ["TensorrtExecutionProvider", "CUDAExecutionProvider"], "g")
    opts = provider_options("TensorrtExecutionProvider", device_id=1, half=True, cache=tmp_path / "trt",
                            profiles={"min": "image:1x3x256x256", "opt": "image:8x3x256x256", "max": "image:8x3x256x256"})
    assert opts["trt_fp16_enable"] is True and opts["device_id"] == 1
    assert opts["trt_engine_cache_enable"] and opts["trt_engine_cache_path"] == str(tmp_path / "trt") and (tmp_path / "trt").is_dir()
    assert opts["trt_timing_cache_enable"] and opts["trt_profile_max_shapes"] == "image:8x3x256x256"
    assert provider_options("CUDAExecutionProvider", device_id=0, half=False, cache=tmp_path)["device_id"] == 0


def test_tensorrt_cache_lives_under_the_avatar_cache(small_export, monkeypatch, _avatar_home):
    seen = {}
    real = onnx_engine.provider_options

    def spy(name, **kw):
        seen[name] = kw["cache"]
        return real(name, **kw)

    monkeypatch.setattr(onnx_engine, "provider_options", spy)
    with pytest.warns(RuntimeWarning):
        OnnxEngine(_cfg(small_export, providers=("tensorrt", "cpu")))
    assert _avatar_home in seen["TensorrtExecutionProvider"].parents


def test_bad_model_folders_give_one_line_errors(tmp_path, small_export):
    with pytest.raises(ConfigError, match="--model-dir"):
        OnnxEngine(RenderConfig(engine="onnx"))
    with pytest.raises(WeightsError, match="not found.*avatar export onnx"):
        OnnxEngine(_cfg(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsError, match="not an avatar ONNX export"):
        OnnxEngine(_cfg(tmp_path / "empty"))
    copy = shutil.copytree(small_export, tmp_path / "copy")
    with open(copy / "generator.onnx", "r+b") as f:  # damage one graph
        f.seek(200)
        f.write(b"\x00" * 16)
    with pytest.raises(WeightsError, match="generator.onnx does not match the sha256"):
        OnnxEngine(_cfg(copy))
    meta = json.loads((copy / "avatar-onnx.json").read_text())
    meta["format"] = "something-else"
    (copy / "avatar-onnx.json").write_text(json.dumps(meta))
    with pytest.raises(WeightsError, match="not an avatar FOMM ONNX sidecar"):
        OnnxEngine(_cfg(copy))
    (copy / "avatar-onnx.json").write_text("{not json")
    with pytest.raises(WeightsError, match="cannot read"):
        OnnxEngine(_cfg(copy))
