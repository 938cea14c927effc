"""Quality checks of the default engine on ``../shared/eval`` (or any folder with the same files).

``python -m avatar.bench quality [--eval DIR] [--size 512] [--max-frames N]``

* cross-reenactment: every portrait × every driving video; mediapipe re-detection rate of the
  output, correlation of the output's mouth opening with the driver's (driving_03) and of the
  output's head yaw with the driver's (driving_01) and of both eyes' opening with the driver's;
  how deep blinks go: over the driver's blink frames (eye opening under 0.35 of its median), the
  output's mean opening over its own median, beside the driver's; background displacement: the share of the
  portrait's textured background pixels (outside its person mask grown by 5 % of the width)
  that DIS optical flow between the portrait and an output frame moves by more than 0.25 % of
  the width and whose grey level changed by more than 2, median and 95th percentile over frames
  (a still copy of the photo gives 0); and the same over the background visible in both
  (outside the output frame's grown person mask too: a head moving over the background covers
  it, which is not the background moving);
* self-reenactment: source = first frame of a driving video, driven by the same video:
  landmark error / inter-ocular distance, face-box L1, mouth-box L1 (the lips' landmark box
  grown by 40 % of its width and height on every side), static-background L1 per frame (pixels
  whose grey level lies within 10 of the driver's frame 0 *in that frame*, output against
  frame 0), the same for the real frames themselves (what a render identical to the video
  scores: those pixels may differ by up to 10 levels, so this is not 0), the same with the person left out (pixels outside the person masks of frame 0 and
  of that frame, grown by 2 % of the width) and, for comparison, the older whole-clip
  definition (pixels that stay within 10 levels for the whole clip);
  as a diagnostic, the face-box L1 left after matching the output's low-frequency shading
  inside the face oval to the real frame's (Gaussian σ 16 px), i.e. what geometry, occlusion
  and the mouth interior leave once lighting is taken out; and, as a bound, the face-box L1 of
  the source frame warped by dense optical flow fitted to the real frame (DIS, every pixel free
  to move where the answer is): what the best conceivable warp of one photo reaches.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from ..config import AvatarConfig, FaceConfig, OutputConfig, RenderConfig
from ..face import topology
from ..face.landmarks import LandmarkDetector
from ..media.video import read_frames
from ..motion.decompose import decompose
from ..motion.transfer import best_reference
from ..pipeline import Animator
from ..render.eyelids import opening
from ._eval import portraits as eval_portraits

_DEFAULT_EVAL = Path(__file__).resolve().parents[2].parent / "shared" / "eval"


def mouth_opening(lm: np.ndarray) -> float:
    """Inner-lip gap / face height (landmarks 13–14 over 10–152)."""
    return float(np.linalg.norm(lm[13, :2] - lm[14, :2]) / np.linalg.norm(lm[10, :2] - lm[152, :2]))


def eye_opening(lm: np.ndarray) -> float:
    """Mean of both eyes' lid-contour area over corner-to-corner width squared."""
    return float(np.mean([opening(lm[np.asarray(ids), :2].astype(np.float64)) for ids in topology.mesh()["eye_loops"]]))


def blink_depth(driver: np.ndarray, output: np.ndarray) -> tuple[float, float]:
    """(output, driver): each one's mean eye opening over the driver's blink frames (under 0.35
    of the driver's median), over its own median; NaN without blinks."""
    blinks = driver < 0.35 * np.median(driver)
    if not blinks.any():
        return float("nan"), float("nan")
    return float(output[blinks].mean() / np.median(output)), float(driver[blinks].mean() / np.median(driver))


def yaw(lm: np.ndarray) -> float:
    return decompose(lm)[0].angles()[0]


def _corr(a: list[float], b: list[float]) -> float:
    a, b = np.asarray(a), np.asarray(b)
    if len(a) < 3 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def shading_matched(out: np.ndarray, real: np.ndarray, landmarks: np.ndarray, sigma: float = 16.0) -> np.ndarray:
    """``out`` (float32) with its low-frequency shading inside the face oval matched to ``real``'s."""
    import cv2

    oval = np.zeros(out.shape[:2], np.float32)
    cv2.fillPoly(oval, [landmarks[topology.mesh()["oval"], :2].round().astype(np.int32)], 1.0)
    gain = (cv2.GaussianBlur(real.astype(np.float32), (0, 0), sigma) + 1) / (cv2.GaussianBlur(out.astype(np.float32), (0, 0), sigma) + 1)
    return np.clip(out * (1 + (np.clip(gain, 0.6, 1.6) - 1) * oval[..., None]), 0, 255)


