"""The ``onnx`` engine: FOMM through onnxruntime, from a folder made by ``avatar export onnx``.

Per-target logic (relative keypoints, movement scale, reference cache, image conversion) is
FommEngine's; this engine only swaps the three network calls for onnxruntime sessions.

Providers: ``cfg.providers`` in order (names such as "tensorrt", "cuda", "cpu" or the full
``...ExecutionProvider`` names), else TensorRT → CUDA → CPU filtered by what this onnxruntime
build offers. onnxruntime falls back to CPU silently when CUDA/TensorRT libraries are missing,
so after creating each session the providers it actually uses are compared with the request:
a fallback is logged and warned about, or raises EngineUnavailable with ``cfg.strict_providers``.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..config import RenderConfig
from ..errors import ConfigError, EngineUnavailable
from .fomm.blocks import Keypoints
from .fomm.engine import FommEngine

log = logging.getLogger(__name__)

PROVIDER_ALIASES = {
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
    "rocm": "ROCMExecutionProvider",
    "migraphx": "MIGraphXExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "dml": "DmlExecutionProvider",
    "directml": "DmlExecutionProvider",
}
DEFAULT_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


def _import_ort() -> Any:
    from .ort_runtime import import_onnxruntime

    return import_onnxruntime("the onnx engine")


def provider_name(name: str) -> str:
    """"cuda" → "CUDAExecutionProvider"; full names pass through; anything else is a ConfigError."""
    if name.endswith("ExecutionProvider"):
        return name
    try:
        return PROVIDER_ALIASES[name.strip().lower()]
    except KeyError:
        raise ConfigError(f"unknown onnxruntime provider {name!r}; use {', '.join(sorted(PROVIDER_ALIASES))} or a full ...ExecutionProvider name") from None


def requested_providers(requested: Sequence[str], available: Sequence[str]) -> list[str]:
    """The ordered provider list to ask for: ``requested`` as given, or the default order
    (TensorRT → CUDA → CPU) restricted to ``available``."""
    if requested:
        names = [provider_name(p) for p in requested]
        return list(dict.fromkeys(names))
    return [p for p in DEFAULT_PROVIDERS if p in available] or ["CPUExecutionProvider"]


def _device_id(device: str) -> int:
    _, _, idx = device.partition(":")
    try:
        return int(idx) if idx else 0
    except ValueError:
        raise ConfigError(f"device must be cpu, cuda or cuda:N, got {device!r}") from None


def provider_options(name: str, *, device_id: int, half: bool, cache: Path, profiles: dict[str, str] | None = None) -> dict[str, Any]:
    """Options for one provider: TensorRT gets engine + timing caches under ``cache`` and fp16
    when ``half``; with ``profiles`` (min/opt/max shape strings) it builds one engine for the
    whole batch range instead of one per new shape."""
    if name == "TensorrtExecutionProvider":
        from ..paths import private_dir

        private_dir(cache)  # under $AVATAR_HOME when set: its missing folders are created 0700
        opts: dict[str, Any] = {
            "device_id": device_id,
            "trt_fp16_enable": half,
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": str(cache),
            "trt_timing_cache_enable": True,
            "trt_timing_cache_path": str(cache),
        }
        if profiles:
            opts.update({f"trt_profile_{k}_shapes": v for k, v in profiles.items()})
        return opts
    if name == "CUDAExecutionProvider":
        return {"device_id": device_id, "do_copy_in_default_stream": True}
    return {}


def session_options(threads: int | None = None) -> Any:
    """Graph optimisations on (level ALL), ``threads`` intra-op threads (default: usable cores)."""
    ort = _import_ort()
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads is None:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    so.intra_op_num_threads = max(1, threads)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.enable_mem_pattern = True
    so.log_severity_level = 3  # provider load failures are reported by check_providers instead
    return so


def provider_fallback(used: Sequence[str], asked: Sequence[str], what: str) -> str | None:
    """A one-line description of a silent fallback, or None when ``used`` honours ``asked``.

    A fallback is: the first provider in use differs from the first one asked for, or an
    asked provider is not in use at all (onnxruntime drops providers it cannot load).
    """
    missing = [p for p in asked if p not in used]
    if used and asked and used[0] == asked[0] and not missing:
        return None
    return (
        f"onnxruntime runs {what} on {used[0] if used else 'nothing'}, not on {asked[0]} as asked "
        f"({', '.join(missing) or asked[0]} unavailable: this onnxruntime build or the CUDA/cuDNN/TensorRT "
        f"libraries it needs are missing; see export/README.md)"
    )


def report_fallback(message: str | None, strict: bool) -> None:
    """Raise EngineUnavailable (``strict``) or log + warn about a provider fallback."""
    if message is None:
        return
    if strict:
        raise EngineUnavailable(message + "; drop --strict-providers to run anyway")
    log.warning(message)
    warnings.warn(message, RuntimeWarning, stacklevel=3)


@dataclass
class Graph:
    """One onnxruntime session plus its interface (from the export sidecar)."""

    session: Any
    inputs: tuple[Any, ...]  # TensorSpec
    outputs: tuple[Any, ...]
    providers: list[str]

    @property
    def on_gpu(self) -> bool:
        return bool(self.providers) and self.providers[0] in GPU_PROVIDERS


def run_graph(graph: Graph, args: Sequence[Tensor], *, binding: bool, device_id: int = 0) -> list[Tensor]:
    """Run a session on torch tensors; returns float32 torch tensors on the inputs' device.

    With ``binding`` the inputs are bound by pointer and the outputs are written into torch
    tensors allocated on the session's device (CUDA: frames never visit host memory); without
    it the tensors go through numpy (zero-copy on CPU).
    """
    b = int(args[0].shape[0])
    if not binding:
        feeds = {spec.name: a.detach().cpu().contiguous().numpy() for spec, a in zip(graph.inputs, args)}
        outs = graph.session.run([o.name for o in graph.outputs], feeds)
        return [torch.from_numpy(o).to(args[0].device) for o in outs]
    io = graph.session.io_binding()
    args = [a.detach().contiguous().float() for a in args]
    for spec, a in zip(graph.inputs, args):
        io.bind_input(spec.name, a.device.type, a.device.index or 0, np.float32, tuple(a.shape), a.data_ptr())
    out_dev = args[0].device if args[0].device.type == "cuda" or not graph.on_gpu else None
    results: list[Tensor] = []
    for spec in graph.outputs:
        if out_dev is not None:
            t = torch.empty(spec.concrete(b), dtype=torch.float32, device=out_dev)
            io.bind_output(spec.name, t.device.type, t.device.index or 0, np.float32, tuple(t.shape), t.data_ptr())
            results.append(t)
        else:  # session on the GPU, torch without CUDA: let onnxruntime allocate, copy back once
            io.bind_output(spec.name, "cuda", device_id)
    if args[0].device.type == "cuda":
        torch.cuda.current_stream(args[0].device).synchronize()  # inputs written by torch kernels
    graph.session.run_with_iobinding(io)
    io.synchronize_outputs()
    if out_dev is None:
        return [torch.from_numpy(o) for o in io.copy_outputs_to_cpu()]
    return results


class OnnxEngine(FommEngine):
    """FOMM rendered by onnxruntime from an export folder (``cfg.model_dir``).

    Args:
        cfg: ``model_dir`` (required), ``providers``, ``strict_providers``, ``half`` (use the
            fp16 graphs when the export has them; TensorRT builds fp16 engines), ``int8`` (use
            the export's int8 generator; a ConfigError when it has none), ``device``
            (cuda:N picks the GPU), ``batch_size``.
        threads: onnxruntime intra-op threads (default: usable cores).
        io_binding: bind inputs/outputs by pointer; default True when running on CUDA/TensorRT.
        adapt_movement_scale, relative_jacobian: as FommEngine.

    Attributes: ``providers`` maps each graph name to the providers its session uses.
    """

    name = "onnx"
    needs_driving_image = True

    def __init__(
        self,
        cfg: RenderConfig | None = None,
        *,
        threads: int | None = None,
        io_binding: bool | None = None,
        adapt_movement_scale: bool = True,
        relative_jacobian: bool = True,
    ) -> None:
        from ..export.sidecar import read_export
        from ..paths import cache_dir

        self.cfg = cfg or RenderConfig(engine="onnx")
        if not self.cfg.model_dir:
            raise ConfigError("the onnx engine needs --model-dir DIR (a folder made by `avatar export onnx`)")
        ort = _import_ort()
        self.info = read_export(self.cfg.model_dir)
        self.arch = self.info.config
        self.adapt_movement_scale = adapt_movement_scale
        self.relative_jacobian = relative_jacobian
        use_fp16 = bool(self.cfg.half) and bool(self.info.fp16)
        if self.cfg.int8 and not self.info.int8:
            raise ConfigError(f"{self.cfg.model_dir} has no int8 graph; export with `avatar export onnx --int8` or drop --int8")
        if self.cfg.half and not self.info.fp16:
            log.info("%s has no fp16 graphs (export with --fp16); TensorRT still builds fp16 engines with --half", self.cfg.model_dir)
        device_id = _device_id(self.cfg.device)
        asked = requested_providers(self.cfg.providers, ort.get_available_providers())
        cache = cache_dir() / "onnx-trt" / self.info.graphs["generator"].sha256[:16]
        so = session_options(threads)
        self.graphs: dict[str, Graph] = {}
        for name in ("kp_detector", "source_encoder", "generator"):
            path, spec = self.info.graph(name, half=use_fp16, int8=self.cfg.int8)
            opts = [provider_options(p, device_id=device_id, half=bool(self.cfg.half), cache=cache,
                                     profiles=_trt_profiles(spec.inputs, self.cfg.batch_size)) for p in asked]
            try:
                with warnings.catch_warnings():
                    # onnxruntime's own "not in available provider names" notice; check_providers reports it
                    warnings.filterwarnings("ignore", message="Specified provider", category=UserWarning)
                    session = ort.InferenceSession(str(path), sess_options=so, providers=asked, provider_options=opts)
            except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own Fail/InvalidGraph/RuntimeError types
                raise EngineUnavailable(f"onnxruntime cannot load {path}: {str(exc).strip().splitlines()[0][:300]}") from None
            names = ([i.name for i in session.get_inputs()], [o.name for o in session.get_outputs()])
            if names != ([t.name for t in spec.inputs], [t.name for t in spec.outputs]):
                raise EngineUnavailable(f"{path} has inputs/outputs {names}, the sidecar lists others; export again with --overwrite")
            used = list(session.get_providers())
            self.graphs[name] = Graph(session, spec.inputs, spec.outputs, used)
        fallen = [n for n, g in self.graphs.items() if provider_fallback(g.providers, asked, n)]
        if fallen:  # one message for all graphs
            report_fallback(provider_fallback(self.graphs[fallen[0]].providers, asked, " + ".join(fallen)), self.cfg.strict_providers)
        on_gpu = self.graphs["generator"].on_gpu
        self.device = torch.device(f"cuda:{device_id}") if on_gpu and torch.cuda.is_available() else torch.device("cpu")
        self.half = False  # no torch autocast: precision is the graphs' business
        self.io_binding = on_gpu if io_binding is None else io_binding
        self._device_id = device_id
        self.providers = {n: g.providers for n, g in self.graphs.items()}
        log.info("onnx engine: %s, providers %s, io binding %s", self.info.root, self.providers["generator"], self.io_binding)

    def _run(self, name: str, *args: Tensor) -> list[Tensor]:
        return run_graph(self.graphs[name], args, binding=self.io_binding, device_id=self._device_id)

    def _keypoints(self, images: Tensor) -> Keypoints:
        value, jacobian = self._run("kp_detector", images)
        return Keypoints(value, jacobian)

    def _encode(self, source: Tensor) -> Tensor:
        return self._run("source_encoder", source)[0]

    def _predict(self, source: Tensor, features: Tensor, kp_driving: Keypoints, kp_source: Keypoints) -> Tensor:
        return self._run("generator", source, features, kp_driving.value, kp_driving.jacobian, kp_source.value, kp_source.jacobian)[0]

    def close(self) -> None:
        """Drop the sessions. Safe to call twice."""
        self.graphs = {}


def _trt_profiles(inputs: Sequence[Any], max_batch: int) -> dict[str, str]:
    """TensorRT optimisation profile strings (batch 1 … max_batch, optimum max_batch)."""
    def shapes(b: int) -> str:
        return ",".join(f"{t.name}:{'x'.join(str(d) for d in t.concrete(b))}" for t in inputs)

    return {"min": shapes(1), "opt": shapes(max_batch), "max": shapes(max_batch)}
