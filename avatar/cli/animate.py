"""``avatar animate SOURCE DRIVING -o OUT.mp4``: animate a portrait with a driving video."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path


def add_common_options(p: argparse.ArgumentParser, output_required: bool = True, visible_label: bool = False,
                       label_help: str = "draw an 'AI-generated' label into the frames") -> None:
    """Options shared by every command that renders (animate, talk, live); live records only on request
    and draws the visible label by default."""
    from ..config import FaceConfig, OutputConfig, RenderConfig

    f, r, o = FaceConfig(), RenderConfig(), OutputConfig()
    g = p.add_argument_group("engine")
    g.add_argument("--engine", default=r.engine, help="warp (default, no weights), fomm (needs --checkpoint) or onnx (needs --model-dir)")
    g.add_argument("--checkpoint", help="FOMM checkpoint (.pth.tar or .safetensors) for --engine fomm")
    g.add_argument("--model-dir", help="folder made by `avatar export onnx` for --engine onnx")
    g.add_argument("--device", default=r.device, help="cpu, cuda or mps (neural engines)")
    g.add_argument("--half", action="store_true", help="fp16 on CUDA (neural engines)")
    g.add_argument("--int8", action="store_true", help="--engine onnx: the export's int8 generator (export with --int8; fastest on CPU)")
    g.add_argument("--no-shading", action="store_true",
                   help="warp engine: keep the portrait's own shading (default: carry the driver's change of shading over)")
    g.add_argument("--no-detail", action="store_true",
                   help="warp engine: move the face by its landmarks only (default: add the fine skin motion the driver's optical flow shows)")
    g.add_argument("--no-layers", action="store_true",
                   help="warp engine: one warp of the whole crop (default: a still background plate under the matted, moving person)")
    g.add_argument("--batch-size", type=int, default=r.batch_size, help="frames rendered per engine call")
    g.add_argument("--providers", default="", help="onnxruntime providers in order, e.g. tensorrt,cuda,cpu")
    g.add_argument("--strict-providers", action="store_true", help="fail instead of warning when onnxruntime falls back")
    g = p.add_argument_group("face")
    g.add_argument("--crop-scale", type=float, default=f.crop_scale, help="crop side / face size (≈2 keeps hair and chin)")
    g.add_argument("--vertical-offset", type=float, default=f.vertical_offset, help="crop centre shift in face heights (negative = up)")
    g.add_argument("--size", type=int, default=f.size, help="internal crop size in pixels (256, 512, …)")
    g.add_argument("--face-index", type=int, default=None, help="which face when several are found (0 = largest)")
    g.add_argument("--face-backend", choices=("mediapipe", "face_alignment"), default=f.backend,
                   help="face finder: mediapipe (default, bundled) or face_alignment (optional extra; its weights must be on disk)")
    g = p.add_argument_group("output")
    if output_required:
        g.add_argument("-o", "--output", required=True,
                       help="output: .mp4/.mov or .webm video, .gif/.webp preview, or a folder ending in / for PNG frames")
    g.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    g.add_argument("--max-size", type=int, default=o.max_size, help="cap on the output's longest side")
    g.add_argument("--crf", type=int, default=o.crf, help="H.264 quality (lower = better)")
    g.add_argument("--no-paste-back", action="store_true", help="write the animated crop instead of the full portrait")
    g.add_argument("--no-restore-detail", action="store_true",
                   help="paste back without the portrait's fine detail the crop cannot hold (faster, softer)")
    g.add_argument("--visible-label", action=argparse.BooleanOptionalAction, default=visible_label, help=label_help)
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g = p.add_argument_group("consent")
    g.add_argument("--avatar", dest="avatar_id", help="id of a cloned avatar (see `avatar clone`)")
    g.add_argument("--consent", help="record this consent statement for the portrait and animate in one step")
    g.add_argument("--subject", help="name of the person shown (with --consent)")
    g.add_argument("--granted-by", default="subject", help="who grants consent: subject, guardian, estate, … (with --consent)")


def build_config(args: argparse.Namespace, **motion: object):
    """An AvatarConfig from the common options (+ motion overrides)."""
    from ..config import AvatarConfig, FaceConfig, MotionConfig, OutputConfig, RenderConfig

    providers = tuple(x.strip() for x in args.providers.split(",") if x.strip())
    return AvatarConfig(
        face=FaceConfig(crop_scale=args.crop_scale, vertical_offset=args.vertical_offset, size=args.size, face_index=args.face_index,
                        backend=args.face_backend),
        motion=MotionConfig(**motion) if motion else MotionConfig(),
        render=RenderConfig(engine=args.engine, device=args.device, half=args.half, int8=args.int8, shading=not args.no_shading,
                            detail=not args.no_detail, layers=not args.no_layers, batch_size=args.batch_size,
                            checkpoint=args.checkpoint, model_dir=args.model_dir, providers=providers,
                            strict_providers=args.strict_providers),
        output=OutputConfig(max_size=args.max_size, crf=args.crf, paste_back=not args.no_paste_back,
                            restore_detail=not getattr(args, "no_restore_detail", False),
                            audio=not getattr(args, "no_audio", False), max_frames=getattr(args, "max_frames", None),
                            visible_label=args.visible_label),
    )


def record_consent_if_asked(args: argparse.Namespace, source: object, use: str) -> str | None:
    """With --consent, clone the portrait with that statement; returns the avatar id to use."""
    if not args.consent:
        return args.avatar_id
    from ..errors import ConfigError
    from ..media.image import load_image, sha256_file
    from ..output.consent import ConsentStore, Scope

    if not args.subject:
        raise ConfigError("--consent needs --subject NAME (the person shown in the portrait)")
    from ..face.landmarks import detect_face

    image = load_image(source)
    detect_face(image, str(source), face_index=args.face_index)  # a clear error naming the file
    sha = sha256_file(source) if isinstance(source, (str, Path)) else None
    with ConsentStore() as store:
        existing = store.find(image, sha)
        if existing is not None and existing.status() == "active":
            return existing.avatar_id
        rec = store.clone(image, source_sha256=sha or "", subject=args.subject, granted_by=args.granted_by,
                          statement=args.consent, scope=Scope(), expires=None,
                          source_path=Path(source) if isinstance(source, (str, Path)) else None)
    print(f"recorded consent: avatar {rec.avatar_id} ({args.subject}, granted by {args.granted_by})", file=sys.stderr)
    from .clone import print_revocation_token

    print_revocation_token(rec)
    return rec.avatar_id


def summary(result, label: str = "wrote") -> str:
    t = result.timings_ms
    stages = ", ".join(f"{k} {v:.1f}" for k, v in t.items() if k != "faces_missing" and v > 0)
    missing = f"; {result.faces_missing} frame(s) without a face held the last pose" if result.faces_missing else ""
    return (f"{label} {result.path}: {result.frames} frames at {result.fps:g} fps in {result.seconds:.1f} s "
            f"({result.achieved_fps:.1f} fps achieved; ms/frame: {stages}){missing}")


def register(sub: argparse._SubParsersAction) -> None:
    from ..config import MotionConfig

    m = MotionConfig()
    p = sub.add_parser("animate", help="animate a portrait with a driving video",
                       description="Animate SOURCE (a portrait photo) with the head motion, expressions, blinks and mouth of DRIVING (a video).")
    p.add_argument("source", nargs="?", help="portrait image")
    p.add_argument("driving", nargs="?", help="driving video")
    p.add_argument("--example", action="store_true",
                   help="use the bundled public-domain portrait and a generated driving clip (no files needed)")
    g = p.add_argument_group("motion")
    g.add_argument("--mode", choices=("relative", "absolute"), default=m.mode, help="relative (default) keeps the portrait's face shape")
    g.add_argument("--no-adapt-scale", action="store_true", help="do not scale movements by the face-size ratio")
    g.add_argument("--best-frame", action=argparse.BooleanOptionalAction, default=m.best_frame,
                   help="reference = the driving frame closest to the portrait in pose, shape and how open its eyes and lips are (default); --no-best-frame uses the first frame")
    g.add_argument("--smoothing", type=float, default=1.0, help="temporal smoothing strength (0 = off, 1 = default, >1 = smoother)")
    g.add_argument("--expression-scale", type=float, default=m.expression_scale, help="multiply expressions (1 = as driven)")
    g.add_argument("--max-turn", type=float, default=m.max_turn,
                   help="furthest head turn (yaw/pitch, degrees) away from the portrait's own pose; 30 keeps a "
                        f"three-quarter portrait from turning past frontal (default {m.max_turn:g} = no limit)")
    g.add_argument("--no-audio", action="store_true", help="do not copy the driving video's audio")
    g.add_argument("--max-frames", type=int, default=None, help="stop after N driving frames")
    add_common_options(p)
    p.set_defaults(func=run)


def smoothing_configs(strength: float) -> dict:
    """Pose/expression One-Euro settings for a user-facing strength (0 = off, 1 = default)."""
    from ..config import MotionConfig, SmoothingConfig

    m = MotionConfig()
    if strength <= 0:
        off = SmoothingConfig(enabled=False)
        return {"pose_smoothing": off, "expression_smoothing": off}
    return {
        name: dataclasses.replace(c, min_cutoff=c.min_cutoff / strength, beta=c.beta / strength)
        for name, c in (("pose_smoothing", m.pose_smoothing), ("expression_smoothing", m.expression_smoothing))
    }


def animate_config(args: argparse.Namespace):
    """The AvatarConfig of an ``animate`` command line (also used by ``avatar batch`` jobs)."""
    return build_config(args, mode=args.mode, adapt_scale=not args.no_adapt_scale, best_frame=args.best_frame,
                        expression_scale=args.expression_scale, max_turn=args.max_turn, **smoothing_configs(args.smoothing))


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..pipeline import Animator

    if args.example:
        from ..examples import example_portrait, write_example_driving

        tmp = Path(tempfile.mkdtemp(prefix="avatar-example-"))
        from ..media.image import save_image

        source = save_image(tmp / "astronaut.png", example_portrait())
        driving = write_example_driving(tmp / "driving.mp4")
    else:
        if not args.source or not args.driving:
            raise ConfigError("animate needs SOURCE and DRIVING (or --example)")
        source, driving = args.source, args.driving
    config = animate_config(args)
    avatar_id = record_consent_if_asked(args, source, "video")
    result = Animator(config).animate(source, driving, args.output, avatar_id=avatar_id,
                                      progress=not args.quiet, overwrite=args.overwrite)
    print(summary(result))
    return 0
