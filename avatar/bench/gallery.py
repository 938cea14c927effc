"""Contact sheets to look at: ``python -m avatar.bench gallery [--eval DIR] [--out DIR]``.

For every driving clip, one PNG sheet: a row per portrait of ``--eval`` (default ``../shared/eval``),
and for each of a few fixed frames, four zoomed tiles: face, mouth, hair edge and background
beside the head. Before/after modes add a second row per portrait:

* ``--compare-layers``: the warp engine with layers against ``--no-layers``;
* ``--before REV``: this tree against git revision REV (checked out with ``git worktree`` in a
  temporary folder and rendered by that revision's own code in a subprocess).

Portraits beyond the folder's five (their faults are not every portrait's): ``--portrait PATH``
(repeatable) adds an image, ``--clip-portraits`` a frame 1 s into each talking clip under the
folder's ``clone/``. They join a temporary copy of the folder (links) as ``portrait_x_<name>``, so
``--before`` renders them with an older revision's code too.

The rendering half (:func:`render_frames`) imports only the public API (``avatar.pipeline``,
``avatar.config``) and the reference choice ``avatar animate`` makes, so it runs on older
revisions too. Frames are rendered as ``avatar animate`` renders them: the whole clip is
tracked and the driving frame closest to the portrait is the motion's reference.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from ._eval import portraits as eval_portraits

_DEFAULT_EVAL = Path(__file__).resolve().parents[2].parent / "shared" / "eval"
_TILE = 160
_FRACTIONS = (0.3, 0.55, 0.8)  # fixed frames, as fractions of the clip
_KINDS = ("face", "mouth", "hair edge", "background")


def render_frames(eval_dir: Path, frames: int | None, size: int, layers: bool, only: str = "") -> dict[str, np.ndarray]:
    """Output frames at :data:`_FRACTIONS` of every clip for every portrait (those whose file
    names contain one of the comma-separated ``only``, when given), keyed
    ``"portrait|clip|index"``, plus each portrait's still frame (``"portrait|still"``)."""
    import dataclasses

    from avatar.config import AvatarConfig, FaceConfig, OutputConfig, RenderConfig
    from avatar.media.image import load_image
    from avatar.media.video import probe_video, read_frames
    from avatar.pipeline import Animator

    try:
        from avatar.motion.transfer import best_reference
    except ImportError:  # a revision from before the reference choice: its frame 0, as it rendered then
        best_reference = None

    os.environ["AVATAR_CONSENT_POLICY"] = "research"  # shared evaluation set; nothing is written but the sheet
    render = RenderConfig()
    if "layers" in {f.name for f in dataclasses.fields(RenderConfig)}:
        render = dataclasses.replace(render, layers=layers)
    animator = Animator(AvatarConfig(face=FaceConfig(size=size), render=render, output=OutputConfig(max_size=1024)))
    out: dict[str, np.ndarray] = {}
    wanted = [w for w in only.split(",") if w]

    def chooser(kind: str):
        names = [w for w in wanted if (w.startswith("driving")) == (kind == "driving")]
        return lambda path: not names or any(w in path.name for w in names)

    for clip in filter(chooser("driving"), sorted(eval_dir.glob("driving_*.mp4"))):
        count = probe_video(clip).frame_count if frames is None else frames
        picks = sorted({min(int(f * count), count - 1) for f in _FRACTIONS})
        # The whole clip is tracked: `avatar animate` picks its reference among all frames.
        lms = animator.landmarks_of(clip, max_frames=count)
        driving = list(read_frames(clip, max_frames=count))
        for p in filter(chooser("portrait"), eval_portraits(eval_dir)):
            src = animator.prepare(load_image(p), name=p.name)
            out[f"{p.name}|still"] = src.frame
            reference = reference_frame = None
            if best_reference is not None and animator.config.motion.best_frame and animator.config.motion.mode == "relative":
                idx = best_reference(src.crop.landmarks, lms)
                reference, reference_frame = lms[idx], driving[idx]
            shown = driving[: picks[-1] + 1]
            for i, frame in enumerate(animator.stream(src, iter(shown), 25.0, reference=reference,
                                                      landmarks=lms[: len(shown)], reference_frame=reference_frame)):
                if i in picks:
                    out[f"{p.name}|{clip.name}|{i}"] = frame
    return out


