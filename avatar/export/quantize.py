"""int8 variant of the exported generator: static QDQ quantisation calibrated on face crops.

On CPUs with int8 dot-product instructions (AVX512-VNNI / AVX-VNNI, Arm dot-product),
onnxruntime runs quantised convolutions about twice as fast as float32 ones, and fp32
convolutions already run close to the machine's peak (see README, "FOMM and ONNX"), so this is
where the CPU speed-up comes from. What is quantised and what is not:

* the convolutions of the generator's encoder-free decode path (bottleneck, up blocks, final
  layer): int8 weights per output channel, uint8 activations, calibrated by min/max;
* kept in float32: the dense motion network (its convolutions produce the occlusion map and the
  keypoint weights that place every pixel, so their errors move geometry, and they are ~10 %
  of the cost), grid sampling, and the keypoint detector and source encoder graphs.

Calibration runs the float32 models on face crops (scikit-image's public-domain ``astronaut``
by default, or the caller's images) under sampled head motions, the way the engine feeds the
generator. The error on held-out samples is measured and written into the sidecar.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import WeightsError
from ..render.fomm.blocks import Keypoints
from ..render.fomm.generator import OcclusionAwareGenerator
from ..render.fomm.keypoint_detector import KPDetector

INT8_GRAPHS = ("generator",)
FLOAT_SCOPES = ("/dense_motion_network/",)  # node-name prefixes whose convolutions stay float32
# the astronaut's head and hair in scikit-image's 512² image (rows, cols), a crop the engine would make
ASTRONAUT_HEAD = (slice(0, 300), slice(90, 390))


@dataclass(frozen=True, slots=True)
class Int8Report:
    """What was quantised and how far the int8 prediction is from float32 on held-out samples."""

    quantized_convs: int
    float_convs: int
    calibration_samples: int
    max_abs: float
    mean_abs: float

    def to_dict(self) -> dict[str, float | int | str]:
        return {
            "method": "static QDQ (onnxruntime.quantization), min/max calibration",
            "weights": "int8, per output channel",
            "activations": "uint8",
            "quantized_convs": self.quantized_convs,
            "float32_convs": self.float_convs,
            "kept_float32": "dense motion network, grid sampling, non-convolution ops",
            "calibration_samples": self.calibration_samples,
            "held_out_prediction_error": {"max_abs": round(self.max_abs, 6), "mean_abs": round(self.mean_abs, 6)},
        }


def default_calibration_images() -> list[np.ndarray]:
    """Face crops for calibration: the astronaut's head, mirrored, darker and brighter, grey."""
    from ..examples import example_portrait

    head = example_portrait()[ASTRONAUT_HEAD]
    grey = np.repeat(head.mean(axis=2, keepdims=True), 3, axis=2).astype(np.uint8)
    return [head, head[:, ::-1], np.clip(head * 0.6, 0, 255).astype(np.uint8),
            np.clip(head * 1.3 + 10, 0, 255).astype(np.uint8), grey]


def face_crops(paths: Sequence[str], size: int = 256) -> list[np.ndarray]:
    """The face crop the engines would animate, for each image file (errors name the file)."""
    from ..config import FaceConfig
    from ..face.crop import crop_box, crop_matrix, make_crop
    from ..face.landmarks import detect_face
    from ..media.image import load_image

    crops = []
    for path in paths:
        image = load_image(path)
        face = detect_face(image, str(path))
        crops.append(make_crop(image, face.landmarks, crop_matrix(crop_box(face.landmarks, FaceConfig()), size), size).image)
    return crops


def _to_tensor(image: np.ndarray, size: int) -> torch.Tensor:
    import cv2

    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise WeightsError(f"calibration images must be RGB uint8 (H, W, 3), got {image.dtype} {image.shape}")
    resized = cv2.resize(np.ascontiguousarray(image), (size, size), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(resized).permute(2, 0, 1)[None].float() / 255


def _moved(kp: Keypoints, rng: np.random.Generator) -> Keypoints:
    """``kp`` after a sampled head motion: rotation ±12°, scale ±6 %, shift ±0.08, small per-point noise."""
    a = math.radians(rng.uniform(-12, 12))
    s = rng.uniform(0.94, 1.06)
    rot = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], dtype=kp.value.dtype) * s
    centre = kp.value.mean(dim=1, keepdim=True)
    shift = torch.from_numpy(rng.uniform(-0.08, 0.08, size=(1, 1, 2))).to(kp.value.dtype)
    noise = torch.from_numpy(rng.normal(0, 0.01, size=tuple(kp.value.shape))).to(kp.value.dtype)
    value = (kp.value - centre) @ rot.T + centre + shift + noise
    jac_noise = torch.from_numpy(rng.normal(0, 0.03, size=tuple(kp.jacobian.shape))).to(kp.value.dtype)
    return Keypoints(value, rot @ kp.jacobian + jac_noise)


