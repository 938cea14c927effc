"""``avatar verify FILE``: report metadata tags, C2PA validity and the invisible watermark."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("verify", help="check an output's provenance (tags, C2PA, watermark)")
    p.add_argument("files", nargs="+", type=Path, metavar="PATH", help="MP4/MOV/WebM video, PNG/JPEG/GIF/WebP image or animation, or a PNG sequence folder")
    p.add_argument("--max-frames", type=int, default=150, help="frames to read for the watermark (default 150)")
    p.add_argument("--trust", type=Path, default=None, help="PEM trust anchors (default: the local avatar CA)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..output.verify import format_report, verify

    from ..errors import InputError

    try:
        trust = args.trust.read_bytes() if args.trust else None
    except OSError as exc:
        raise InputError(f"cannot read the trust anchors {args.trust} ({exc.strerror}); give a PEM file") from None
    worst = 0
    for f in args.files:
        report = verify(f, max_frames=args.max_frames, trust_pem=trust)
        print(format_report(report))
        if report.c2pa_state == "Invalid":
            worst = max(worst, 3)
        elif not report.labelled_ai:
            worst = max(worst, 2)
    return worst
