"""``avatar demo``: serve the Gradio demo (clone with consent, animate, talk, live, verify)."""

from __future__ import annotations

import argparse

from .avatars import STORE_HELP


def register(subparsers) -> None:
    from ..config import FaceConfig, OutputConfig

    p = subparsers.add_parser("demo", help="launch the browser demo (Gradio)",
                              description="Serve the Gradio demo: record consent for a portrait, animate it with a "
                                          "driving video, make it talk, drive it live from the webcam, verify outputs.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=None, help="port (default: the first free one from 7860)")
    p.add_argument("--share", action="store_true",
                   help="also open a public gradio.live link (needs internet; needs --auth or --auth-file)")
    g = p.add_argument_group("sign-in (required beyond 127.0.0.1 / ::1 / localhost, or with --share)")
    g.add_argument("--auth", action="append", default=[], metavar="USER:PASS",
                   help="a user who may sign in (repeatable); each sees and uses only the avatars they create")
    g.add_argument("--auth-file", metavar="FILE", help="users from a file of user:password lines (must be chmod 600)")
    g.add_argument("--admin", action="append", default=[], metavar="USER",
                   help="a signed-in user who sees, uses and revokes every avatar (repeatable)")
    g.add_argument("--insecure-no-auth", action="store_true",
                   help="serve beyond this machine WITHOUT sign-in: every visitor sees, animates and revokes "
                        "every avatar")
    p.add_argument("--max-upload-mb", type=float, default=50.0, help="largest upload accepted (default 50)")
    p.add_argument("--max-seconds", type=float, default=60.0, help="longest driving video / audio (default 60)")
    p.add_argument("--concurrency", type=int, default=1, help="renders running at once (default 1)")
    p.add_argument("--live-fps", type=float, default=None,
                   help="webcam frames sent per second (default: what this machine sustains, measured at start-up)")
    p.add_argument("--size", type=int, default=FaceConfig().size, help="internal crop size in pixels")
    p.add_argument("--max-size", type=int, default=OutputConfig().max_size, help="cap on the output's longest side")
    p.add_argument("--device", default="cpu", help="cpu, cuda or mps (neural engines)")
    p.add_argument("--checkpoint", help="FOMM checkpoint: offers the fomm engine (or $AVATAR_FOMM_CHECKPOINT)")
    p.add_argument("--model-dir", help="`avatar export onnx` folder: offers the onnx engine (or $AVATAR_ONNX_MODEL_DIR)")
    p.add_argument("--store", default=None, help=STORE_HELP)
    p.set_defaults(func=run)


def settings_from_args(args: argparse.Namespace):
    """DemoSettings from the parsed flags."""
    from pathlib import Path

    from ..config import AvatarConfig, FaceConfig, OutputConfig, RenderConfig
    from ..demo.settings import DemoSettings

    config = AvatarConfig(face=FaceConfig(size=args.size), output=OutputConfig(max_size=args.max_size),
                          render=RenderConfig(device=args.device, checkpoint=args.checkpoint, model_dir=args.model_dir))
    live_fps = args.live_fps
    if live_fps is None:
        from ..demo.live import sustainable_fps

        live_fps = round(sustainable_fps(config), 1)
    return DemoSettings(config=config, store_path=Path(args.store) if args.store else None,
                        max_upload_mb=args.max_upload_mb, max_seconds=args.max_seconds, concurrency=args.concurrency,
                        live_fps=live_fps)


def run(args: argparse.Namespace) -> int:
    import signal
    import sys

    from ..demo.settings import check_exposure, collect_auth
    from ..errors import EngineUnavailable

    try:
        import gradio  # noqa: F401
    except ImportError:
        raise EngineUnavailable('the demo needs gradio, which is missing from this environment: '
                                'pip install "gradio>=6,<7"') from None

    auth = collect_auth(args.auth, args.auth_file)
    check_exposure(args.host, args.share, auth, args.insecure_no_auth)  # before any slow start-up work
    from ..demo.app import close_demo, launch

    # SIGTERM (service managers, `kill`) ends like Ctrl-C, so the temp folder is removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    demo = launch(settings_from_args(args), host=args.host, port=args.port, share=args.share, block=False,
                  auth=auth, admins=args.admin, insecure_no_auth=args.insecure_no_auth)
    try:
        demo.block_thread()
    finally:
        close_demo(demo)
    return 0
