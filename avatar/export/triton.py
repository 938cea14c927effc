"""NVIDIA Triton model repository from an ONNX export, and an offline validator for it.

Layout written (one Triton model per graph, ``platform: "onnxruntime_onnx"``)::

    REPO/
      fomm_kp_detector/config.pbtxt    fomm_kp_detector/1/model.onnx
      fomm_source_encoder/config.pbtxt fomm_source_encoder/1/model.onnx
      fomm_generator/config.pbtxt      fomm_generator/1/model.onnx
      avatar-onnx.json                 (the export's sidecar, for reference)

Validation needs no Triton server: each ``config.pbtxt`` is parsed with protobuf's
``text_format`` against Triton's own ``inference.ModelConfig`` schema (vendored descriptor,
see ``_triton_schema``), so unknown fields and wrong enum values are caught; then names,
dtypes and dims are checked against the ONNX graph in the version folder.
"""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import ConfigError, InputError
from .sidecar import GRAPHS, SIDECAR, TensorSpec, read_export

PREFIX = "fomm_"
PLATFORM = "onnxruntime_onnx"
_DTYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16", "int64": "TYPE_INT64", "int32": "TYPE_INT32", "uint8": "TYPE_UINT8"}


class TritonConfigError(InputError):
    """A Triton model repository or config.pbtxt is invalid."""