def _boxes(frame: np.ndarray) -> dict[str, tuple[int, int, int]]:
    """Square zoom boxes (x centre, y centre, half side) on a portrait: face, mouth, hair edge,
    background; each kept inside the picture."""
    from avatar.face import topology
    from avatar.face.landmarks import detect_face
    from avatar.face.segment import person_mask

    lm = detect_face(frame).landmarks[:, :2]
    h, w = frame.shape[:2]
    lo, hi = lm.min(0), lm.max(0)
    c = (lo + hi) / 2
    face = float((hi - lo).max())
    lips = lm[topology.mesh()["lips"]]
    mouth_c = lips.mean(0)
    mask = person_mask(frame)
    top = np.array([c[0], lo[1] - 0.3 * face])
    if mask is not None:  # walk up from the forehead to where the person ends
        x = int(np.clip(c[0], 0, w - 1))
        col = mask[: int(np.clip(lo[1], 1, h)), x] > 0.5
        above = np.flatnonzero(~col)
        if len(above):
            top[1] = above[-1]
    side = 1 if c[0] < w / 2 else -1  # the side with more room
    bg = np.array([c[0] + side * 0.95 * face, lm[33, 1]])
    half = {"face": 0.6 * face, "mouth": 0.2 * face, "hair edge": 0.22 * face, "background": 0.22 * face}
    centres = {"face": c, "mouth": mouth_c, "hair edge": top, "background": bg}
    boxes = {}
    for k in _KINDS:
        r = int(np.clip(half[k], 8, min(h, w) // 2))
        boxes[k] = (int(np.clip(centres[k][0], r, w - r)), int(np.clip(centres[k][1], r, h - r)), r)
    return boxes


def _follow_face(boxes: dict[str, tuple[int, int, int]], still: np.ndarray, frame: np.ndarray) -> dict[str, tuple[int, int, int]]:
    """The face and mouth boxes moved by the face's displacement in ``frame`` (found again by
    the landmark detector); hair-edge and background boxes stay where they are in the portrait."""
    from avatar.face.landmarks import detect_face

    try:
        shift = detect_face(frame).landmarks[:, :2].mean(0) - detect_face(still).landmarks[:, :2].mean(0)
    except Exception:  # noqa: BLE001 - a frame whose face is not found keeps the still boxes
        return boxes
    h, w = frame.shape[:2]
    out = dict(boxes)
    for k in ("face", "mouth"):
        x, y, r = boxes[k]
        out[k] = (int(np.clip(x + shift[0], r, w - r)), int(np.clip(y + shift[1], r, h - r)), r)
    return out


def _tile(frame: np.ndarray, box: tuple[int, int, int]) -> np.ndarray:
    import cv2

    x, y, r = box
    h, w = frame.shape[:2]
    padded = cv2.copyMakeBorder(frame, r, r, r, r, cv2.BORDER_CONSTANT, value=(40, 40, 40))
    crop = padded[y: y + 2 * r, x: x + 2 * r]  # (x, y) shifted by the border
    interp = cv2.INTER_AREA if 2 * r > _TILE else cv2.INTER_NEAREST  # zoom-ins keep their pixels visible
    return cv2.resize(crop, (_TILE, _TILE), interpolation=interp)


def _label(width: int, text: str, height: int = 22) -> np.ndarray:
    import cv2

    strip = np.full((height, width, 3), 255, np.uint8)
    cv2.putText(strip, text, (4, height - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return strip


def contact_sheet(renders: list[tuple[str, dict[str, np.ndarray]]], clip: str) -> np.ndarray:
    """One sheet for ``clip``: per portrait a row per (name, renders) pair, tiles per fixed frame."""
    portraits = sorted({k.split("|")[0] for k in renders[0][1] if k.endswith("|still")})
    rows = []
    for p in portraits:
        still = renders[0][1][f"{p}|still"]
        boxes = _boxes(still)
        for name, frames in renders:
            keys = sorted((k for k in frames if k.startswith(f"{p}|{clip}|")), key=lambda k: int(k.rsplit("|", 1)[1]))
            tiles = []
            for k in keys:
                moved = _follow_face(boxes, still, frames[k])
                tiles += [_tile(frames[k], moved[kind]) for kind in _KINDS]
            if not tiles:
                continue
            row = np.concatenate(tiles, axis=1)
            frames_txt = ", ".join(k.rsplit("|", 1)[1] for k in keys)
            rows += [_label(row.shape[1], f"{p} x {clip}  [{name}]  frames {frames_txt}: " + " / ".join(_KINDS)), row]
    width = max(r.shape[1] for r in rows)
    return np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows])


def _render_revision(rev: str, eval_dir: Path, frames: int | None, size: int, only: str) -> dict[str, np.ndarray]:
    """Render with the code of git revision ``rev`` (a temporary ``git worktree``)."""
    root = Path(__file__).resolve().parents[2]
    with tempfile.TemporaryDirectory(prefix="avatar-gallery-") as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(root), "worktree", "add", "--detach", str(tree), rev], check=True,
                       capture_output=True)
        try:
            dump = Path(tmp) / "frames.npz"
            env = dict(os.environ, PYTHONPATH=str(tree))
            # the revision's own module (run as a module: it imports its package relatively)
            cmd = [sys.executable, "-m", "avatar.bench.gallery", "--dump", str(dump), "--eval", str(eval_dir),
                   "--size", str(size), "--only", only] + ([] if frames is None else ["--frames", str(frames)])
            subprocess.run(cmd, check=True, env=env, cwd=tmp)
            with np.load(dump) as data:
                return {k: data[k] for k in data.files}
        finally:
            subprocess.run(["git", "-C", str(root), "worktree", "remove", "--force", str(tree)], capture_output=True)


