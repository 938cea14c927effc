"""``avatar live --avatar ID | PORTRAIT``: your webcam face (or your voice) drives the avatar in real time."""

from __future__ import annotations

import argparse
import dataclasses
import sys


def register(sub: argparse._SubParsersAction) -> None:
    from ..config import MotionConfig
    from .animate import add_common_options

    m = MotionConfig()
    p = sub.add_parser(
        "live", help="drive an avatar live from a webcam or microphone",
        description="Animate a consented portrait in real time from a camera (or, with --mic/--audio, from your "
                    "voice) and send it to a preview window, a virtual camera, a network stream and/or a file. "
                    "Keys in the preview: r = take the current face as the neutral reference, q = quit. "
                    "Ctrl-C stops cleanly (files are completed).")
    p.add_argument("source", nargs="?", help="portrait image (or give --avatar ID alone to use its stored image)")
    g = p.add_argument_group("input")
    g.add_argument("--camera", default="0", help="camera index (0), device path (/dev/video2), URL (rtsp://…) "
                                                 "or a video file used as the camera (default 0)")
    g.add_argument("--loop", action="store_true", help="restart a video-file camera at its end")
    g.add_argument("--mic", nargs="?", const="", default=None, metavar="DEVICE",
                   help="voice mode: the microphone (default device, or a sounddevice index/name) drives the avatar")
    g.add_argument("--audio", metavar="FILE", help="voice mode from a media file, played in real time as a fake microphone")
    g.add_argument("--fps", type=float, default=None, help="output frame rate (default: the camera's; 25 in voice mode)")
    g.add_argument("--intensity", type=float, default=None,
                   help="voice mode: mouth movement relative to the portrait's face (default 1 = a typical speaker)")
    g.add_argument("--lip-lead", type=float, default=None, metavar="SECONDS",
                   help="voice mode: how far the lips run ahead of the sound (default 0.06; the output is delayed to match)")
    g = p.add_argument_group("sinks")
    g.add_argument("--record", metavar="OUT.mp4", help="record to a file (complete and labelled, even after Ctrl-C)")
    g.add_argument("--stream", action="append", default=[], metavar="URL",
                   help="stream to udp://HOST:PORT or tcp://HOST:PORT (MPEG-TS), rtmp://… (FLV) or rtsp://… (repeatable)")
    g.add_argument("--virtual-cam", nargs="?", const="", default=None, metavar="DEVICE",
                   help="send to a virtual camera (pyvirtualcam; optional device such as /dev/video10)")
    g.add_argument("--virtual-cam-backend", default=None, help="pyvirtualcam backend: v4l2loopback, obs or unitycapture")
    g.add_argument("--preview", action="store_true", help="show a preview window (needs a display)")
    g.add_argument("--no-overlay", action="store_true", help="no fps/latency figures in the preview")
    g = p.add_argument_group("session")
    g.add_argument("--max-frames", type=int, default=None, help="stop after N output frames")
    g.add_argument("--max-seconds", type=float, default=None, help="stop after S seconds")
    g.add_argument("--consent-check", type=float, default=5.0, metavar="S", help="re-check consent every S seconds (default 5)")
    g.add_argument("--smoothing", type=float, default=1.0, help="temporal smoothing strength (0 = off, 1 = default)")
    g.add_argument("--expression-scale", type=float, default=m.expression_scale, help="multiply expressions (1 = as driven)")
    g.add_argument("--max-turn", type=float, default=m.max_turn,
                   help="furthest head turn (yaw/pitch, degrees) away from the portrait's own pose; 30 keeps a "
                        f"three-quarter portrait from turning past frontal (default {m.max_turn:g} = no limit)")
    add_common_options(p, output_required=False, visible_label=True,  # live writes a file only when asked
                       label_help="the 'AI-generated' badge in the frames (no C2PA travels with a live stream; "
                                  "the invisible watermark is always there)")
    p.add_argument("-o", "--output", help="same as --record")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..live import LiveOptions, run_live
    from ..live.sinks import PreviewSink, RecordSink, StreamSink, VirtualCamSink
    from .animate import build_config, record_consent_if_asked, smoothing_configs

    if args.mic is not None and args.audio:
        raise ConfigError("give --mic or --audio, not both")
    if args.source is None and not args.avatar_id:
        raise ConfigError("live needs a PORTRAIT or --avatar ID (see `avatar avatars list`)")
    record = args.record or args.output
    if args.record and args.output and args.record != args.output:
        raise ConfigError("give the recording path once (--record or -o)")
    config = build_config(args, expression_scale=args.expression_scale, max_turn=args.max_turn,
                          **smoothing_configs(args.smoothing))
    # the live loop draws the badge itself (LiveOptions); the file path must not draw it twice
    config = dataclasses.replace(config, output=dataclasses.replace(config.output, visible_label=False))
    speech = {k: v for k, v in (("intensity", args.intensity), ("lead_s", args.lip_lead)) if v is not None}
    if speech:
        config = dataclasses.replace(config, speech=dataclasses.replace(config.speech, **speech))
    avatar_id = record_consent_if_asked(args, args.source, "live") if args.source else args.avatar_id

    sinks = []
    if record:
        sinks.append(RecordSink(record, crf=args.crf, overwrite=args.overwrite))
    sinks += [StreamSink(url) for url in args.stream]
    if args.virtual_cam is not None:
        sinks.append(VirtualCamSink(args.virtual_cam or None, args.virtual_cam_backend))
    if args.preview:
        sinks.append(PreviewSink(overlay=not args.no_overlay))
    if not sinks:
        raise ConfigError("live needs at least one output: --preview, --virtual-cam, --stream URL or --record OUT.mp4")
    audio = None
    if args.audio:
        audio = args.audio
    elif args.mic is not None:
        audio = f"mic:{args.mic}" if args.mic else "mic"

    tty = sys.stderr.isatty()

    def status(stats: dict[str, float]) -> None:
        if args.quiet:
            return
        line = (f"live: {stats['fps']:.1f} fps, latency {stats['latency_ms_median']:.0f}/"
                f"{stats['latency_ms_p95']:.0f} ms (median/p95), {int(stats['frames'])} frames"
                + (f", {int(stats['dropped'])} stale dropped" if "dropped" in stats else ""))
        print(("\r" + line + "   ") if tty else line, end="" if tty else "\n", file=sys.stderr, flush=True)

    report = run_live(config, args.source, avatar_id=avatar_id, camera=args.camera, sinks=sinks, audio=audio,
                      max_frames=args.max_frames, max_seconds=args.max_seconds, fps=args.fps,
                      loop_camera=args.loop, consent_check_s=args.consent_check,
                      options=LiveOptions(visible_label=args.visible_label), on_status=status)
    if tty and not args.quiet:
        print(file=sys.stderr)
    print(report.summary())
    for out in report.outputs:
        print(f"  → {out}")
    if report.stopped_by == "consent_revoked":
        print(f"avatar: error: {report.message}", file=sys.stderr)
        return 1
    return 0
