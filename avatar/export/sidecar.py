"""The ``avatar-onnx.json`` sidecar of an ONNX export folder: writing, reading and checking it.

An export folder holds three graphs (``kp_detector``, ``source_encoder``, ``generator``), an
optional fp16 variant of each (``*.fp16.onnx``), an optional int8 generator
(``generator.int8.onnx``) and this JSON: the FOMM architecture, the
source checkpoint's sha256, the opset, the library versions and every graph's file, sha256
and input/output names, dtypes and shapes (``"batch"`` marks the dynamic axis).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import WeightsError
from ..render.fomm.config import (
    DenseMotionConfig,
    FommConfig,
    GeneratorConfig,
    KPDetectorConfig,
)

SIDECAR = "avatar-onnx.json"
FORMAT = "avatar-fomm-onnx"
FORMAT_VERSION = 1
GRAPHS = ("kp_detector", "source_encoder", "generator")
BATCH = "batch"


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One graph input or output: shape entries are ints or the symbolic name ``"batch"``."""

    name: str
    dtype: str
    shape: tuple[int | str, ...]

    def concrete(self, batch: int) -> tuple[int, ...]:
        """The shape with the batch axis set to ``batch``."""
        return tuple(batch if isinstance(d, str) else d for d in self.shape)


@dataclass(frozen=True, slots=True)
class GraphSpec:
    """One ONNX file of the export and its interface."""

    file: str
    sha256: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]


@dataclass(frozen=True)
class ExportInfo:
    """A checked export folder.

    root: the folder; config: the FOMM architecture; graphs / fp16 / int8: name → GraphSpec
    (fp16 / int8 are empty when the export has no such variant; int8 holds only the graphs
    that were quantised); meta: the whole sidecar as read.
    """

    root: Path
    config: FommConfig
    opset: int
    graphs: dict[str, GraphSpec]
    fp16: dict[str, GraphSpec]
    meta: dict[str, Any]
    int8: dict[str, GraphSpec] = dataclasses.field(default_factory=dict)

    def graph(self, name: str, half: bool = False, int8: bool = False) -> tuple[Path, GraphSpec]:
        """Path and spec of graph ``name``: its int8 variant when ``int8`` and there is one, else
        its fp16 variant when ``half``, else the float32 graph."""
        if int8 and name in self.int8:
            spec = self.int8[name]
        else:
            spec = (self.fp16 if half else self.graphs)[name]
        return self.root / spec.file, spec


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def config_to_dict(cfg: FommConfig) -> dict[str, Any]:
    """FommConfig → plain JSON-able dict (nested sections as dicts)."""
    return dataclasses.asdict(cfg)


def config_from_dict(d: dict[str, Any]) -> FommConfig:
    """Inverse of :func:`config_to_dict`; raises ConfigError/TypeError on unknown keys."""
    d = dict(d)
    gen = dict(d.pop("generator"))
    dm = DenseMotionConfig(**gen.pop("dense_motion"))
    return FommConfig(kp_detector=KPDetectorConfig(**d.pop("kp_detector")), generator=GeneratorConfig(dense_motion=dm, **gen), **d)


def graph_to_dict(spec: GraphSpec) -> dict[str, Any]:
    io = lambda ts: [{"name": t.name, "dtype": t.dtype, "shape": list(t.shape)} for t in ts]
    return {"file": spec.file, "sha256": spec.sha256, "inputs": io(spec.inputs), "outputs": io(spec.outputs)}


def _graph_from_dict(d: dict[str, Any]) -> GraphSpec:
    io = lambda ts: tuple(TensorSpec(t["name"], t["dtype"], tuple(t["shape"])) for t in ts)
    return GraphSpec(d["file"], d["sha256"], io(d["inputs"]), io(d["outputs"]))


def read_export(model_dir: str | Path, *, verify_hashes: bool = True) -> ExportInfo:
    """Read and check an export folder made by ``avatar export onnx``.

    Raises WeightsError when the folder or a graph is missing, the sidecar is not ours or is
    damaged, or (``verify_hashes``) a graph's sha256 differs from the sidecar's.
    """
    root = Path(model_dir).expanduser()
    hint = f"create it with `avatar export onnx --checkpoint CKPT --out {root}`"
    if not root.is_dir():
        raise WeightsError(f"ONNX model folder not found: {root}; {hint}")
    side = root / SIDECAR
    if not side.is_file():
        raise WeightsError(f"{root} is not an avatar ONNX export (no {SIDECAR}); {hint}")
    try:
        meta = json.loads(side.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WeightsError(f"cannot read {side}: {exc}; export again with --overwrite") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise WeightsError(f"{side} is not an avatar FOMM ONNX sidecar (format {got!r}, expected {FORMAT!r})")
    if meta.get("format_version") != FORMAT_VERSION:
        raise WeightsError(
            f"{side} has format_version {meta.get('format_version')!r}, this avatar reads {FORMAT_VERSION}; export again with this version"
        )
    try:
        config = config_from_dict(meta["fomm_config"])
        graphs = {name: _graph_from_dict(meta["graphs"][name]) for name in GRAPHS}
        fp16 = {name: _graph_from_dict(g) for name, g in (meta.get("fp16_graphs") or {}).items()}
        int8 = {name: _graph_from_dict(g) for name, g in (meta.get("int8_graphs") or {}).items()}
        opset = int(meta["opset"])
    except (KeyError, TypeError, ValueError) as exc:
        raise WeightsError(f"{side} is damaged or incomplete ({type(exc).__name__}: {exc}); export again with --overwrite") from None
    for spec in (*graphs.values(), *fp16.values(), *int8.values()):
        path = root / spec.file
        if not path.is_file():
            raise WeightsError(f"{path} is listed in {SIDECAR} but missing; export again with --overwrite")
        if verify_hashes and sha256_file(path) != spec.sha256:
            raise WeightsError(f"{path} does not match the sha256 in {SIDECAR} (modified or truncated); export again with --overwrite")
    return ExportInfo(root, config, opset, graphs, fp16, meta, int8)
