"""FOMM speed: per-frame latency of the keypoint detector and the generator at vox-256.

``python -m avatar.bench fomm [--batch 1,8] [--device cpu] [--threads 2] [--runtime torch,onnx] [--iters 5]``

Random weights (latency does not depend on the values). For each runtime and batch size it
times, after warm-up, the median over ``--iters`` calls of

* ``kp``: keypoint detector on a batch of driving frames,
* ``gen``: full generator forward (source encoder included, as upstream runs it),
* ``decode``: generator with the source encoding cached (what FommEngine pays per frame),

and prints milliseconds per frame (call time / batch) plus frames per second of kp + decode.

Runtimes are factories in :data:`RUNTIMES` (name → callable(models, device) → Runtime). To add
one (e.g. "onnx"), write a factory returning an object with ``kp``, ``generator`` and
``decode`` callables that take and return torch tensors (convert inside; the conversion is part
of what gets timed) and register it in RUNTIMES. CUDA-only runtimes: ``torch-fp16`` (autocast),
``torch-compile`` (torch.compile, default mode), ``torch-cudagraphs`` (one CUDA graph per batch size,
static input buffers).

``onnx``: the same random models exported with ``avatar.export`` (fp32, opset 17) and run by
onnxruntime with the OnnxEngine's session options (graph optimisation ALL, intra-op threads =
``--threads`` or the usable cores) and providers (``--providers``, default TensorRT → CUDA → CPU
as available; IO binding on CUDA). ``onnx-fp16`` uses the fp16 graphs, ``onnx-int8`` the int8
generator (``avatar export onnx --int8``: int8 convolutions calibrated on the astronaut crop). When both ``torch`` and an
onnx runtime ran, the speed-up (torch ms / onnx ms per frame, kp + decode) is printed per batch.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ..render.fomm.blocks import Keypoints
from ..render.fomm.config import CONFIGS
from ..render.fomm.generator import OcclusionAwareGenerator
from ..render.fomm.keypoint_detector import KPDetector


@dataclass
class Runtime:
    """Callables that run the models; each takes and returns torch tensors on the bench device."""

    kp: Callable[[torch.Tensor], Any]
    generator: Callable[[torch.Tensor, Keypoints, Keypoints], Any]
    decode: Callable[[torch.Tensor, torch.Tensor, Keypoints, Keypoints], Any]
    cuda_only: bool = False


@dataclass
class Models:
    kp_detector: KPDetector
    generator: OcclusionAwareGenerator
    generator_cfg: Any = None  # FommConfig the models were built with (for exporters)


def _torch_runtime(m: Models, device: torch.device) -> Runtime:
    return Runtime(m.kp_detector, m.generator, m.generator.decode)


def _fp16_runtime(m: Models, device: torch.device) -> Runtime:
    def wrap(fn: Callable) -> Callable:
        def run(*args: Any) -> Any:
            with torch.autocast(device_type="cuda", dtype=torch.float16):
                return fn(*args)

        return run

    return Runtime(wrap(m.kp_detector), wrap(m.generator), wrap(m.generator.decode), cuda_only=True)


def _compile_runtime(m: Models, device: torch.device) -> Runtime:
    return Runtime(
        torch.compile(m.kp_detector), torch.compile(m.generator), torch.compile(m.generator.decode), cuda_only=True
    )


def _cudagraph_runtime(m: Models, device: torch.device) -> Runtime:
    """Captures one graph per (function, input shapes); replays after copying into static inputs."""
    graphs: dict[tuple, tuple[torch.cuda.CUDAGraph, list[torch.Tensor], Any]] = {}

    def graphed(name: str, fn: Callable) -> Callable:
        def run(*args: Any) -> Any:
            flat = [t for a in args for t in (a if isinstance(a, tuple) else (a,))]
            key = (name, *(tuple(t.shape) for t in flat))
            if key not in graphs:
                static = [t.clone() for t in flat]

                def call() -> Any:
                    it = iter(static)
                    rebuilt = [Keypoints(next(it), next(it)) if isinstance(a, tuple) else next(it) for a in args]
                    return fn(*rebuilt)

                stream = torch.cuda.Stream()
                stream.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(stream):
                    for _ in range(3):  # warm-up outside the graph (cuDNN autotuning, allocations)
                        call()
                torch.cuda.current_stream().wait_stream(stream)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    out = call()
                graphs[key] = (graph, static, out)
            graph, static, out = graphs[key]
            for s, t in zip(static, flat):
                s.copy_(t)
            graph.replay()
            return out

        return run

    return Runtime(graphed("kp", m.kp_detector), graphed("gen", m.generator), graphed("decode", m.generator.decode), cuda_only=True)


_ONNX_OPTIONS: dict[str, Any] = {"threads": None, "providers": ()}


def name_of(half: bool, int8: bool = False) -> str:
    return "onnx-int8" if int8 else "onnx-fp16" if half else "onnx"


def _onnx_runtime_factory(half: bool, int8: bool = False) -> Callable[[Models, torch.device], Runtime]:
    def factory(m: Models, device: torch.device) -> Runtime:
        import shutil
        import tempfile

        from ..config import RenderConfig
        from ..export.onnx_export import export_models
        from ..render.onnx import OnnxEngine

        folder = tempfile.mkdtemp(prefix="avatar-bench-onnx-")
        arch = m.generator_cfg
        export_models(m.kp_detector, m.generator, arch, folder + "/model", fp16=half, int8=int8, overwrite=True)
        cfg = RenderConfig(engine="onnx", model_dir=folder + "/model", device=str(device), half=half, int8=int8,
                           providers=_ONNX_OPTIONS["providers"], batch_size=8)
        try:
            eng = OnnxEngine(cfg, threads=_ONNX_OPTIONS["threads"])
        finally:
            shutil.rmtree(folder, ignore_errors=True)  # the sessions hold the graphs in memory
        print(f"{'':<18}  {name_of(half, int8)}: providers {eng.providers['generator']}, io binding {eng.io_binding}")

        def generator(source: torch.Tensor, kp_d: Keypoints, kp_s: Keypoints) -> Any:
            return eng._predict(source, eng._encode(source), kp_d, kp_s)

        return Runtime(eng._keypoints, generator, eng._predict)

    return factory


RUNTIMES: dict[str, Callable[[Models, torch.device], Runtime]] = {
    "torch": _torch_runtime,
    "onnx": _onnx_runtime_factory(False),
    "onnx-fp16": _onnx_runtime_factory(True),
    "onnx-int8": _onnx_runtime_factory(False, int8=True),
    "torch-fp16": _fp16_runtime,
    "torch-compile": _compile_runtime,
    "torch-cudagraphs": _cudagraph_runtime,
}
CUDA_DEFAULT = ("torch", "torch-fp16", "torch-compile", "torch-cudagraphs")


def _timings(fn: Callable[[], Any], iters: int, warmup: int, device: torch.device) -> tuple[float, float]:
    """(median, fastest) seconds per call."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times)


