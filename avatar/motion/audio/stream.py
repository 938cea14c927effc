"""Streaming audio → mouth: ``MouthStreamer.push(pcm) -> [MouthState, ...]`` at the render rate.

Lips lead the sound: frame k shows the mouth the network hears at k / fps + ``lead_s``
(:data:`~avatar.motion.audio.state.LEAD_S` by default), as real speakers shape the mouth
before the sound starts. Algorithmic latency (sound at time t → the frame for time t can be
emitted): the lead + 12.5 ms (half the analysis window) + 60 ms network look-ahead + a quarter
of a render frame (the lips-closed window), i.e. 82.5 ms + the lead at 25 fps; plus the
caller's chunk length. A person's own mouth model reads 240 ms ahead (its live variant 80 ms),
which replaces the network's 60 ms where longer.
Memory is bounded: the streamer keeps 240 samples of audio, the network state and a few
100 Hz output frames, whatever the input length. The offline path (:func:`network_frames`)
runs this same code once, so both agree to float rounding.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace

import numpy as np

from ...errors import ConfigError, InputError
from . import features as feat
from .effort import SILENT_DB, OpeningNorm, SpeechLevel, effort_gain, frame_db
from .model_io import CLOSED_THRESHOLD, load_numpy_model
from .numpy_net import _sigmoid
from .hidden_ridge import HiddenStream
from .personal import FrameFeatures, PersonalMouth, PersonalStream
from .state import LEAD_S, MouthState, check_lead

log = logging.getLogger(__name__)

# A frame shows closed lips when the network's lips-closed probability exceeds the threshold
# anywhere within this fraction of a render frame either side of the frame's time: wide enough
# to catch a p/b/m closure that falls between two frame times, narrow enough not to shut the
# mouth on its open neighbours (half a frame cost 0.03–0.05 of openness correlation).
CLOSED_WINDOW = 0.25


class MouthStreamer:
    """Incremental audio-to-mouth with the shipped network.

    Args:
        fps: render frame rate (frames at t = k / fps).
        weights: path of a safetensors file; None = the shipped ``weights/audio2mouth-v1``.
        lead_s: how far the mouth runs ahead of the sound (seconds, 0..0.25).
        personal: a person's own mouth model (a talking video avatar's, fitted at clone time):
            it gives the openness from the sound around each frame (and, where fitted, the
            network's hidden states), in place of the network's
            normalised, effort-scaled and closure-gated openness; silence still closes the mouth.
    """

    def __init__(self, fps: float, weights: str | None = None, lead_s: float = LEAD_S,
                 personal: "PersonalMouth | None" = None) -> None:
        if not (isinstance(fps, (int, float)) and 1.0 <= fps <= 240.0):
            raise ConfigError(f"fps must be in [1, 240], got {fps!r}")
        self.model, self.info = load_numpy_model(weights)  # NumPy inference: no torch import
        self._net_lookahead = int(self.info["lookahead_frames"])
        self.fps = float(fps)
        self.lead_s = check_lead(lead_s)
        self._mel = feat.StreamingLogMel()
        self._state = self.model.initial_state()
        self._half = CLOSED_WINDOW * feat.FRAME_RATE / self.fps  # the lips-closed window, in 100 Hz frames
        self._raw_frames = 0  # network outputs produced so far
        self._base = 0  # 100 Hz frame index of _buf[0] (after the look-ahead shift)
        self._level = SpeechLevel()
        self._norm = OpeningNorm()
        self._levels = np.zeros((0, 2), np.float32)  # level re the speaker (dB), silent
        # openness, p_closed, rounding, viseme, level re the speaker (dB), silent (1/0)
        self._buf = np.zeros((0, 6), np.float32)
        if personal is not None and personal.hidden is not None and personal.hidden.network != self.model.fingerprint:
            log.warning("this avatar's own mouth model was fitted on another audio network than the one in use "
                        "(%s): only its sound-based half is used", weights or "the shipped one")
            personal = None if personal.sound_weight == 0.0 else replace(personal, hidden=None, sound_weight=1.0)
        self._personal = None if personal is None else PersonalStream(personal)
        self._hidden = None if personal is None or personal.hidden is None else HiddenStream(personal.hidden)
        self._own_features = None if personal is None else FrameFeatures()
        # 100 Hz frames of look-ahead before a frame's mouth is known
        self.lookahead = max(self._net_lookahead, 0 if personal is None else personal.lookahead)
        self._rows = np.zeros((0, 6), np.float32)  # network rows waiting for the person's openness
        self._own = np.zeros((0, 2), np.float32)  # the person's openness and silence, waiting for the network's rows
        self._own_silent = np.zeros(0, np.float32)  # silence of frames whose openness is not known yet
        self._next = 0  # next render frame to emit
        self._samples = 0
        self._closed = False

    @property
    def latency_s(self) -> float:
        """Algorithmic latency in seconds (excludes the chunk length)."""
        return self.lead_s + (feat.WIN / 2) / feat.SAMPLE_RATE + self.lookahead / feat.FRAME_RATE + CLOSED_WINDOW / self.fps

    def _run(self, mel: np.ndarray, pcm: np.ndarray) -> None:
        if self._personal is not None:  # its own features, framed as ``mel`` (same hop and window)
            feats, silent = self._own_features.push(pcm)
            self._own_silent = np.concatenate([self._own_silent, silent.astype(np.float32)])
            own = self._personal.push(feats)
            self._own = np.concatenate([self._own, np.c_[own, self._own_silent[:len(own)]]])
            self._own_silent = self._own_silent[len(own):]
        if len(mel) == 0:
            return
        if self._hidden is None:
            o, self._state = self.model.step(mel, self._state)
            ridge = None
        else:
            o, hidden, self._state = self.model.step_hidden(mel, self._state)
            ridge = self._hidden.push(hidden)
        vals = np.stack([_sigmoid(o[:, 0]) if ridge is None else ridge, _sigmoid(o[:, 1]), np.tanh(o[:, 2]),
                         o[:, 3:].argmax(-1).astype(np.float32)], axis=1).astype(np.float32)
        # Output j describes frame j - lookahead: drop the first outputs, which describe t < 0.
        start = self._raw_frames
        self._raw_frames += len(vals)
        skip = max(0, self._net_lookahead - start)
        # Levels describe their own frame, so they queue until the network's output for that frame arrives.
        db = frame_db(mel)
        self._levels = np.concatenate([self._levels, np.c_[self._level.push_db(db), db < SILENT_DB]])
        k = max(0, len(vals) - skip)
        rel, self._levels = self._levels[:k], self._levels[k:]
        vals = vals[skip:]
        if self._personal is None:
            vals[:, 0] = self._norm.push(vals[:, 0])
            self._buf = np.concatenate([self._buf, np.c_[vals, rel]])
            return
        # the person's openness comes later than the network's rows (it reads further ahead):
        # both queue, and a frame goes out once it has both
        self._rows = np.concatenate([self._rows, np.c_[vals, rel]])
        n = min(len(self._own), len(self._rows))
        ready = self._rows[:n].copy()
        w = self._personal.model.sound_weight
        # the person's openness: the sound-based half, mixed with the hidden-state half where both are used
        ready[:, 0] = self._own[:n, 0] if self._hidden is None else w * self._own[:n, 0] + (1 - w) * ready[:, 0]
        ready[:, 5] = self._own[:n, 1]
        self._rows, self._own = self._rows[n:], self._own[n:]
        self._buf = np.concatenate([self._buf, ready])

    def _emit(self, final: bool) -> list[MouthState]:
        out: list[MouthState] = []
        have = self._base + len(self._buf)  # 100 Hz frames known, indices [base, have)
        total_frames = math.ceil(self._samples * self.fps / feat.SAMPLE_RATE - 1e-9)
        while True:
            k = self._next
            if final and k >= total_frames:
                break
            c = (k / self.fps + self.lead_s) * feat.FRAME_RATE
            hi = math.floor(c + self._half)
            need = max(hi, math.floor(c) + 1)
            if need >= have:
                if not final:
                    break
            lo = max(0, math.ceil(c - self._half))
            b = self._buf
            i0 = min(int(math.floor(c)) - self._base, len(b) - 1)
            i1 = min(i0 + 1, len(b) - 1)
            frac = c - math.floor(c)
            op = (1 - frac) * b[i0, 0] + frac * b[i1, 0]
            ro = (1 - frac) * b[i0, 2] + frac * b[i1, 2]
            vis = int(b[int(round(c)) - self._base if int(round(c)) - self._base < len(b) else i0, 3])
            if self._personal is None:
                op *= float(effort_gain((1 - frac) * b[i0, 4] + frac * b[i1, 4]))
                win = b[max(0, lo - self._base): max(lo - self._base + 1, min(hi - self._base + 1, len(b)))]
                pc = float(win[:, 1].max()) if len(win) else float(b[i0, 1])
                if pc > CLOSED_THRESHOLD:
                    op = 0.0
            else:
                # the person's model opens and closes the mouth itself (the network's closures
                # inside open vowels cost it 0.1 of r on the dev clips); silence shuts it
                silent = min(b[i0, 5], b[i1, 5]) > 0.5
                op, pc = (0.0, 1.0) if silent else (op, 0.0)
            out.append(MouthState(float(op), float(ro), pc, vis))
            self._next += 1
            # Forget 100 Hz frames no later frame can use.
            keep_from = max(0, math.floor((self._next / self.fps + self.lead_s) * feat.FRAME_RATE - self._half) - 1)
            drop = keep_from - self._base
            if drop > 0 and drop < len(self._buf):
                self._buf = self._buf[drop:]
                self._base = keep_from
        return out

    def push(self, pcm: np.ndarray) -> list[MouthState]:
        """Feed float32 mono 16 kHz samples; returns the render frames that became final."""
        if self._closed:
            raise InputError("this MouthStreamer was flushed; create a new one for a new stream")
        x = np.asarray(pcm, dtype=np.float32).reshape(-1)
        if not np.all(np.isfinite(x)):
            raise InputError("audio contains NaN or infinite samples; expected finite float32 PCM")
        self._samples += len(x)
        self._run(self._mel.push(x), x)
        return self._emit(final=False)

    def flush(self) -> list[MouthState]:
        """End of stream: pad with silence for the look-ahead and return the remaining frames."""
        if self._closed:
            return []
        self._closed = True
        pad = np.zeros(feat.WIN // 2 + feat.HOP * (self.lookahead + 2) + int(feat.SAMPLE_RATE / self.fps) + feat.HOP
                       + int(math.ceil(self.lead_s * feat.SAMPLE_RATE)), np.float32)
        self._run(self._mel.push(pad), pad)
        if len(self._buf) == 0:
            return []
        return self._emit(final=True)


def network_frames(audio16k: np.ndarray, fps: float, weights: str | None = None, lead_s: float = LEAD_S,
                   personal: "PersonalMouth | None" = None) -> list[MouthState]:
    """Offline audio-only mouth states: the streamer run over the whole signal at once."""
    s = MouthStreamer(fps, weights, lead_s, personal)
    return s.push(audio16k) + s.flush()
