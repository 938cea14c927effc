"""Watermark cost and robustness: ``python -m avatar.bench watermark [--frames 30] [--strength 1] [--size 512] [--plain EVAL]``.

Prints embed/detect ms per frame (median; 512² and ``--size``²) and, per clip, bit accuracy (soft vote over all
frames) and payload recovery after libx264 at CRF 18/23/28 and a 50 % downscale (CRF 23, 28).
"flat-area change": mean grey-level change on the frame's flat pixels (where a mark shows).
Clips: "talking" (static background, face region moving, like paste-back outputs) and "shift"
(whole frame moving sub-pixel: the worst case for motion-compensated codecs).
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import numpy as np

PAYLOAD = 0xC0FFEE42
CASES = [(18, 1.0), (23, 1.0), (28, 1.0), (23, 0.5), (28, 0.5)]


def clip(img: np.ndarray, kind: str, n: int = 30, size: int = 512) -> list[np.ndarray]:
    """n frames of ``img`` at size²: "talking" moves only a face-sized region a few pixels (what
    paste-back outputs look like); "shift" moves the whole frame sub-pixel."""
    import cv2

    img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    out = []
    k = size / 512  # motion in proportion to the frame
    for i in range(n):
        m = np.float32([[1, 0, 3 * k * np.sin(i / 3)], [0, 1, 2 * k * np.cos(i / 4)]])
        moved = cv2.warpAffine(img, m, (size, size), borderMode=cv2.BORDER_REFLECT)
        if kind == "talking":
            f = img.copy()
            y0, y1, x0, x1 = int(0.1 * size), int(0.5 * size), int(0.3 * size), int(0.7 * size)
            f[y0:y1, x0:x1] = moved[y0:y1, x0:x1]
            moved = f
        out.append(moved)
    return out


def half_wall(size: int = 512) -> np.ndarray:
    """The astronaut's right half beside a plain wall: where a mark shows as mottling."""
    import cv2
    from skimage import data

    photo = cv2.resize(data.astronaut(), (size, size), interpolation=cv2.INTER_AREA)
    frame = np.full_like(photo, (196, 188, 176))
    frame[:, size // 2:] = photo[:, size // 2:]
    return frame


def flat_change(frame: np.ndarray, marked: np.ndarray) -> float:
    """Mean |change| in grey levels over the frame's flat pixels (|Laplacian| under 1.5 on average
    over 15 px), where a low-frequency mark is easiest to see; NaN when nothing is flat."""
    import cv2

    luma = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32)
    flat = cv2.blur(np.abs(cv2.Laplacian(luma, cv2.CV_32F)), (15, 15)) < 1.5
    return float(np.abs(marked.astype(np.float32) - frame)[flat].mean()) if flat.any() else float("nan")


def _blobs(frame: np.ndarray, marked: np.ndarray) -> np.ndarray:
    """(H, W) float32 |change| of the luma of R, smoothed by a Gaussian of 2 px: a blob, not a pixel."""
    import cv2

    return np.abs(cv2.GaussianBlur(marked[..., 0].astype(np.float32) - frame[..., 0], (0, 0), 2.0))


def plain_blobs(frame: np.ndarray, marked: np.ndarray) -> float:
    """99th percentile of the change (luma of R, smoothed by a Gaussian of 2 px: a blob, not a
    pixel) over the frame's plain pixels (standard deviation in 9 × 9 under 2.5 grey levels: skin,
    walls), in grey levels; NaN when nothing is plain."""
    import cv2

    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32)
    mean = cv2.blur(grey, (9, 9))
    plain = np.sqrt(np.maximum(cv2.blur(grey * grey, (9, 9)) - mean * mean, 0.0)) < 2.5
    return float(np.percentile(_blobs(frame, marked)[plain], 99)) if plain.any() else float("nan")


def blobs_anywhere(frame: np.ndarray, marked: np.ndarray) -> float:
    """99.9th percentile of the change (luma of R, smoothed as :func:`plain_blobs`) over every
    pixel, in grey levels: what hair and fabric carry, where a mark hides less than its texture says."""
    return float(np.percentile(_blobs(frame, marked), 99.9))


def plain_table(eval_dir: Path) -> None:
    """Per portrait of ``eval_dir`` (and a frame 5 s into each ``clone/talk_0*.mp4``, and the
    astronaut), longer side 512: PSNR, :func:`plain_blobs` and :func:`blobs_anywhere` of one marked copy."""
    from skimage import data

    from ..media.image import load_image
    from ..media.video import read_frames
    from ..output import watermark as wm
    from ._eval import portraits, to_side

    images = {p.name: load_image(p) for p in portraits(eval_dir)}
    for clip_path in sorted((eval_dir / "clone").glob("talk_0*.mp4")):
        for i, f in enumerate(read_frames(clip_path, max_frames=126)):
            if i == 125:
                images[f"{clip_path.stem} at 5 s"] = f
    images["astronaut"] = data.astronaut()
    print("| image | PSNR dB | blob p99 on plain pixels | blob p99.9 anywhere |\n|---|---|---|---|")
    for name, img in images.items():
        img = to_side(img, 512)
        marked = wm.embed(img, PAYLOAD)
        psnr = 10 * np.log10(255**2 / np.mean((marked.astype(np.float64) - img) ** 2))
        print(f"| {name} | {psnr:.1f} | {plain_blobs(img, marked):.1f} | {blobs_anywhere(img, marked):.1f} |", flush=True)