def flow_oracle(source: np.ndarray, real: np.ndarray) -> np.ndarray:
    """``source`` backward-warped onto ``real`` by DIS optical flow computed from the two
    (fine settings: finest scale, 8 px patches, variational refinement). It sees the answer,
    so it bounds from below what a warp of the one source photo can reach."""
    import cv2

    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    dis.setFinestScale(0)
    dis.setPatchSize(8)
    dis.setPatchStride(3)
    dis.setGradientDescentIterations(25)
    dis.setVariationalRefinementIterations(10)
    flow = dis.calc(cv2.cvtColor(real, cv2.COLOR_RGB2GRAY), cv2.cvtColor(source, cv2.COLOR_RGB2GRAY), None)
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(source, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def mouth_box(landmarks: np.ndarray, shape: tuple[int, ...], margin: float = 0.4) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the lips' landmark box grown by ``margin`` × its size on every side."""

    lips = landmarks[topology.mesh()["lips"], :2]
    lo, hi = lips.min(0), lips.max(0)
    pad = (hi - lo) * margin
    x0, y0 = np.floor(lo - pad).astype(int).clip(0)
    x1, y1 = np.ceil(hi + pad).astype(int)
    return int(x0), int(y0), int(min(x1, shape[1])), int(min(y1, shape[0]))


def still_l1(out: np.ndarray, first: np.ndarray, frame: np.ndarray, levels: int = 10,
             exclude: np.ndarray | None = None) -> float:
    """L1 (0..1) of ``out`` against ``first`` over the pixels whose grey level in ``frame`` lies
    within ``levels`` of ``first``'s: what is still in this frame (minus ``exclude``, bool)."""
    import cv2

    still = np.abs(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.int16) - cv2.cvtColor(first, cv2.COLOR_RGB2GRAY)) < levels
    if exclude is not None:
        still &= ~exclude
    if not still.any():
        return 0.0
    return float(np.abs(out.astype(np.float32) - first)[still].mean() / 255)


def grown_person(image: np.ndarray, grow: float = 0.02) -> np.ndarray:
    """(H, W) bool: the person mask of ``image`` grown by ``grow`` × its width (all False
    when segmentation is unavailable)."""
    import cv2

    from ..face.segment import person_mask

    mask = person_mask(np.ascontiguousarray(image))
    if mask is None:
        return np.zeros(image.shape[:2], bool)
    k = 2 * int(round(grow * image.shape[1])) + 1
    return cv2.dilate((mask > 0.5).astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))) > 0


class BackgroundMotion:
    """Measures how much of a portrait's textured background an output frame moves.

    The portrait and each frame are compared at a width of at most ``work`` px by DIS optical
    flow; a pixel counts as displaced when its flow exceeds ``threshold`` × the width. Only
    textured background counts (flow is meaningless on flat areas): outside the person mask
    grown by ``grow`` × the width, with a local gradient above ``min_gradient`` grey levels/px.
    """

    def __init__(self, portrait: np.ndarray, work: int = 512, threshold: float = 0.0025, grow: float = 0.05,
                 min_gradient: float = 2.0) -> None:
        import cv2

        from ..face.segment import person_mask

        h, w = portrait.shape[:2]
        self.scale = min(1.0, work / max(h, w))
        self.size = (max(int(round(w * self.scale)), 8), max(int(round(h * self.scale)), 8))
        self.grey = self._grey(portrait)
        sw = self.size[0]
        mask = person_mask(portrait)
        person = np.zeros(self.grey.shape, np.uint8) if mask is None else (cv2.resize(mask, self.size) > 0.5).astype(np.uint8)
        k = 2 * int(round(grow * sw)) + 1
        person = cv2.dilate(person, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
        g = self.grey.astype(np.float32)
        grad = cv2.GaussianBlur(np.hypot(cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)) / 4, (0, 0), 2)
        self.region = (person == 0) & (grad > min_gradient)
        self.limit = threshold * sw
        self._kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)

    def _grey(self, image: np.ndarray) -> np.ndarray:
        import cv2

        g = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
        return cv2.resize(g, self.size, interpolation=cv2.INTER_AREA) if self.scale < 1 else g

    def __call__(self, frame: np.ndarray) -> tuple[float, float]:
        """Shares (0..1) of the textured background pixels this frame displaces: of those outside
        the portrait's grown person mask, and of those outside the frame's grown person mask too
        (a head that moves over the background covers it; that is not the background moving).
        NaN where there are none."""
        import cv2

        from ..face.segment import person_mask

        if not self.region.any():
            return float("nan"), float("nan")
        grey = self._grey(frame)
        moved = np.hypot(*np.moveaxis(self._dis.calc(self.grey, grey, None), -1, 0)) > self.limit
        # a pixel that kept its value did not move: DIS's coarse levels smear a moving head's
        # flow over untouched background next to it
        moved &= np.abs(grey.astype(np.int16) - self.grey) > 2
        mask = person_mask(np.ascontiguousarray(frame))
        visible = self.region
        if mask is not None:
            now = cv2.dilate((cv2.resize(mask, self.size) > 0.5).astype(np.uint8), self._kernel)
            visible = self.region & (now == 0)
        share = float(moved[self.region].mean())
        return share, float(moved[visible].mean()) if visible.any() else float("nan")


