"""Audio2Mouth: a small causal network, log-mel (100 fps) → mouth state (100 fps).

Two causal 1-D convolutions (kernel 3, 128 channels) and a 2-layer GRU (128) feed four
heads: openness (sigmoid), lips-closed logit, rounding (tanh) and a viseme classifier.
Output frame j describes the mouth at frame j - ``lookahead`` (the network hears 60 ms
ahead). :meth:`Audio2Mouth.step` runs a chunk with carried state, so streaming equals
running the whole sequence at once.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from .features import N_MELS
from .visemes import NUM_VISEMES


class MouthOut(NamedTuple):
    """Heads, each (B, T) except viseme_logits (B, T, V)."""

    openness: torch.Tensor
    closed_logit: torch.Tensor
    rounding: torch.Tensor
    viseme_logits: torch.Tensor


class StreamState(NamedTuple):
    """Carried between chunks: the last 2 input frames of each conv (B, C, 2) and the GRU state."""

    conv1: torch.Tensor
    conv2: torch.Tensor
    gru: torch.Tensor


class Audio2Mouth(nn.Module):
    """Args: n_mels input bands, hidden width, number of visemes."""

    def __init__(self, n_mels: int = N_MELS, hidden: int = 128, num_visemes: int = NUM_VISEMES) -> None:
        super().__init__()
        self.hidden = hidden
        self.conv1 = nn.Conv1d(n_mels, hidden, 3)
        self.conv2 = nn.Conv1d(hidden, hidden, 3)
        self.gru = nn.GRU(hidden, hidden, num_layers=2, batch_first=True)
        self.head = nn.Linear(hidden, 3 + num_visemes)
        self.register_buffer("mean", torch.zeros(n_mels))
        self.register_buffer("std", torch.ones(n_mels))

    def initial_state(self, batch: int = 1) -> StreamState:
        """Zero state: as if the stream was preceded by normalised-zero features."""
        z1 = torch.zeros(batch, self.conv1.in_channels, 2)
        z2 = torch.zeros(batch, self.hidden, 2)
        return StreamState(z1, z2, torch.zeros(2, batch, self.hidden))

    def step(self, mel: torch.Tensor, state: StreamState) -> tuple[MouthOut, StreamState]:
        """mel (B, T, n_mels) raw log-mel → outputs for the T frames, and the next state."""
        x = ((mel - self.mean) / self.std).transpose(1, 2)  # (B, C, T)
        x1 = torch.cat([state.conv1, x], dim=2)
        h1 = F.relu(self.conv1(x1))
        x2 = torch.cat([state.conv2, h1], dim=2)
        h2 = F.relu(self.conv2(x2))
        y, g = self.gru(h2.transpose(1, 2), state.gru)
        o = self.head(y)
        out = MouthOut(torch.sigmoid(o[..., 0]), o[..., 1], torch.tanh(o[..., 2]), o[..., 3:])
        return out, StreamState(x1[:, :, -2:], x2[:, :, -2:], g)

    def forward(self, mel: torch.Tensor) -> MouthOut:
        """mel (B, T, n_mels) → MouthOut over T frames, from a zero state."""
        return self.step(mel, self.initial_state(mel.shape[0]))[0]
