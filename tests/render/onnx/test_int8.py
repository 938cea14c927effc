"""int8 export: QDQ-quantised generator convolutions (dense motion kept float32), standard ops,
error recorded in the sidecar and within tolerance, the engine and CLI use it on request."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from skimage import data
from skimage.transform import resize

from avatar.cli import main
from avatar.config import RenderConfig
from avatar.errors import ConfigError
from avatar.export.onnx_export import check_graph, export_onnx
from avatar.export.quantize import FLOAT_SCOPES
from avatar.export.sidecar import read_export
from avatar.render.onnx import OnnxEngine
from avatar.types import DriveTarget, FaceCrop

# stated tolerance, prediction in [0, 1]. Measured on the parity-fixture weights (whose
# predictions span 0.01…1.0, std 0.23): max 0.128, mean 0.0139 (fp16: 0.035 / 0.0015)
INT8_MAX_TOL = 0.2
INT8_MEAN_TOL = 0.025


@pytest.fixture(scope="module")
def int8_export(tmp_path_factory, small_checkpoint):
    return export_onnx(small_checkpoint, tmp_path_factory.mktemp("int8") / "small", int8=True)


def _feeds(info, seed):
    g = np.random.default_rng(seed)
    size, k, f = info.config.image_size, info.config.num_kp, info.graphs["generator"].inputs[1].shape[1]
    value = g.uniform(-0.7, 0.7, (1, k, 2)).astype(np.float32)
    jac = (np.eye(2) + 0.05 * g.standard_normal((1, k, 2, 2))).astype(np.float32)
    src = g.random((1, 3, size, size), dtype=np.float32)
    feat_session = ort.InferenceSession(str(info.graph("source_encoder")[0]), providers=["CPUExecutionProvider"])
    (feat,) = feat_session.run(None, {"source": src})
    assert feat.shape[1] == f
    return {"source": src, "features": feat, "kp_driving_value": value + 0.05, "kp_driving_jacobian": jac,
            "kp_source_value": value, "kp_source_jacobian": jac}


def test_int8_graph_quantises_the_decoder_convs_only(int8_export):
    info = read_export(int8_export)
    assert set(info.int8) == {"generator"} and (int8_export / "generator.int8.onnx").is_file()
    path, spec = info.graph("generator", int8=True)
    assert path.name == "generator.int8.onnx" and spec.inputs == info.graphs["generator"].inputs
    assert info.graph("kp_detector", int8=True)[0].name == "kp_detector.onnx"  # not quantised: stays float32
    check_graph(path)  # onnx.checker + standard domains only
    model = onnx.load(str(path))
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("QuantizeLinear") > 0 and ops.count("DequantizeLinear") > ops.count("QuantizeLinear")
    produced_by_dq = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    kept = [n for n in convs if n.name.startswith(FLOAT_SCOPES)]
    quantised = [n for n in convs if n.input[1] in produced_by_dq]
    assert kept and not any(n.input[1] in produced_by_dq for n in kept)
    assert len(quantised) == len(convs) - len(kept)
    meta = json.loads((int8_export / "avatar-onnx.json").read_text())["int8"]
    assert meta["quantized_convs"] == len(quantised) and meta["float32_convs"] == len(kept)
    err = meta["held_out_prediction_error"]
    assert 0 < err["mean_abs"] <= err["max_abs"] < INT8_MAX_TOL


def test_int8_prediction_is_close_to_float32(int8_export):
    info = read_export(int8_export)
    full = ort.InferenceSession(str(info.graph("generator")[0]), providers=["CPUExecutionProvider"])
    quant = ort.InferenceSession(str(info.graph("generator", int8=True)[0]), providers=["CPUExecutionProvider"])
    feeds = _feeds(info, 5)
    a, b = full.run(None, feeds)[0], quant.run(None, feeds)[0]
    assert a.shape == b.shape and a.std() > 1e-3
    diff = np.abs(a - b)
    assert 0 < diff.max() < INT8_MAX_TOL and diff.mean() < INT8_MEAN_TOL
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.95  # the same picture, not just the same range


def test_parity_int8_error(tmp_path, parity_path):
    """On the reference fixture's weights the held-out error stays within the stated tolerance."""
    out = export_onnx(parity_path, tmp_path / "parity", int8=True)
    err = read_export(out).meta["int8"]["held_out_prediction_error"]
    print(f"int8 vs fp32 on the parity weights: max {err['max_abs']:.4f}, mean {err['mean_abs']:.5f}")
    assert 0 < err["max_abs"] < INT8_MAX_TOL and err["mean_abs"] < INT8_MEAN_TOL


def _crop(size: int, shift: int = 0) -> FaceCrop:
    img = data.astronaut()[:400, 50:450]
    img = (resize(img, (size, size), anti_aliasing=True) * 255).round().astype(np.uint8)
    return FaceCrop(image=np.roll(img, shift, axis=1), landmarks=np.zeros((478, 3), np.float32), crop_from_frame=np.eye(2, 3),
                    frame_size=(size, size))


def test_engine_uses_the_int8_graph_on_request(int8_export, small_export):
    target = [DriveTarget(landmarks=np.zeros((478, 3), np.float32), driving=_crop(128, 4))]
    quant = OnnxEngine(RenderConfig(engine="onnx", model_dir=str(int8_export), int8=True))
    full = OnnxEngine(RenderConfig(engine="onnx", model_dir=str(int8_export)))
    a = quant.render(quant.prepare(_crop(128)), target).astype(int)
    b = full.render(full.prepare(_crop(128)), target).astype(int)
    assert a.shape == b.shape == (1, 128, 128, 3)
    assert 0 < np.abs(a - b).max() and np.abs(a - b).mean() < 3
    with pytest.raises(ConfigError, match="no int8 graph"):
        OnnxEngine(RenderConfig(engine="onnx", model_dir=str(small_export), int8=True))


def test_cli_int8_export_with_calibration_images(tmp_path, small_checkpoint, portrait_path, capsys):
    out = tmp_path / "model"
    code = main(["export", "onnx", "--checkpoint", str(small_checkpoint), "--out", str(out), "--int8", "--calibration", str(portrait_path)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert (out / "generator.int8.onnx").is_file() and "--int8" in captured.out and "differs from float32" in captured.out
    assert read_export(out).meta["int8"]["calibration_samples"] == 2  # one image × two sampled motions
    code = main(["export", "onnx", "--checkpoint", str(small_checkpoint), "--out", str(tmp_path / "x"), "--calibration", str(portrait_path)])
    err = capsys.readouterr().err
    assert code == 1 and "--int8" in err and len(err.strip().splitlines()) == 1 and not (tmp_path / "x").exists()


def test_animate_with_the_int8_generator(tmp_path, int8_export, portrait_path, driving_clip, capsys):
    from avatar.media.video import probe_video

    out = tmp_path / "out.mp4"
    code = main(["animate", str(portrait_path), str(driving_clip), "-o", str(out), "--engine", "onnx", "--int8",
                 "--model-dir", str(int8_export), "--max-frames", "2", "--size", "256", "--quiet", "--no-audio",
                 "--consent", "I agree to be animated for tests", "--subject", "Test Subject"])
    assert code == 0, capsys.readouterr().err
    assert probe_video(out).frame_count == 2


def test_int8_without_the_onnx_engine_is_refused():
    with pytest.raises(ConfigError, match="onnx engine"):
        RenderConfig(engine="warp", int8=True)
