"""Which onnxruntime is installed: exactly one of the CPU (``onnxruntime``) and GPU
(``onnxruntime-gpu``) distributions, chosen with ``pip install "avatar[cpu]"`` or ``"avatar[gpu]"``.

Both install the same ``onnxruntime`` module and overwrite each other's files, so with both
present the module is whichever was installed last, possibly half of each: refused with the fix.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from ..errors import EngineUnavailable

DISTRIBUTIONS = ("onnxruntime", "onnxruntime-gpu")
CHOOSE = 'pip install "avatar[cpu]" (CPU) or "avatar[gpu]" (CUDA / TensorRT), not both'


def installed_runtimes() -> list[str]:
    """The onnxruntime distributions installed (by their pip names)."""
    found = []
    for name in DISTRIBUTIONS:
        try:
            metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        found.append(name)
    return found


def import_onnxruntime(purpose: str = "the onnx engine") -> Any:
    """The ``onnxruntime`` module, or EngineUnavailable naming the fix (missing, or both runtimes)."""
    runtimes = installed_runtimes()
    if len(runtimes) > 1:
        raise EngineUnavailable(
            f"{purpose} needs onnxruntime, but both onnxruntime and onnxruntime-gpu are installed and they "
            "overwrite each other's files; keep one: pip uninstall -y onnxruntime onnxruntime-gpu, then "
            + CHOOSE)
    try:
        import onnxruntime  # noqa: PLC0415
    except ImportError:
        raise EngineUnavailable(f"{purpose} needs onnxruntime: {CHOOSE}") from None
    return onnxruntime