def h264_roundtrip(frames: list[np.ndarray], crf: int, scale: float = 1.0, preset: str = "medium") -> list[np.ndarray]:
    """Encode RGB frames with libx264 in memory (optionally downscaled) and decode them again."""
    import av
    import cv2

    h, w = frames[0].shape[:2]
    hh, ww = int(h * scale) // 2 * 2, int(w * scale) // 2 * 2
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = ww, hh, "yuv420p"
        s.options = {"crf": str(crf), "preset": preset}
        for f in frames:
            if scale != 1.0:
                f = cv2.resize(f, (ww, hh), interpolation=cv2.INTER_AREA)
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    buf.seek(0)
    with av.open(buf) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def main(argv: list[str] | None = None) -> int:
    import cv2
    from skimage import data

    from ..output import watermark as wm

    ap = argparse.ArgumentParser(prog="python -m avatar.bench watermark")
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--strength", type=float, default=wm.DEFAULT_STRENGTH)
    ap.add_argument("--size", type=int, default=512,
                    help="frame side of the robustness clips (1920: the working-resolution path of big outputs)")
    ap.add_argument("--clips", default="", help="comma-separated subset, e.g. talking/astronaut,shift/coffee")
    ap.add_argument("--plain", type=Path, metavar="EVAL",
                    help="only: how the mark shows on plain skin and walls of this folder's portraits (see plain_table)")
    args = ap.parse_args(argv)
    if args.plain is not None:
        plain_table(args.plain)
        return 0
    cv2.setNumThreads(1)
    images = {"astronaut": data.astronaut(), "coffee": data.coffee(), "chelsea": data.chelsea(), "wall+astronaut": half_wall()}
    frame = cv2.resize(images["astronaut"], (512, 512))
    wm.embed(frame, PAYLOAD)  # warm the caches
    emb, det = [], []
    for _ in range(50):
        t = time.perf_counter()
        wm.embed(frame, PAYLOAD, args.strength)
        emb.append(time.perf_counter() - t)
        d = wm.WatermarkDetector()
        t = time.perf_counter()
        d.add(frame)
        det.append(time.perf_counter() - t)
    print(f"embed  {np.median(emb) * 1e3:.2f} ms / 512x512 frame (median of 50)")
    print(f"detect {np.median(det) * 1e3:.2f} ms / 512x512 frame (median of 50)")
    if args.size != 512:
        big = cv2.resize(images["astronaut"], (args.size, args.size), interpolation=cv2.INTER_CUBIC)
        emb = []
        for _ in range(20):
            t = time.perf_counter()
            wm.embed(big, PAYLOAD, args.strength)
            emb.append(time.perf_counter() - t)
        print(f"embed  {np.median(emb) * 1e3:.2f} ms / {args.size}x{args.size} frame (median of 20)")
    chosen = {c for c in args.clips.split(",") if c}
    msg = wm._message_bits(PAYLOAD)
    header = " | ".join(f"CRF{c}{'' if s == 1 else ' @0.5x'}" for c, s in CASES)
    print(f"\nstrength {args.strength}; cells: bit accuracy (soft vote over {args.frames} frames) / payload recovered")
    print(f"| clip | PSNR dB | flat-area change | {header} | clean clip |")
    print("|---" * (len(CASES) + 4) + "|")
    for kind in ("talking", "shift"):
        for name, img in images.items():
            if chosen and f"{kind}/{name}" not in chosen:
                continue
            frames = clip(img, kind, args.frames, args.size)
            marked = [wm.embed(f, PAYLOAD, args.strength) for f in frames]
            psnr = np.mean([10 * np.log10(255**2 / np.mean((m.astype(np.float64) - f) ** 2))
                            for m, f in zip(marked, frames)])
            flat = flat_change(frames[0], marked[0])
            cells = []
            for crf, scale in CASES:
                dec = h264_roundtrip(marked, crf, scale)
                d = wm.WatermarkDetector()
                for f in dec:
                    d.add(f)
                acc = float(np.mean(np.sign(d.soft_bits()) == msg))
                cells.append(f"{acc:.3f} {'yes' if d.result().payload == PAYLOAD else 'no'}")
            clean = wm.detect_frames(h264_roundtrip(frames, 23, 1.0))
            print(f"| {kind}/{name} | {psnr:.1f} | {flat:.2f} | " + " | ".join(cells)
                  + f" | {'FALSE POSITIVE' if clean.payload is not None else 'none'} |", flush=True)
    return 0
