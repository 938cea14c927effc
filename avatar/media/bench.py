"""Video write/read throughput: ``python -m avatar.media.bench [--size 512] [--frames 300]``.

Writes a moving crop of skimage's astronaut portrait through :class:`VideoWriter`
(H.264, BT.709, optional AAC) and reads it back with :func:`read_frames`; prints the
median frames per second over ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def _frames(size: int, n: int) -> list[np.ndarray]:
    import cv2  # noqa: PLC0415
    from skimage import data  # noqa: PLC0415

    big = cv2.resize(data.astronaut(), (size + 64, size + 64), interpolation=cv2.INTER_AREA)
    out = []
    for i in range(n):  # slow pan: realistic inter-frame motion for the encoder
        dx = int(32 + 28 * np.sin(i / 20))
        dy = int(32 + 28 * np.cos(i / 25))
        out.append(np.ascontiguousarray(big[dy : dy + size, dx : dx + size]))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m avatar.media.bench", description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--preset", default="veryfast")
    ap.add_argument("--crf", type=int, default=18)
    ap.add_argument("--audio", action="store_true", help="also mux a 16 kHz PCM track")
    args = ap.parse_args(argv)

    from .video import AudioSpec, VideoWriter, read_frames  # noqa: PLC0415

    frames = _frames(args.size, args.frames)
    fps = 25
    audio = None
    if args.audio:
        t = np.arange(int(args.frames / fps * 16000)) / 16000
        audio = AudioSpec.from_array((0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
    write_fps, read_fps = [], []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.mp4"
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            with VideoWriter(out, fps=fps, crf=args.crf, preset=args.preset, audio=audio) as w:
                for f in frames:
                    w.write(f)
            write_fps.append(len(frames) / (time.perf_counter() - t0))
            t0 = time.perf_counter()
            n = sum(1 for _ in read_frames(out))
            read_fps.append(n / (time.perf_counter() - t0))
        size_kb = out.stat().st_size / 1024
    print(
        f"{args.size}x{args.size}, {args.frames} frames, preset={args.preset} crf={args.crf}"
        f"{' +audio' if args.audio else ''}: write {statistics.median(write_fps):.0f} fps, "
        f"read {statistics.median(read_fps):.0f} fps (median of {args.repeats}); file {size_kb:.0f} KiB"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