@lru_cache(maxsize=1)
def model_config_class() -> type:
    """The ``inference.ModelConfig`` message class, built from the vendored descriptor."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    from ._triton_schema import MODEL_CONFIG_DESCRIPTOR_B64

    pool = descriptor_pool.DescriptorPool()
    pool.Add(descriptor_pb2.FileDescriptorProto.FromString(base64.b64decode(MODEL_CONFIG_DESCRIPTOR_B64)))
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("inference.ModelConfig"))


def _io_block(kind: str, specs: tuple[TensorSpec, ...]) -> str:
    rows = []
    for t in specs:
        dims = ", ".join(str(d) for d in t.shape[1:])  # the batch axis is implicit with max_batch_size > 0
        rows.append(f'  {{\n    name: "{t.name}"\n    data_type: {_DTYPES[t.dtype]}\n    dims: [ {dims} ]\n  }}')
    return f"{kind} [\n" + ",\n".join(rows) + "\n]\n"


def config_text(name: str, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...], *, max_batch: int,
                queue_delay_us: int = 2000, instance_kind: str = "KIND_GPU", tensorrt: bool = False) -> str:
    """A ``config.pbtxt`` for one ONNX graph with dynamic batching."""
    preferred = sorted({b for b in (max_batch // 2, max_batch) if b >= 1})
    text = (
        f'name: "{name}"\nplatform: "{PLATFORM}"\nmax_batch_size: {max_batch}\n'
        + _io_block("input", inputs)
        + _io_block("output", outputs)
        + f"dynamic_batching {{\n  preferred_batch_size: [ {', '.join(map(str, preferred))} ]\n"
        f"  max_queue_delay_microseconds: {queue_delay_us}\n}}\n"
        f"instance_group [\n  {{\n    count: 1\n    kind: {instance_kind}\n  }}\n]\n"
    )
    if tensorrt:
        text += (
            "optimization {\n  execution_accelerators {\n    gpu_execution_accelerator: [\n      {\n"
            '        name: "tensorrt"\n        parameters { key: "precision_mode" value: "FP16" }\n'
            '        parameters { key: "max_workspace_size_bytes" value: "4294967296" }\n'
            '        parameters { key: "trt_engine_cache_enable" value: "1" }\n'
            '        parameters { key: "trt_engine_cache_path" value: "/tmp/avatar-trt-cache" }\n'
            "      }\n    ]\n  }\n}\n"
        )
    return text


def write_repository(model_dir: str | os.PathLike[str], repo: str | os.PathLike[str], *, max_batch: int = 8,
                     overwrite: bool = False, instance_kind: str = "KIND_GPU", tensorrt: bool = False,
                     half: bool = False) -> Path:
    """Write a Triton model repository for the export in ``model_dir``; returns the folder.

    half: use the export's fp16 graphs (their inputs/outputs stay float32). Written to a
    temporary folder and moved into place; refuses a non-empty ``repo`` unless ``overwrite``.
    """
    if not 1 <= max_batch <= 1024:
        raise ConfigError(f"--max-batch must be in [1, 1024], got {max_batch}")
    if instance_kind not in ("KIND_GPU", "KIND_CPU", "KIND_AUTO"):
        raise ConfigError(f"instance kind must be KIND_GPU, KIND_CPU or KIND_AUTO, got {instance_kind!r}")
    from .onnx_export import _move_into_place, _prepare_out_dir

    info = read_export(model_dir)
    if half and not info.fp16:
        raise ConfigError(f"{model_dir} has no fp16 graphs; export with --fp16 or leave out --fp16 here")
    out = Path(repo).expanduser().absolute()
    _prepare_out_dir(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        for graph in GRAPHS:
            path, spec = info.graph(graph, half=half)
            name = PREFIX + graph
            (tmp / name / "1").mkdir(parents=True)
            shutil.copyfile(path, tmp / name / "1" / "model.onnx")
            text = config_text(name, spec.inputs, spec.outputs, max_batch=max_batch, instance_kind=instance_kind, tensorrt=tensorrt)
            (tmp / name / "config.pbtxt").write_text(text)
        shutil.copyfile(info.root / SIDECAR, tmp / SIDECAR)
        validate_repository(tmp)
        _move_into_place(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def parse_config(text: str, where: str = "config.pbtxt") -> Any:
    """Parse config.pbtxt text into an ``inference.ModelConfig``; TritonConfigError on any error."""
    from google.protobuf import text_format

    try:
        return text_format.Parse(text, model_config_class()())
    except text_format.ParseError as exc:
        raise TritonConfigError(f"{where}: not a valid Triton model config: {exc}") from None


@dataclass(frozen=True)
class ModelCheck:
    """What was validated for one model folder."""

    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    max_batch_size: int


def _onnx_io(path: Path) -> tuple[dict[str, tuple[str, tuple[Any, ...]]], dict[str, tuple[str, tuple[Any, ...]]]]:
    from .onnx_export import graph_io

    try:
        ins, outs = graph_io(path)
    except Exception as exc:  # noqa: BLE001 - onnx.load raises DecodeError and others on a damaged file
        raise TritonConfigError(f"{path}: cannot read the ONNX graph ({type(exc).__name__})") from None
    return ({t.name: (t.dtype, t.shape) for t in ins}, {t.name: (t.dtype, t.shape) for t in outs})


def validate_model(folder: str | os.PathLike[str]) -> ModelCheck:
    """Validate one model folder (config.pbtxt + version folders holding model.onnx)."""
    folder = Path(folder)
    cfg_path = folder / "config.pbtxt"
    if not cfg_path.is_file():
        raise TritonConfigError(f"{folder}: no config.pbtxt")
    cfg = parse_config(cfg_path.read_text(), str(cfg_path))
    where = str(cfg_path)
    if cfg.name != folder.name:
        raise TritonConfigError(f"{where}: name {cfg.name!r} must equal the folder name {folder.name!r}")
    if cfg.platform != PLATFORM and cfg.backend != "onnxruntime":
        raise TritonConfigError(f"{where}: platform {cfg.platform!r}, expected {PLATFORM!r} for an ONNX model")
    if cfg.max_batch_size < 1:
        raise TritonConfigError(f"{where}: max_batch_size must be >= 1 for batched ONNX graphs, got {cfg.max_batch_size}")
    if cfg.WhichOneof("scheduling_choice") != "dynamic_batching":
        raise TritonConfigError(f"{where}: dynamic_batching is missing")
    bad = [b for b in cfg.dynamic_batching.preferred_batch_size if not 1 <= b <= cfg.max_batch_size]
    if bad:
        raise TritonConfigError(f"{where}: preferred_batch_size {bad} outside [1, max_batch_size={cfg.max_batch_size}]")
    versions = sorted(p for p in folder.iterdir() if p.is_dir() and p.name.isdigit())
    if not versions:
        raise TritonConfigError(f"{folder}: no numeric version folder (expected {folder.name}/1/model.onnx)")
    type_names = {v: k for k, v in _DTYPES.items()}
    enum = model_config_class().DESCRIPTOR.fields_by_name["input"].message_type.fields_by_name["data_type"].enum_type
    for version in versions:
        model = version / (cfg.default_model_filename or "model.onnx")
        if not model.is_file():
            raise TritonConfigError(f"{version}: {model.name} is missing")
        graph_in, graph_out = _onnx_io(model)
        for kind, entries, graph in (("input", cfg.input, graph_in), ("output", cfg.output, graph_out)):
            names = [e.name for e in entries]
            if sorted(names) != sorted(graph):
                raise TritonConfigError(f"{where}: {kind} names {names} do not match the ONNX graph's {sorted(graph)}")
            for e in entries:
                dtype, shape = graph[e.name]
                got = enum.values_by_number[e.data_type].name
                if type_names.get(got) != dtype:
                    raise TritonConfigError(f"{where}: {kind} {e.name!r} is {got}, the ONNX graph has {dtype}")
                if not shape or isinstance(shape[0], int):
                    raise TritonConfigError(f"{where}: {kind} {e.name!r} has a fixed first axis in the ONNX graph; batching needs it dynamic")
                want = [d if isinstance(d, int) else -1 for d in shape[1:]]
                if len(e.dims) != len(want) or any(w not in (-1, d) for w, d in zip(want, e.dims)):
                    raise TritonConfigError(f"{where}: {kind} {e.name!r} dims {list(e.dims)} do not match the ONNX graph's {want}")
    return ModelCheck(cfg.name, tuple(e.name for e in cfg.input), tuple(e.name for e in cfg.output), cfg.max_batch_size)


def validate_repository(repo: str | os.PathLike[str]) -> list[ModelCheck]:
    """Validate every model folder of a repository (all three FOMM models must be present)."""
    repo = Path(repo)
    if not repo.is_dir():
        raise TritonConfigError(f"Triton model repository not found: {repo}")
    models = sorted(p for p in repo.iterdir() if p.is_dir() and not p.name.startswith("."))
    missing = [PREFIX + g for g in GRAPHS if PREFIX + g not in {m.name for m in models}]
    if missing:
        raise TritonConfigError(f"{repo}: model folder(s) {missing} missing; write it with `avatar export triton`")
    return [validate_model(m) for m in models]
