"""Reading FOMM checkpoints safely and loading them strictly into the models.

Accepted files:

* the official layout: a ``torch.save`` dict with ``kp_detector`` and ``generator`` state
  dicts (other entries such as ``optimizer_generator`` or ``epoch`` are ignored), always read
  with ``weights_only=True``, so a pickle that would run code is refused;
* safetensors with keys ``kp_detector.<key>`` and ``generator.<key>`` (see :func:`save_safetensors`).
"""

from __future__ import annotations

import os
import pickle
import re
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from ...errors import WeightsError
from .config import FommConfig
from .generator import OcclusionAwareGenerator
from .keypoint_detector import KPDetector

PARTS = ("kp_detector", "generator")
StateDicts = dict[str, dict[str, Tensor]]


def _is_safetensors(path: Path) -> bool:
    if path.suffix == ".safetensors":
        return True
    with open(path, "rb") as f:
        head = f.read(9)
    # safetensors: u64 little-endian header length, then a JSON object
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < path.stat().st_size


def _read_torch(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        msg = str(exc)
        found = re.search(r"(?:GLOBAL|global) ([\w.]+)", msg)
        name = found.group(1) if found else _pickle_global(path)
        if name or "Unsupported global" in msg:
            what = f" (it references {name})" if name else ""
            raise WeightsError(
                f"refused {path}: the file is a pickle that needs code execution to load{what}; "
                "only plain tensors/dicts are accepted — get the checkpoint from a trusted source"
            ) from None
        raise WeightsError(f"cannot read {path}: not a PyTorch checkpoint, or a corrupt one ({_first_line(exc)})") from None
    except (EOFError, RuntimeError, zipfile.BadZipFile, ValueError, OSError, IndexError, KeyError, TypeError,
            AttributeError, MemoryError) as exc:
        raise WeightsError(f"cannot read {path}: corrupt or truncated checkpoint ({_first_line(exc)}); download it again") from None


_SAFE_MODULES = ("torch", "collections", "_codecs", "numpy.core.multiarray", "numpy")


def _pickle_global(path: Path) -> str | None:
    """First non-tensor global a raw pickle would import, found by reading opcodes (nothing runs)."""
    import pickletools  # noqa: PLC0415

    try:
        data = path.read_bytes()[:64 << 20]
        strings: list[str] = []
        for op, arg, _ in pickletools.genops(data):
            if isinstance(arg, str):
                strings.append(arg)
            name = None
            if op.name == "GLOBAL" and isinstance(arg, str):
                name = arg.replace(" ", ".")
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                name = f"{strings[-2]}.{strings[-1]}"
            if name and not name.startswith(_SAFE_MODULES):
                return name
    except Exception:  # noqa: BLE001  (not a pickle at all: the caller reports a corrupt file)
        return None
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line.split(". ")[0][:160]


def _read_safetensors(path: Path) -> StateDicts:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        flat = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise WeightsError(f"cannot read {path}: corrupt or truncated safetensors file ({_first_line(exc)})") from None
    out: StateDicts = {p: {} for p in PARTS}
    for key, value in flat.items():
        part, _, rest = key.partition(".")
        if part in out and rest:
            out[part][rest] = value
    if not all(out.values()):
        raise WeightsError(f"{path} holds no keys prefixed 'kp_detector.' and 'generator.'; expected a FOMM safetensors file")
    return out


def _strip_module_prefix(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    if sd and all(k.startswith("module.") for k in sd):  # saved from a DataParallel wrapper
        return {k[len("module.") :]: v for k, v in sd.items()}
    return dict(sd)


def read_checkpoint(path: str | os.PathLike[str]) -> StateDicts:
    """Read ``{'kp_detector': state_dict, 'generator': state_dict}`` from a .pth(.tar) or .safetensors file."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"checkpoint not found: {path}; run `avatar weights fetch vox` or pass the path of vox-cpk.pth.tar")
    if path.stat().st_size == 0:
        raise WeightsError(f"cannot read {path}: the file is empty (an interrupted download?); download it again")
    if _is_safetensors(path):
        return _read_safetensors(path)
    obj = _read_torch(path)
    if not isinstance(obj, Mapping) or not all(isinstance(obj.get(p), Mapping) for p in PARTS):
        got = sorted(map(str, obj))[:8] if isinstance(obj, Mapping) else type(obj).__name__
        raise WeightsError(f"{path} is not a FOMM checkpoint: expected a dict with 'kp_detector' and 'generator' entries, got {got}")
    out: StateDicts = {}
    for part in PARTS:
        sd = _strip_module_prefix(obj[part])
        bad = [k for k, v in sd.items() if not isinstance(v, Tensor)]
        if bad:
            raise WeightsError(f"{path}: {part} entry {bad[0]!r} is not a tensor; expected a state_dict")
        out[part] = sd
    return out


def expected_layout(model: nn.Module) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """key → (shape, dtype) of a model's state_dict."""
    return {k: (tuple(v.shape), v.dtype) for k, v in model.state_dict().items()}


def check_state_dict(part: str, sd: Mapping[str, Tensor], model: nn.Module, source: str = "checkpoint") -> None:
    """Raise WeightsError naming missing/unexpected keys and wrong shapes of ``sd`` for ``model``."""
    want = expected_layout(model)
    missing = [k for k in want if k not in sd]
    extra = [k for k in sd if k not in want]
    wrong = [f"{k}: file {list(sd[k].shape)}, model {list(want[k][0])}" for k in want if k in sd and tuple(sd[k].shape) != want[k][0]]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s) ({', '.join(missing[:3])}{', …' if len(missing) > 3 else ''})")
    if extra:
        problems.append(f"{len(extra)} unexpected key(s) ({', '.join(extra[:3])}{', …' if len(extra) > 3 else ''})")
    if wrong:
        problems.append(f"{len(wrong)} wrong shape(s) ({'; '.join(wrong[:3])}{'; …' if len(wrong) > 3 else ''})")
    if problems:
        raise WeightsError(
            f"{source} does not fit the FOMM {part} of this architecture: {', '.join(problems)}; "
            "use a vox-256 checkpoint (vox-cpk.pth.tar / vox-adv-cpk.pth.tar) or the matching config"
        )


def load_state_dicts(state: StateDicts, kp_detector: KPDetector, generator: OcclusionAwareGenerator, source: str = "checkpoint") -> None:
    """Check, then load both state dicts with ``strict=True``."""
    for part, model in (("kp_detector", kp_detector), ("generator", generator)):
        check_state_dict(part, state[part], model, source)
        try:
            model.load_state_dict(state[part], strict=True)
        except RuntimeError as exc:  # e.g. a non-float tensor where a float one is expected
            raise WeightsError(f"{source}: cannot load the {part} weights ({_first_line(exc)})") from None


def load_models(
    path: str | os.PathLike[str],
    cfg: FommConfig | None = None,
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> tuple[KPDetector, OcclusionAwareGenerator]:
    """Build the models for ``cfg`` (vox-256 by default), load ``path`` strictly, eval mode, on ``device``."""
    cfg = cfg or FommConfig()
    state = read_checkpoint(path)
    kp, gen = KPDetector(cfg), OcclusionAwareGenerator(cfg)
    load_state_dicts(state, kp, gen, source=str(path))
    return kp.to(device=device, dtype=dtype).eval(), gen.to(device=device, dtype=dtype).eval()


def save_safetensors(state: StateDicts, path: str | os.PathLike[str]) -> Path:
    """Write both state dicts into one safetensors file (atomic)."""
    from safetensors.torch import save_file

    path = Path(path)
    flat = {f"{part}.{k}": v.detach().contiguous().cpu() for part in PARTS for k, v in state[part].items()}
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(flat, tmp, metadata={"format": "avatar-fomm", "parts": ",".join(PARTS)})
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
