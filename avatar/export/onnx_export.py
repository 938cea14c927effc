"""Export the FOMM networks as ONNX graphs (opset >= 17, dynamic batch) plus a JSON sidecar.

Three graphs, so that the engine can cache the source encoding as FommEngine does:

* ``kp_detector.onnx``: image (B, C, S, S) → kp_value (B, K, 2), kp_jacobian (B, K, 2, 2);
* ``source_encoder.onnx``: source (B, C, S, S) → features (B, F, S/4, S/4);
* ``generator.onnx``: source, features, kp_driving_value, kp_driving_jacobian,
  kp_source_value, kp_source_jacobian → prediction (B, C, S, S) in (0, 1) (dense motion inside).

The legacy TorchScript exporter (``torch.onnx.export(..., dynamo=False)``) is used: it
exports these networks cleanly with torch 2.13, runs several times faster than the dynamo
exporter, and its graphs convert to fp16 (the dynamo graphs do not, see
shared/notes/runtime-ecosystem.md §1.5). The spatial size is fixed at ``image_size``.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import AvatarError, ConfigError, WeightsError
from ..render.fomm.blocks import Keypoints
from ..render.fomm.config import CONFIGS, FommConfig
from ..render.fomm.generator import OcclusionAwareGenerator
from ..render.fomm.keypoint_detector import KPDetector
from .sidecar import (
    BATCH,
    FORMAT,
    FORMAT_VERSION,
    GRAPHS,
    SIDECAR,
    GraphSpec,
    TensorSpec,
    config_to_dict,
    graph_to_dict,
    sha256_file,
)

MIN_OPSET = 17
MAX_OPSET = 20  # GridSample's mode was renamed in opset 20; both are accepted by onnxruntime
EXPORTER = "torch.onnx.export(dynamo=False) (TorchScript)"
# ops kept in float32 in the fp16 variant: GridSample has float-only CUDA kernels and the
# sampling positions need the precision; the keypoint soft-argmax (Softmax over 58² logits
# divided by temperature 0.1), its reductions and the Gaussians lose too much in fp16.
FP16_KEEP_FLOAT = ("GridSample", "Softmax", "ReduceSum", "Exp", "Resize")
ALLOWED_DOMAINS = ("", "ai.onnx")
# graphs converted for the fp16 variant. The keypoint detector stays fp32 (2.6 of ~110 GFLOP per
# frame): its soft-argmax amplifies fp16 errors to ~1 px keypoint shifts (0.011 in [-1, 1]),
# which moved the chained prediction by up to 0.37 on the parity weights; the generator alone
# differs by 0.035 max.
FP16_GRAPHS = ("source_encoder", "generator")


class _KpGraph(nn.Module):
    def __init__(self, kp: KPDetector) -> None:
        super().__init__()
        self.kp = kp

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor]:
        out = self.kp(image)
        return out.value, out.jacobian


class _EncoderGraph(nn.Module):
    def __init__(self, gen: OcclusionAwareGenerator) -> None:
        super().__init__()
        self.gen = gen

    def forward(self, source: Tensor) -> Tensor:
        return self.gen.encode(source)


class _GeneratorGraph(nn.Module):
    def __init__(self, gen: OcclusionAwareGenerator) -> None:
        super().__init__()
        self.gen = gen

    def forward(self, source: Tensor, features: Tensor, kp_driving_value: Tensor, kp_driving_jacobian: Tensor,
                kp_source_value: Tensor, kp_source_jacobian: Tensor) -> Tensor:
        out = self.gen.decode(source, features, Keypoints(kp_driving_value, kp_driving_jacobian), Keypoints(kp_source_value, kp_source_jacobian))
        return out.prediction  # only the prediction: the unused visualisation warp is pruned from the graph


def _example_inputs(cfg: FommConfig, gen: OcclusionAwareGenerator, batch: int = 2) -> dict[str, tuple[Tensor, ...]]:
    g = torch.Generator().manual_seed(0)
    s, c, k = cfg.image_size, cfg.num_channels, cfg.num_kp
    image = torch.rand(batch, c, s, s, generator=g)
    with torch.no_grad():
        features = gen.encode(image)
    value = torch.rand(batch, k, 2, generator=g) * 1.6 - 0.8
    jac = torch.eye(2).expand(batch, k, 2, 2) + 0.05 * torch.randn(batch, k, 2, 2, generator=g)
    return {
        "kp_detector": (image,),
        "source_encoder": (image,),
        "generator": (image, features, value + 0.03, jac + 0.02, value, jac),
    }


IO_NAMES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "kp_detector": (("image",), ("kp_value", "kp_jacobian")),
    "source_encoder": (("source",), ("features",)),
    "generator": (
        ("source", "features", "kp_driving_value", "kp_driving_jacobian", "kp_source_value", "kp_source_jacobian"),
        ("prediction",),
    ),
}


def _onnx_dtype_name(elem_type: int) -> str:
    import onnx

    return onnx.helper.tensor_dtype_to_np_dtype(elem_type).name


def graph_io(path: Path) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """Inputs and outputs of an ONNX file as TensorSpecs (symbolic dims → ``"batch"``)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)

    def spec(v: Any) -> TensorSpec:
        t = v.type.tensor_type
        dims = tuple(d.dim_value if d.HasField("dim_value") else BATCH for d in t.shape.dim)
        return TensorSpec(v.name, _onnx_dtype_name(t.elem_type), dims)

    return tuple(spec(v) for v in model.graph.input), tuple(spec(v) for v in model.graph.output)


