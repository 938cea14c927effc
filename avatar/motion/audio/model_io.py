"""Save and load the shipped Audio2Mouth weights (safetensors + JSON sidecar), and the closure gate."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np

from ...errors import WeightsError
from ...paths import shipped_weights_dir
from . import features as feat

DEFAULT_WEIGHTS = "audio2mouth-v1.safetensors"
CLOSED_THRESHOLD = 0.5


def gate(openness: np.ndarray, p_closed: np.ndarray) -> np.ndarray:
    """Openness forced to 0 where p(lips closed) > 0.5 (mirrors the hard closure of the rules)."""
    return np.where(p_closed > CLOSED_THRESHOLD, 0.0, openness).astype(np.float32)


def _feature_settings() -> dict:
    return {"sample_rate": feat.SAMPLE_RATE, "hop": feat.HOP, "win": feat.WIN, "n_fft": feat.N_FFT,
            "n_mels": feat.N_MELS, "fmin": feat.FMIN, "fmax": feat.FMAX, "log": "ln(power + 1e-6)",
            "window": "hann", "padding": "200 zeros before (frame j centred at 10 j ms)"}


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_weights(model, path: Path, lookahead: int, info: dict) -> None:
    """Write ``path`` (safetensors) and ``path.with_suffix('.json')`` atomically."""
    from safetensors.torch import save  # noqa: PLC0415

    data = save({k: v.detach().contiguous().float() for k, v in model.state_dict().items()})
    _atomic_write(path, data)
    side = {"file": path.name, "sha256": hashlib.sha256(data).hexdigest(), "architecture": "Audio2Mouth",
            "hidden": model.hidden, "lookahead_frames": lookahead, "frame_rate": feat.FRAME_RATE,
            "features": _feature_settings(), "normalisation": "per-band mean/std buffers 'mean'/'std' in the file",
            "outputs": ["openness (sigmoid)", "closed logit", "rounding (tanh)", "viseme logits"],
            "license": "trained here on synthetic speech only (espeak-ng, flite" + (", festival" if info.get("festival", 0) else "") + ")", "training": info}
    _atomic_write(path.with_suffix(".json"), (json.dumps(side, indent=2) + "\n").encode())


def _read_checked(path: str | None) -> tuple[Path, bytes, dict]:
    """(path, file bytes, sidecar) of ``path`` or the shipped weights, after the sha256 and feature checks."""
    p = Path(path) if path else shipped_weights_dir() / DEFAULT_WEIGHTS
    side_p = p.with_suffix(".json")
    if not p.is_file() or not side_p.is_file():
        raise WeightsError(f"audio-to-mouth weights not found at {p} (+ .json); retrain with "
                           f"`python -m avatar.motion.audio.train --out {p}`")
    data = p.read_bytes()
    side = json.loads(side_p.read_text())
    if hashlib.sha256(data).hexdigest() != side.get("sha256"):
        raise WeightsError(f"{p} does not match the sha256 in {side_p.name}; the file is corrupt or was replaced")
    if side.get("features", {}).get("n_mels") != feat.N_MELS or side.get("frame_rate") != feat.FRAME_RATE:
        raise WeightsError(f"{p} was trained with other features ({side.get('features')}); retrain it")
    return p, data, side


@lru_cache(maxsize=4)
def load_model(path: str | None = None):
    """(torch model in eval mode, sidecar dict) from ``path`` or the shipped ``weights/audio2mouth-v1``.

    Raises WeightsError when a file is missing, its sha256 differs from the sidecar, or it
    does not fit the network.
    """
    from safetensors.torch import load  # noqa: PLC0415

    from .model import Audio2Mouth  # noqa: PLC0415

    p, data, side = _read_checked(path)
    model = Audio2Mouth(hidden=int(side.get("hidden", 128)))
    try:
        model.load_state_dict(load(data), strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"{p} does not fit Audio2Mouth: {str(exc).splitlines()[0]}") from exc
    model.eval()
    return model, side


_TENSORS = ("conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "head.weight", "head.bias", "mean", "std",
            *(f"gru.{w}_l{i}" for i in range(2) for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")))


@lru_cache(maxsize=4)
def load_numpy_model(path: str | None = None):
    """(:class:`NumpyAudio2Mouth`, sidecar dict): the same network and checks as :func:`load_model`, no torch."""
    from safetensors.numpy import load  # noqa: PLC0415

    from .numpy_net import NumpyAudio2Mouth  # noqa: PLC0415

    p, data, side = _read_checked(path)
    tensors = load(data)
    if set(tensors) != set(_TENSORS):
        raise WeightsError(f"{p} does not fit Audio2Mouth: tensors {sorted(set(tensors) ^ set(_TENSORS))} differ")
    try:
        net = NumpyAudio2Mouth(tensors)
    except (KeyError, ValueError) as exc:
        raise WeightsError(f"{p} does not fit Audio2Mouth: {exc}") from exc
    if net.hidden != int(side.get("hidden", 128)) or net.n_mels != feat.N_MELS:
        raise WeightsError(f"{p} does not fit Audio2Mouth: hidden {net.hidden}, {net.n_mels} mel bands")
    return net, side
