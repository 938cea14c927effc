"""The ``avatar`` command line. Each sub-command lives in its own module in this package.

A command module defines ``register(subparsers)``, which adds its parser and sets
``func=run`` where ``run(args) -> int``. Modules import heavy libraries inside ``run``
so that ``avatar --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from ..errors import AvatarError

COMMANDS = ("animate", "talk", "clone", "avatars", "verify", "weights", "export", "demo", "live")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(prog="avatar", description="Animate a portrait from a driving video, a webcam or speech.")
    parser.add_argument("--version", action="version", version=f"avatar {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details (and tracebacks on errors)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__name__}.{name}":
                continue  # command not part of this build
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except AvatarError as exc:
        if args.verbose:
            raise
        print(f"avatar: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("avatar: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
