"""This person's own mouth model alone (no render): ``python -m avatar.bench mouth_model [--eval DIR] [--clips talk_01 ...]``.

Per ``../shared/eval/clone/talk_0*.mp4``: the face is tracked on every frame; the model
(:mod:`avatar.motion.audio.personal`) is fitted on every second tracked frame of the first 60 %
(the pack's 15 frames/s at 30 fps) against the sound from the start; the rest's sound is then
streamed through :func:`~avatar.motion.audio.stream.network_frames` at the clip's frame rate, as
talking does, and its openness is correlated (zero lag) with the tracked opening of every
held-out frame. The same sound 12 dB quieter and louder shows whether a recording's level
changes the mouth. The variant live streaming uses (:meth:`PersonalMouth.for_streaming`: it reads
60 ms ahead, not 200) and the generic network's openness are scored beside it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ..media.video import probe_video, read_audio
from ..motion.audio.personal import fit_personal_mouth
from ..motion.audio.state import LEAD_S
from ..motion.audio.stream import MouthStreamer, network_frames
from ..pack.features import opening
from ..pack.track import track_video
from .clone import _DEFAULT_EVAL, talk_clips

SR = 16000
GAINS = (0.25, 1.0, 4.0)


def held_out_r(openness: np.ndarray, fps: float, times: np.ndarray, real: np.ndarray) -> float:
    """r between per-output-frame ``openness`` (frame k at k / fps) and ``real`` tracked at ``times``."""
    k = np.clip(np.round(times * fps).astype(np.int64), 0, len(openness) - 1)
    return float(np.corrcoef(openness[k], real)[0, 1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m avatar.bench mouth_model", description=__doc__.split("\n")[0])
    ap.add_argument("--eval", type=Path, default=_DEFAULT_EVAL)
    ap.add_argument("--clips", nargs="*", default=None)
    args = ap.parse_args(argv)
    clips = talk_clips(args.eval, args.clips)
    if not clips:
        print(f"no talk_0*.mp4 in {args.eval}", file=sys.stderr)
        return 2
    print("| clip | fit s | fit frames | r_cv | used | held-out frames | own r (−12 dB / 0 / +12 dB) | live r (latency ms) | generic r |")
    print("|---|---|---|---|---|---|---|---|---|")
    rows = []
    for clip in clips:
        info = probe_video(clip)
        track = track_video(clip, track_fps=info.fps or 30.0, max_faces=1)
        op = np.where(track.found, opening(np.nan_to_num(track.features)), np.nan)
        split = 0.6 * info.duration
        pcm = read_audio(clip, SR).astype(np.float32)
        fit = (track.times < split) & np.isfinite(op) & (np.arange(len(op)) % 2 == 0)
        model, fit_info = fit_personal_mouth(pcm[: int(split * SR)], track.times[fit], op[fit], LEAD_S)
        hold = (track.times >= split) & np.isfinite(op)
        rest, t_hold = pcm[int(split * SR):], track.times[hold] - split
        fps = float(info.fps or 25.0)
        own = [held_out_r(np.array([m.openness for m in network_frames(rest * g, fps, personal=model)]), fps, t_hold, op[hold])
               if model is not None else float("nan") for g in GAINS]
        generic = held_out_r(np.array([m.openness for m in network_frames(rest, fps)]), fps, t_hold, op[hold])
        live, latency = float("nan"), float("nan")
        if model is not None:
            streaming = model.for_streaming()
            live = held_out_r(np.array([m.openness for m in network_frames(rest, fps, personal=streaming)]),
                              fps, t_hold, op[hold])
            latency = 1000 * MouthStreamer(fps, personal=streaming).latency_s
        rows.append((own[1], generic, live))
        print(f"| {clip.stem} | {split:.1f} | {int(fit.sum())} | {fit_info.get('r_cv', float('nan')):.3f} | "
              f"{'yes' if fit_info['used'] else 'no'} | {int(hold.sum())} | {' / '.join(f'{r:.3f}' for r in own)} | "
              f"{live:.3f} ({latency:.0f}) | {generic:.3f} |", flush=True)
    own_mean, gen_mean, live_mean = (np.nanmean([r[k] for r in rows]) for k in (0, 1, 2))
    print(f"\nmean held-out r: own {own_mean:.3f}, live {live_mean:.3f}, generic {gen_mean:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