def generator_feeds(
    kp_detector: KPDetector, generator: OcclusionAwareGenerator, images: Sequence[np.ndarray], size: int,
    motions: int = 2, seed: int = 0,
) -> list[dict[str, np.ndarray]]:
    """Generator-graph inputs (batch 1) for each image × ``motions`` sampled head motions."""
    rng = np.random.default_rng(seed)
    feeds = []
    with torch.no_grad():
        for image in images:
            source = _to_tensor(image, size)
            kp_s = kp_detector(source)
            features = generator.encode(source)
            for _ in range(motions):
                kp_d = _moved(kp_s, rng)
                feeds.append({
                    "source": source.numpy(), "features": features.numpy(),
                    "kp_driving_value": kp_d.value.numpy(), "kp_driving_jacobian": kp_d.jacobian.numpy(),
                    "kp_source_value": kp_s.value.numpy(), "kp_source_jacobian": kp_s.jacobian.numpy(),
                })
    return feeds


def _conv_names(path: Path) -> tuple[list[str], list[str]]:
    """(quantisable, kept-float) Conv node names of a graph."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    convs = [n.name for n in model.graph.node if n.op_type == "Conv"]
    keep = [n for n in convs if n.startswith(FLOAT_SCOPES)]
    return [n for n in convs if n not in keep], keep


def _drop_unused_opsets(path: Path) -> None:
    """The quantiser declares Microsoft domains it did not use; keep only the domains nodes use."""
    import onnx

    model = onnx.load(str(path))
    used = {n.domain for n in model.graph.node} | {""}
    kept = [o for o in model.opset_import if o.domain in used or o.domain == "ai.onnx"]
    del model.opset_import[:]
    model.opset_import.extend(kept)
    onnx.save(model, str(path))


def _prediction_error(fp32: Path, int8: Path, feeds: Sequence[dict[str, np.ndarray]]) -> tuple[float, float]:
    from ..render.onnx import session_options
    from ..render.ort_runtime import import_onnxruntime

    ort = import_onnxruntime("checking the int8 export")

    so = session_options()
    a = ort.InferenceSession(str(fp32), so, providers=["CPUExecutionProvider"])
    b = ort.InferenceSession(str(int8), so, providers=["CPUExecutionProvider"])
    diffs = [np.abs(a.run(None, f)[0] - b.run(None, f)[0]) for f in feeds]
    return float(max(d.max() for d in diffs)), float(np.mean([d.mean() for d in diffs]))


class _DropAdvice(logging.Filter):
    """The quantiser logs "please consider pre-processing" on the root logger; our graphs
    already have static shapes and folded constants, so the advice is noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing" not in record.getMessage()


def quantize_generator(
    src: Path, dst: Path, calibration: Sequence[dict[str, np.ndarray]], held_out: Sequence[dict[str, np.ndarray]],
) -> Int8Report:
    """Write the int8 QDQ copy of the float32 generator graph ``src`` to ``dst``."""
    try:
        from onnxruntime.quantization import (
            CalibrationDataReader,
            QuantFormat,
            QuantType,
            quantize_static,
        )
    except ImportError:
        raise WeightsError("int8 export needs onnxruntime: pip install \"avatar[cpu]\" (or \"avatar[gpu]\")") from None

    quantize, keep = _conv_names(src)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._feeds = iter(calibration)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._feeds, None)

    root = logging.getLogger()
    advice = _DropAdvice()
    root.addFilter(advice)
    try:
        quantize_static(
            str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, op_types_to_quantize=["Conv"],
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True, nodes_to_exclude=keep,
        )
    finally:
        root.removeFilter(advice)
    _drop_unused_opsets(dst)
    max_abs, mean_abs = _prediction_error(src, dst, held_out)
    return Int8Report(len(quantize), len(keep), len(calibration), max_abs, mean_abs)