def check_graph(path: Path) -> None:
    """onnx.checker (with shape inference) and no custom-op domains; raises WeightsError."""
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise WeightsError(f"exported graph {path.name} fails onnx.checker: {str(exc).splitlines()[0]}") from None
    model = onnx.load(str(path), load_external_data=False)
    custom = sorted({n.domain for n in model.graph.node if n.domain not in ALLOWED_DOMAINS})
    if custom:
        raise WeightsError(f"exported graph {path.name} uses custom op domains {custom}; only standard ONNX ops are allowed")


def _export_one(module: nn.Module, args: tuple[Tensor, ...], names: tuple[tuple[str, ...], tuple[str, ...]], path: Path, opset: int) -> None:
    inputs, outputs = names
    with warnings.catch_warnings(), torch.no_grad():
        # the legacy exporter's DeprecationWarning and tracer warnings are expected here
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(), args, str(path), dynamo=False, opset_version=opset, input_names=list(inputs), output_names=list(outputs),
            dynamic_axes={n: {0: BATCH} for n in (*inputs, *outputs)}, do_constant_folding=True,
        )
        result = module(*args)
    _fix_output_shapes(path, [r.shape for r in (result if isinstance(result, tuple) else (result,))])


def _fix_output_shapes(path: Path, shapes: Sequence[torch.Size]) -> None:
    """Write the static output sizes into the graph (the tracer leaves them symbolic), so that
    the sidecar, Triton configs and pre-allocated IO-binding outputs can rely on them."""
    import onnx

    model = onnx.load(str(path))
    for out, shape in zip(model.graph.output, shapes):
        dims = out.type.tensor_type.shape.dim
        del dims[:]
        first = dims.add()
        first.dim_param = BATCH
        for size in shape[1:]:
            dims.add().dim_value = int(size)
    onnx.save(model, str(path))