def bench(
    runtime: Runtime, models: Models, batch: int, device: torch.device, iters: int, warmup: int, size: int, num_kp: int
) -> dict[str, tuple[float, float]]:
    """(median, fastest) seconds per frame for kp, gen and decode at one batch size."""
    g = torch.Generator().manual_seed(0)
    images = torch.rand(batch, 3, size, size, generator=g).to(device)
    source = torch.rand(1, 3, size, size, generator=g).to(device).expand(batch, -1, -1, -1).contiguous()
    value = (torch.rand(batch, num_kp, 2, generator=g) * 1.6 - 0.8).to(device)
    jac = (torch.eye(2) + 0.1 * torch.randn(batch, num_kp, 2, 2, generator=g)).to(device)
    kp_s = Keypoints(value, jac)
    kp_d = Keypoints(value + 0.02, jac)
    with torch.inference_mode():
        features = models.generator.encode(source)  # computed once per portrait; not timed
        out = {
            "kp": _timings(lambda: runtime.kp(images), iters, warmup, device),
            "gen": _timings(lambda: runtime.generator(source, kp_d, kp_s), iters, warmup, device),
        }
        out["decode"] = _timings(lambda: runtime.decode(source, features, kp_d, kp_s), iters, warmup, device)
    return {k: (med / batch, best / batch) for k, (med, best) in out.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m avatar.bench fomm", description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", default="1,8", help="comma-separated batch sizes (default 1,8)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--runtime", default=None, help=f"comma-separated, from {', '.join(RUNTIMES)} (default: torch; all on CUDA)")
    p.add_argument("--iters", type=int, default=5, help="timed calls per measurement (median)")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls first")
    p.add_argument("--config", default="vox-256", choices=sorted(CONFIGS))
    p.add_argument("--providers", default="", help="onnx runtimes: onnxruntime providers in order, e.g. tensorrt,cuda,cpu")
    args = p.parse_args(argv)
    _ONNX_OPTIONS.update(threads=args.threads, providers=tuple(x for x in args.providers.split(",") if x))

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("CUDA requested but not available", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    names = args.runtime.split(",") if args.runtime else (list(CUDA_DEFAULT) if device.type == "cuda" else ["torch"])
    unknown = [n for n in names if n not in RUNTIMES]
    if unknown:
        print(f"unknown runtime(s) {unknown}; choose from {', '.join(RUNTIMES)}", file=sys.stderr)
        return 2
    batches = [int(b) for b in args.batch.split(",")]
    cfg = CONFIGS[args.config]
    torch.manual_seed(0)
    models = Models(KPDetector(cfg).to(device).eval(), OcclusionAwareGenerator(cfg).to(device).eval(), cfg)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    print(
        f"FOMM {args.config} {cfg.image_size}x{cfg.image_size}, random weights, device {device}"
        f"{f' ({torch.cuda.get_device_name(device)})' if device.type == 'cuda' else ''}, "
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, median of {args.iters} after {args.warmup} warm-up"
    )
    header = f"{'runtime':<18}{'batch':>6}{'kp ms/frame':>20}{'gen ms/frame':>20}{'decode ms/frame':>20}{'fps kp+decode':>15}"
    print(header + "\n" + "-" * len(header) + "\n" + " " * 24 + "(median / fastest; fps from medians)")
    per_frame: dict[tuple[str, int], float] = {}
    for name in names:
        runtime = RUNTIMES[name](models, device)
        if runtime.cuda_only and device.type != "cuda":
            print(f"{name:<18}  skipped: needs --device cuda")
            continue
        for b in batches:
            r = bench(runtime, models, b, device, args.iters, args.warmup, cfg.image_size, cfg.num_kp)
            cells = "".join(f"{f'{r[k][0] * 1e3:.1f} / {r[k][1] * 1e3:.1f}':>20}" for k in ("kp", "gen", "decode"))
            per_frame[name, b] = r["kp"][0] + r["decode"][0]
            fps = 1.0 / per_frame[name, b]
            print(f"{name:<18}{b:>6}{cells}{fps:>15.2f}")
    for name in (n for n in names if n.startswith("onnx")):
        for b in batches:
            if ("torch", b) in per_frame and (name, b) in per_frame:
                ratio = per_frame["torch", b] / per_frame[name, b]
                print(f"speed-up {name} vs torch eager, batch {b}: {ratio:.2f}x (kp + decode median per frame: "
                      f"torch {per_frame['torch', b] * 1e3:.1f} ms, {name} {per_frame[name, b] * 1e3:.1f} ms)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
