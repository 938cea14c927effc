"""Audio2Mouth inference in NumPy: the shipped network without importing torch.

Same maths as :class:`avatar.motion.audio.model.Audio2Mouth` (two causal kernel-3 convolutions,
a 2-layer GRU with PyTorch's gate order r, z, n, one linear head), read from the same
safetensors file. Why: ``avatar talk`` and voice mode would otherwise import torch (about a
second of start-up) for a network this small, and torch's thread pool contends with the
renderer on a 2-core machine. Outputs agree with torch to float32 rounding (tests/talk).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class NetState(NamedTuple):
    """Carried between chunks: the last 2 input frames of each conv, (C, 2), and the GRU state (2, H)."""

    conv1: np.ndarray
    conv2: np.ndarray
    gru: np.ndarray


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # no overflow warning for large |x|


class NumpyAudio2Mouth:
    """Args: the network's tensors by name (as in the safetensors file)."""

    def __init__(self, tensors: dict[str, np.ndarray]) -> None:
        t = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}
        self.hidden = int(t["gru.weight_hh_l0"].shape[1])
        self.n_mels = int(t["conv1.weight"].shape[1])
        self.mean, self.std = t["mean"], t["std"]
        # (out, in, k) → (out, k*in) against windows stacked k-major
        self._conv = [(w.transpose(0, 2, 1).reshape(w.shape[0], -1), t[f"{n}.bias"])
                      for n in ("conv1", "conv2") for w in [t[f"{n}.weight"]]]
        self._gru = [(t[f"gru.weight_ih_l{i}"], t[f"gru.bias_ih_l{i}"], t[f"gru.weight_hh_l{i}"].T.copy(),
                      t[f"gru.bias_hh_l{i}"]) for i in range(2)]
        self._head = (t["head.weight"].T.copy(), t["head.bias"])
        hid, c = self.hidden, self.n_mels
        want = {"conv1.weight": (hid, c, 3), "conv2.weight": (hid, hid, 3), "conv1.bias": (hid,), "conv2.bias": (hid,),
                "mean": (c,), "std": (c,), "head.bias": (t["head.weight"].shape[0],), "head.weight": (-1, hid)}
        want.update({f"gru.{w}_l{i}": (3 * hid, hid) for i in range(2) for w in ("weight_ih", "weight_hh")})
        want.update({f"gru.{w}_l{i}": (3 * hid,) for i in range(2) for w in ("bias_ih", "bias_hh")})
        for name, shape in want.items():
            got = t[name].shape
            if len(got) != len(shape) or any(s not in (-1, g) for s, g in zip(shape, got)):
                raise ValueError(f"{name} has shape {got}, expected {shape}")

    @property
    def fingerprint(self) -> str:
        """A short hash of the weights: a person's mouth model reads this network's hidden states
        and fits no other."""
        import hashlib

        h = hashlib.sha256()
        for a in (self._head[0], self._gru[1][2], self._conv[0][0]):
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()[:16]

    def initial_state(self) -> NetState:
        """Zero state: as if the stream was preceded by normalised-zero features."""
        return NetState(np.zeros((self.n_mels, 2), np.float32), np.zeros((self.hidden, 2), np.float32),
                        np.zeros((2, self.hidden), np.float32))

    @staticmethod
    def _conv1d(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Valid kernel-3 convolution of (C, T+2) → (out, T), ReLU."""
        n = x.shape[1] - 2
        windows = np.concatenate([x[:, k:k + n] for k in range(3)], axis=0)  # (3C, T), k-major
        return np.maximum(w @ windows + b[:, None], 0.0)

    def _gru_layer(self, x: np.ndarray, h: np.ndarray, layer: int) -> np.ndarray:
        """(T, in) inputs from state (H,) → (T, H) outputs."""
        w_ih, b_ih, w_hh_t, b_hh = self._gru[layer]
        hid = self.hidden
        gi = x @ w_ih.T + b_ih  # (T, 3H): input projections for every step at once
        out = np.empty((len(x), hid), np.float32)
        for i in range(len(x)):
            gh = h @ w_hh_t + b_hh
            rz = _sigmoid(gi[i, :2 * hid] + gh[:2 * hid])
            r, z = rz[:hid], rz[hid:]
            n = np.tanh(gi[i, 2 * hid:] + r * gh[2 * hid:])
            h = (1.0 - z) * n + z * h
            out[i] = h
        return out

    def step(self, mel: np.ndarray, state: NetState) -> tuple[np.ndarray, NetState]:
        """mel (T, n_mels) raw log-mel → (T, 3 + V) raw head outputs for the T frames, and the next state.

        Columns: openness logit, lips-closed logit, rounding (pre-tanh), viseme logits.
        """
        o, _, state = self.step_hidden(mel, state)
        return o, state

    def step_hidden(self, mel: np.ndarray, state: NetState) -> tuple[np.ndarray, np.ndarray, NetState]:
        """As :meth:`step`, also returning the last GRU layer's output, (T, hidden): what a
        person's own mouth model (:mod:`avatar.motion.audio.personal`) reads."""
        x = ((np.asarray(mel, np.float32) - self.mean) / self.std).T  # (C, T)
        x1 = np.concatenate([state.conv1, x], axis=1)
        h1 = self._conv1d(x1, *self._conv[0])
        x2 = np.concatenate([state.conv2, h1], axis=1)
        h2 = self._conv1d(x2, *self._conv[1]).T  # (T, H)
        y1 = self._gru_layer(h2, state.gru[0], 0)
        y2 = self._gru_layer(y1, state.gru[1], 1)
        o = y2 @ self._head[0] + self._head[1]
        gru = np.stack([y1[-1], y2[-1]]) if len(y2) else state.gru
        return o.astype(np.float32, copy=False), y2, NetState(x1[:, -2:].copy(), x2[:, -2:].copy(), gru)