def track(frames: list[np.ndarray]) -> list[np.ndarray | None]:
    with LandmarkDetector(video=True) as det:
        out = []
        for f in frames:
            faces = det.detect(f)
            out.append(faces[0].landmarks if faces else None)
    return out


def run_pair(animator: Animator, portrait: np.ndarray, driving: list[np.ndarray], fps: float,
             landmarks: list[np.ndarray | None]) -> tuple[list[np.ndarray], float]:
    """Animate as ``avatar animate`` does: tracked driver landmarks, best reference frame by default."""
    src = animator.prepare(portrait, name="portrait")
    reference = reference_frame = None
    if animator.config.motion.best_frame and animator.config.motion.mode == "relative":
        idx = best_reference(src.crop.landmarks, landmarks)
        reference, reference_frame = landmarks[idx], driving[idx]
    t0 = time.perf_counter()
    out = list(animator.stream(src, iter(driving), fps, reference=reference, landmarks=landmarks, reference_frame=reference_frame))
    return out, time.perf_counter() - t0


def edge_at_rest(state) -> tuple[int, float, float] | None:
    """How far the warp engine's layers, composited unmoved, are from the portrait's crop over the
    matte's partial pixels: (pixels, share off by more than 12 levels, 99th percentile of the
    largest channel difference); None for a state without layers. An unmoved frame should be the
    photo; a paler or darker edge there is a halo the head carries wherever it goes."""
    layers = getattr(state, "layers", None)
    if layers is None:
        return None
    size = layers.plate.shape[0]
    grid = np.stack(np.meshgrid(np.arange(size, dtype=np.float32), np.arange(size, dtype=np.float32)), -1)
    still = layers.composite(grid)
    alpha = layers.rgba[..., 3]
    edge = (alpha > 0) & (alpha < 255)
    if not edge.any():
        return 0, 0.0, 0.0
    off = np.abs(still.astype(np.int16) - state.image).max(-1)[edge]
    return int(edge.sum()), float((off > 12).mean()), float(np.percentile(off, 99))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m avatar.bench quality", description=__doc__.split("\n")[0])
    ap.add_argument("--eval", type=Path, default=_DEFAULT_EVAL)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--max-frames", type=int, default=None)
    ap.add_argument("--self-only", action="store_true")
    ap.add_argument("--cross-only", action="store_true")
    ap.add_argument("--fast", action="store_true", help="skip the slow diagnostic columns (shading-matched, flow oracle)")
    ap.add_argument("--no-layers", action="store_true", help="the warp engine without layers (the earlier single warp)")
    args = ap.parse_args(argv)
    if not args.eval.is_dir():
        print(f"no evaluation folder at {args.eval}", file=sys.stderr)
        return 2
    from ..media.image import load_image
    from ..media.video import probe_video
    from ..output.consent import POLICY_ENV

    # Evaluation on the shared public-domain set: an explicit research policy (outputs stay in memory).
    os.environ[POLICY_ENV] = "research"

    render = RenderConfig(layers=False) if args.no_layers else RenderConfig()
    cfg = AvatarConfig(face=FaceConfig(size=args.size), render=render, output=OutputConfig(max_size=1024))
    animator = Animator(cfg)
    drivings = sorted(args.eval.glob("driving_*.mp4"))
    portraits = eval_portraits(args.eval)
    clips = {}  # decoded and tracked once, for both sections

    def clip(d: Path) -> tuple[list[np.ndarray], float, list[np.ndarray | None]]:
        if d not in clips:
            frames = list(read_frames(d, max_frames=args.max_frames))
            clips[d] = (frames, probe_video(d).fps, track(frames))
        return clips[d]

    if not args.cross_only:
        print("## self-reenactment")
        print("| video | frames | landmark err / IOD | face-box L1 | mouth-box L1 | static-background L1 (per frame) "
              "| the same, of the real frames | per frame, person excluded | static-background L1 (whole clip, old) | still-source face-box L1 "
              "| shading-matched face-box L1 | bound: flow-oracle face-box L1 |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for d in ([] if args.cross_only else drivings):
        frames, fps, lm_d = clip(d)
        out, _ = run_pair(animator, frames[0], frames, fps, lm_d)
        lm_o = track(out)
        errs, box_l1, mouth_l1, bg_l1, real_l1, bg_only_l1, still_source_l1, matched_l1, oracle_l1 = [], [], [], [], [], [], [], [], []
        person0 = grown_person(frames[0])
        for f_d, f_o, a, b in zip(frames, out, lm_d, lm_o):
            if a is None:
                continue
            x0, y0 = np.floor(a[:, :2].min(0)).astype(int).clip(0)
            x1, y1 = np.ceil(a[:, :2].max(0)).astype(int)
            box_l1.append(np.abs(f_o[y0:y1, x0:x1].astype(np.float32) - f_d[y0:y1, x0:x1]).mean() / 255)
            mx0, my0, mx1, my1 = mouth_box(a, f_d.shape)
            mouth_l1.append(np.abs(f_o[my0:my1, mx0:mx1].astype(np.float32) - f_d[my0:my1, mx0:mx1]).mean() / 255)
            bg_l1.append(still_l1(f_o, frames[0], f_d))
            real_l1.append(still_l1(f_d, frames[0], f_d))
            bg_only_l1.append(still_l1(f_o, frames[0], f_d, exclude=person0 | grown_person(f_d)))
            still_source_l1.append(np.abs(frames[0][y0:y1, x0:x1].astype(np.float32) - f_d[y0:y1, x0:x1]).mean() / 255)
            if not args.fast:
                matched = shading_matched(f_o, f_d, a)
                matched_l1.append(np.abs(matched[y0:y1, x0:x1] - f_d[y0:y1, x0:x1]).mean() / 255)
                oracle = flow_oracle(frames[0], f_d)
                oracle_l1.append(np.abs(oracle[y0:y1, x0:x1].astype(np.float32) - f_d[y0:y1, x0:x1]).mean() / 255)
            if b is not None:
                iod = np.linalg.norm(a[33, :2] - a[263, :2])
                errs.append(np.linalg.norm(a[:, :2] - b[:, :2], axis=1).mean() / iod)
        stack = np.stack([f.astype(np.int16) for f in frames])
        static = (np.abs(stack - stack[0]).max(axis=(0, 3)) < 10)
        bg = np.mean([np.abs(o.astype(np.float32) - frames[0])[static].mean() / 255 for o in out])
        diag = " | ".join(f"{np.mean(v):.4f}" if v else "–" for v in (matched_l1, oracle_l1))
        print(f"| {d.name} | {len(frames)} | {np.mean(errs):.4f} | {np.mean(box_l1):.4f} | {np.mean(mouth_l1):.4f} | {np.mean(bg_l1):.4f} "
              f"| {np.mean(real_l1):.4f} | {np.mean(bg_only_l1):.4f} | {bg:.4f} | {np.mean(still_source_l1):.4f} | {diag} |")
    if args.self_only:
        return 0

    print("\n## the person's edge at rest (the layers composited unmoved, against the portrait's crop)")
    print("| portrait | partial-matte pixels | off by more than 12 levels | 99th percentile, levels |")
    print("|---|---|---|---|")
    for p in portraits:
        row = edge_at_rest(animator.prepare(load_image(p), name="portrait").state)
        print(f"| {p.name} | " + ("no layers |  |  |" if row is None else f"{row[0]} | {row[1]:.1%} | {row[2]:.0f} |"))

    print("\n## cross-reenactment")
    print("| portrait | driving | frames | re-detected | mouth corr | yaw corr | eye corr | blinks: opening / median (driver's) "
          "| background displaced: median | p95 | visible background displaced: median | p95 "
          "| fps (motion+warp+paste; landmarks tracked once up front) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for d in drivings:
        frames, fps, lm_d = clip(d)
        for p in portraits:
            portrait = load_image(p)
            out, secs = run_pair(animator, portrait, frames, fps, lm_d)
            still = animator.prepare(portrait, name="portrait").frame  # what the output is pasted into
            moved = BackgroundMotion(still)
            shares = np.array([moved(o) for o in out])
            lm_o = track(out)
            ok = [(a, b) for a, b in zip(lm_d, lm_o) if a is not None and b is not None]
            found = sum(b is not None for b in lm_o) / len(lm_o)
            mc = _corr([mouth_opening(a) for a, _ in ok], [mouth_opening(b) for _, b in ok])
            yc = _corr([yaw(a) for a, _ in ok], [yaw(b) for _, b in ok])
            eyes_d, eyes_o = np.array([eye_opening(a) for a, _ in ok]), np.array([eye_opening(b) for _, b in ok])
            ec = _corr(eyes_d, eyes_o)
            depth = blink_depth(eyes_d, eyes_o)
            blinks = "–" if np.isnan(depth[0]) else f"{depth[0]:.2f} ({depth[1]:.2f})"
            cells = " | ".join(f"{np.nanpercentile(col, q):.2%}" if np.isfinite(col).any() else "n/a (no texture)"
                               for col in shares.T for q in (50, 95))
            print(f"| {p.name} | {d.name} | {len(out)} | {found:.1%} | {mc:.3f} | {yc:.3f} | {ec:.3f} | {blinks} | {cells} "
                  f"| {len(out) / secs:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