def convert_fp16(src: Path, dst: Path) -> None:
    """fp16 copy of an fp32 graph; inputs/outputs stay float32, :data:`FP16_KEEP_FLOAT` ops stay float32."""
    import onnx

    from ..render.ort_runtime import import_onnxruntime

    import_onnxruntime("the fp16 export")
    from onnxruntime.transformers.float16 import (
        DEFAULT_OP_BLOCK_LIST,
        convert_float_to_float16,
    )

    model = onnx.load(str(src))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "the float32 value ... is truncated" notices
        half = convert_float_to_float16(model, keep_io_types=True, op_block_list=list(DEFAULT_OP_BLOCK_LIST) + list(FP16_KEEP_FLOAT))
    from onnxruntime.transformers.onnx_model import OnnxModel

    wrapped = OnnxModel(half)
    wrapped.topological_sort()  # the converter appends the input casts after their consumers
    onnx.save(wrapped.model, str(dst))


def _versions() -> dict[str, str]:
    import onnx

    from .. import __version__

    out = {"avatar": __version__, "torch": torch.__version__, "onnx": onnx.__version__}
    try:
        import onnxruntime

        out["onnxruntime"] = onnxruntime.__version__
    except ImportError:  # export needs only torch + onnx
        out["onnxruntime"] = "not installed"
    return out


