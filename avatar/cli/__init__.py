"""The ``avatar`` command line. Each sub-command lives in its own module in this package.

A command module defines ``register(subparsers)``, which adds its parser and sets
``func=run`` where ``run(args) -> int``. Modules import heavy libraries inside ``run``
so that ``avatar --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import re
import sys
import threading

from ..errors import AvatarError

COMMANDS = ("animate", "talk", "batch", "clone", "avatars", "verify", "weights", "export", "demo", "live")


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
    from .helpfmt import apply

    apply(parser)  # every option's --help shows its default
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


# Lines that mediapipe / TFLite's C++ code prints straight to fd 2 at graph start-up (their own
# log-level variables do not silence them); errors (E…) still pass.
_NATIVE_NOISE = re.compile(rb"^(?:[IW]\d{4} \d\d:\d\d:\d\d|INFO: Created TensorFlow Lite|"
                           rb"WARNING: All log messages before absl::InitializeLog)")


def _filter_native_stderr() -> None:
    """Route fd 2 through a filter that drops native start-up chatter; Python's own stderr keeps
    writing to the terminal directly, so no message of ours can be delayed or lost."""
    try:
        real = os.dup(2)
        read_fd, write_fd = os.pipe()
    except OSError:
        return
    sys.stderr.flush()
    sys.stderr = open(real, "w", buffering=1, encoding=sys.stderr.encoding or "utf-8",  # noqa: SIM115
                      errors="backslashreplace", closefd=False)
    os.dup2(write_fd, 2)
    os.close(write_fd)

    def pump() -> None:
        with os.fdopen(read_fd, "rb") as src:
            for line in src:
                if not _NATIVE_NOISE.match(line):
                    os.write(real, line)

    threading.Thread(target=pump, name="native-stderr-filter", daemon=True).start()


def console_main() -> int:
    """The ``avatar`` console script: :func:`main` with native log chatter filtered (unless -v or
    ``AVATAR_NATIVE_LOGS=1``)."""
    argv = sys.argv[1:]
    if not os.environ.get("AVATAR_NATIVE_LOGS") and "-v" not in argv and "--verbose" not in argv:
        _filter_native_stderr()
    return main(argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(console_main())