def with_portraits(eval_dir: Path, into: Path, images: list[Path], clip_portraits: bool = False,
                   at_s: float = 1.0) -> Path:
    """A folder ``into`` laid out like ``eval_dir``: links to its driving clips and portraits, plus
    each of ``images`` as ``portrait_x_<stem><suffix>`` and, with ``clip_portraits``, the frame
    ``at_s`` seconds into each ``eval_dir/clone/*.mp4`` as ``portrait_x_<stem>.png``. Returns ``into``."""
    from avatar.errors import InputError
    from avatar.media.image import save_image
    from avatar.media.video import probe_video, read_frames

    into.mkdir(parents=True, exist_ok=True)
    for f in [*sorted(eval_dir.glob("driving_*.mp4")), *eval_portraits(eval_dir)]:
        (into / f.name).symlink_to(f.resolve())
    for img in images:
        if not img.is_file():
            raise InputError(f"--portrait {img}: no such image")
        (into / f"portrait_x_{img.stem}{img.suffix.lower()}").symlink_to(img.resolve())
    if clip_portraits:
        for clip in sorted((eval_dir / "clone").glob("*.mp4")):
            want = int(round(at_s * probe_video(clip).fps))
            frame = None
            for frame in read_frames(clip, max_frames=want + 1):
                pass
            if frame is not None:
                save_image(into / f"portrait_x_{clip.stem}.png", frame)
    return into


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m avatar.bench gallery", description=__doc__.split("\n")[0])
    ap.add_argument("--eval", type=Path, default=_DEFAULT_EVAL)
    ap.add_argument("--out", type=Path, default=Path("gallery"))
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--frames", type=int, default=None, help="treat clips as this many frames long (faster)")
    ap.add_argument("--no-layers", action="store_true", help="render without layers")
    ap.add_argument("--only", default="", help="comma-separated parts of file names: only those clips and portraits "
                                               "(e.g. driving_01,portrait_01,portrait_05; a clip and no portrait keeps every portrait)")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--compare-layers", action="store_true", help="rows with and without layers")
    mode.add_argument("--before", metavar="REV", help="rows rendered by git revision REV, then by this tree")
    ap.add_argument("--portrait", type=Path, action="append", default=[], metavar="PATH",
                    help="also this portrait (repeatable)")
    ap.add_argument("--clip-portraits", action="store_true",
                    help="also a frame 1 s into each talking clip of the folder's clone/ as a portrait")
    ap.add_argument("--dump", type=Path, help=argparse.SUPPRESS)  # used by --before in the subprocess
    args = ap.parse_args(argv)
    if not args.eval.is_dir():
        print(f"no evaluation folder at {args.eval}", file=sys.stderr)
        return 2
    if args.dump:
        np.savez(args.dump, **render_frames(args.eval, args.frames, args.size, not args.no_layers, args.only))
        return 0
    if not (args.portrait or args.clip_portraits):
        return _sheets(args)
    with tempfile.TemporaryDirectory(prefix="avatar-gallery-eval-") as tmp:
        args.eval = with_portraits(args.eval, Path(tmp) / "eval", args.portrait, args.clip_portraits)
        return _sheets(args)


def _sheets(args: argparse.Namespace) -> int:
    """Render and write the contact sheets :func:`main` was asked for."""
    renders = []
    if args.before:
        renders.append((f"before: {args.before}", _render_revision(args.before, args.eval, args.frames, args.size, args.only)))
    elif args.compare_layers:
        renders.append(("no layers", render_frames(args.eval, args.frames, args.size, False, args.only)))
    now = render_frames(args.eval, args.frames, args.size, not args.no_layers, args.only)
    renders.append(("layers" if not args.no_layers else "no layers", now) if not args.before else ("this tree", now))

    from avatar.media.image import save_image

    args.out.mkdir(parents=True, exist_ok=True)
    for clip in sorted({k.split("|")[1] for k in now if not k.endswith("|still")}):
        path = save_image(args.out / f"gallery-{Path(clip).stem}.png", contact_sheet(renders, clip))
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
