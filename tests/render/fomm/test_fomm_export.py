"""The networks trace to ONNX (opset 17, dynamic batch) and onnxruntime reproduces them."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from avatar.render.fomm.blocks import Keypoints

ort = pytest.importorskip("onnxruntime")


class _GeneratorPrediction(torch.nn.Module):
    """Tensor-only signature for export."""

    def __init__(self, gen: torch.nn.Module) -> None:
        super().__init__()
        self.gen = gen

    def forward(self, source, kp_driving_value, kp_driving_jacobian, kp_source_value, kp_source_jacobian):
        out = self.gen(source, Keypoints(kp_driving_value, kp_driving_jacobian), Keypoints(kp_source_value, kp_source_jacobian))
        return out.prediction, out.occlusion_map


def _export(model, args, names, outputs, path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, args, str(path), dynamo=False, opset_version=17, input_names=names, output_names=outputs,
            dynamic_axes={n: {0: "batch"} for n in (*names, *outputs)},
        )
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_onnx_export_dynamic_batch(tmp_path, small_models):
    kp, gen = small_models
    g = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 256, 256, generator=g)
    sess = _export(kp, (images,), ["image"], ["value", "jacobian"], tmp_path / "kp.onnx")
    three = torch.rand(3, 3, 256, 256, generator=g)
    value, jac = sess.run(None, {"image": three.numpy()})
    with torch.no_grad():
        want = kp(three)
    np.testing.assert_allclose(value, want.value.numpy(), atol=1e-4)
    np.testing.assert_allclose(jac, want.jacobian.numpy(), atol=1e-4)

    with torch.no_grad():
        kps = kp(three)
        kpd = Keypoints(kps.value.roll(1, dims=0), kps.jacobian.roll(1, dims=0))
    names = ["source", "kp_driving_value", "kp_driving_jacobian", "kp_source_value", "kp_source_jacobian"]
    args = (three, kpd.value, kpd.jacobian, kps.value, kps.jacobian)
    sess = _export(_GeneratorPrediction(gen).eval(), tuple(a[:2] for a in args), names, ["prediction", "occlusion_map"], tmp_path / "gen.onnx")
    pred, occ = sess.run(None, {n: a.numpy() for n, a in zip(names, args)})
    with torch.no_grad():
        want = gen(three, kpd, kps)
    assert pred.shape == (3, 3, 256, 256)
    np.testing.assert_allclose(pred, want.prediction.numpy(), atol=1e-3)
    np.testing.assert_allclose(occ, want.occlusion_map.numpy(), atol=1e-4)