def _prepare_out_dir(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a folder; choose another path")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ConfigError(f"--out {out} exists and is not empty; pass --overwrite to replace it")


def _move_into_place(tmp: Path, out: Path) -> None:
    """Replace ``out`` by the finished ``tmp`` folder (same parent, so the renames are atomic)."""
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.replace(out, old / out.name)
    try:
        os.replace(tmp, out)
    except OSError:
        if old is not None:
            os.replace(old / out.name, out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def export_models(
    kp_detector: KPDetector,
    generator: OcclusionAwareGenerator,
    arch: FommConfig,
    out_dir: str | os.PathLike[str],
    *,
    fp16: bool = False,
    int8: bool = False,
    calibration_images: Sequence[Any] | None = None,
    opset: int = MIN_OPSET,
    overwrite: bool = False,
    checkpoint: str | None = None,
    checkpoint_sha256: str | None = None,
) -> Path:
    """Export ready models (eval mode, CPU) into ``out_dir``; returns the folder.

    ``fp16`` adds ``*.fp16.onnx`` graphs; ``int8`` adds ``generator.int8.onnx`` (see
    :mod:`avatar.export.quantize`), calibrated on ``calibration_images`` (RGB uint8 face crops;
    default: the bundled astronaut portrait and variants of it).

    Everything is written into a temporary folder beside ``out_dir`` and moved into place at
    the end, so a failure leaves no half-written export. Refuses an existing non-empty
    ``out_dir`` unless ``overwrite``.
    """
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ConfigError(f"opset must be in [{MIN_OPSET}, {MAX_OPSET}], got {opset}")
    out = Path(out_dir).expanduser().absolute()
    _prepare_out_dir(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    kp_detector = kp_detector.cpu().float().eval()
    generator = generator.cpu().float().eval()
    modules = {"kp_detector": _KpGraph(kp_detector), "source_encoder": _EncoderGraph(generator), "generator": _GeneratorGraph(generator)}
    examples = _example_inputs(arch, generator)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        graphs: dict[str, GraphSpec] = {}
        half: dict[str, GraphSpec] = {}
        for name in GRAPHS:
            path = tmp / f"{name}.onnx"
            _export_one(modules[name], examples[name], IO_NAMES[name], path, opset)
            check_graph(path)
            graphs[name] = GraphSpec(path.name, sha256_file(path), *graph_io(path))
            if fp16 and name in FP16_GRAPHS:
                hpath = tmp / f"{name}.fp16.onnx"
                convert_fp16(path, hpath)
                check_graph(hpath)
                half[name] = GraphSpec(hpath.name, sha256_file(hpath), *graph_io(hpath))
            elif fp16:
                half[name] = graphs[name]
        quantized: dict[str, GraphSpec] = {}
        int8_report = None
        if int8:
            from .quantize import INT8_GRAPHS, default_calibration_images, generator_feeds, quantize_generator

            images = list(calibration_images) if calibration_images else default_calibration_images()
            calibration = generator_feeds(kp_detector, generator, images, arch.image_size, seed=0)
            held_out = generator_feeds(kp_detector, generator, images[:2], arch.image_size, motions=1, seed=1)
            for name in INT8_GRAPHS:
                qpath = tmp / f"{name}.int8.onnx"
                int8_report = quantize_generator(tmp / graphs[name].file, qpath, calibration, held_out)
                check_graph(qpath)
                quantized[name] = GraphSpec(qpath.name, sha256_file(qpath), *graph_io(qpath))
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "checkpoint": {"file": Path(checkpoint).name if checkpoint else None, "sha256": checkpoint_sha256},
            "fomm_config": config_to_dict(arch),
            "opset": opset,
            "exporter": EXPORTER,
            "versions": _versions(),
            "image_size": arch.image_size,
            "graphs": {n: graph_to_dict(g) for n, g in graphs.items()},
            "fp16_graphs": {n: graph_to_dict(g) for n, g in half.items()} or None,
            "fp16_kept_float32": list(FP16_KEEP_FLOAT) if fp16 else None,
            "int8_graphs": {n: graph_to_dict(g) for n, g in quantized.items()} or None,
            "int8": int8_report.to_dict() if int8_report else None,
        }
        (tmp / SIDECAR).write_text(json.dumps(meta, indent=2) + "\n")
        _prepare_out_dir(out, overwrite)  # again: something may have appeared meanwhile
        _move_into_place(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def config_for_checkpoint(path: Path, name: str | None = None) -> FommConfig:
    """Architecture for a checkpoint: ``name`` from CONFIGS, else the file's embedded upstream
    ``config`` (as in the parity fixture) when it has one, else vox-256."""
    if name is not None:
        try:
            return CONFIGS[name]
        except KeyError:
            raise ConfigError(f"unknown FOMM config {name!r}; choose one of {', '.join(sorted(CONFIGS))}") from None
    try:  # mmap: only the small config entry is actually read (zip-format files only)
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - legacy-format, safetensors or unreadable: read_checkpoint reports real problems
        return CONFIGS["vox-256"]
    embedded = obj.get("config") if isinstance(obj, dict) else None
    if isinstance(embedded, dict) and "model_params" in embedded:
        return FommConfig.from_model_params(embedded)
    return CONFIGS["vox-256"]


def export_onnx(
    checkpoint: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    fp16: bool = False,
    int8: bool = False,
    calibration_images: Sequence[Any] | None = None,
    opset: int = MIN_OPSET,
    overwrite: bool = False,
    config: str | None = None,
) -> Path:
    """Load a FOMM checkpoint (path or manifest name) strictly and export it; returns the folder."""
    from ..render.fomm.weights import load_models
    from ..weights_registry import resolve_checkpoint

    out = Path(out_dir).expanduser()
    _prepare_out_dir(out, overwrite)  # before the slow load
    path = Path(resolve_checkpoint(str(checkpoint)))
    arch = config_for_checkpoint(path, config)
    try:
        kp, gen = load_models(path, arch)
    except AvatarError:
        raise
    except Exception as exc:  # noqa: BLE001 - the unpickler raises IndexError/KeyError/... on some garbage files
        raise WeightsError(f"cannot read {path}: not a FOMM checkpoint or corrupt ({type(exc).__name__}); pass a .pth.tar or .safetensors file") from None
    return export_models(kp, gen, arch, out, fp16=fp16, int8=int8, calibration_images=calibration_images, opset=opset,
                         overwrite=overwrite, checkpoint=str(path),
                         checkpoint_sha256=sha256_file(path))


def max_abs_diff(a: Sequence[Any], b: Sequence[Any]) -> float:
    """Largest absolute difference over pairs of arrays/tensors (for parity reports)."""
    import numpy as np

    return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64)))) for x, y in zip(a, b))
