"""Job options are the CLI's flags: ``{"size": 256, "max_frames": 50}`` means ``--size 256 --max-frames 50``.

The ``animate`` / ``talk`` parsers themselves check names, types and choices, and the same
functions as the CLI (:func:`avatar.cli.animate.animate_config`, :func:`avatar.cli.talk.talk_config`)
turn them into an :class:`~avatar.config.AvatarConfig`, so a batch job renders exactly what
the matching command line would.
"""

from __future__ import annotations

import argparse
import functools
from typing import Any

from ..config import AvatarConfig
from ..errors import ConfigError

KINDS = ("animate", "talk")
# Flags that make no sense per job: they are job fields, batch-wide settings or interactive.
_NOT_OPTIONS = {"source", "driving", "audio", "text", "output", "example", "overwrite", "quiet", "func"}
# Recording consent belongs to `avatar clone`, before a batch, not to a line of a jobs file.
_CONSENT_FLAGS = {"consent", "subject", "granted_by"}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@functools.lru_cache(maxsize=None)
def _parser(kind: str) -> argparse.ArgumentParser:
    from ..cli import animate, talk

    root = argparse.ArgumentParser(prog="avatar", add_help=False)
    sub = root.add_subparsers(dest="command")
    (animate if kind == "animate" else talk).register(sub)
    return sub.choices[kind]


@functools.lru_cache(maxsize=None)
def _defaults(kind: str) -> dict[str, Any]:
    return vars(_parser(kind).parse_args(["SOURCE", "INPUT", "-o", "OUT.mp4"]))


@functools.lru_cache(maxsize=None)
def _flags(kind: str) -> dict[str, tuple[argparse.Action, bool]]:
    """Option name (underscores) → (argparse action, negated); ``no_best_frame`` is ``best_frame`` negated."""
    flags: dict[str, tuple[argparse.Action, bool]] = {}
    for action in _parser(kind)._actions:
        for opt in action.option_strings:
            if opt.startswith("--"):
                name = opt[2:].replace("-", "_")
                negated = isinstance(action, argparse.BooleanOptionalAction) and name == f"no_{action.dest}"
                flags[name] = (action, negated)
        flags.setdefault(action.dest, (action, False))
    return flags


def _is_flag(action: argparse.Action) -> bool:
    return isinstance(action, argparse.BooleanOptionalAction) or action.nargs == 0


def _coerce(name: str, value: Any, action: argparse.Action, negated: bool) -> Any:
    if _is_flag(action):
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            value = value.strip().lower() in _TRUE
        if not isinstance(value, bool):
            raise ConfigError(f"option {name!r} is a switch: give true or false, got {value!r}")
        if isinstance(action, argparse.BooleanOptionalAction):
            return value != negated
        return action.const if value else action.default
    if value is None:
        return None
    if isinstance(value, (bool, dict, list)):
        raise ConfigError(f"option {name!r} takes a single value, got {value!r}")
    convert = action.type or str
    try:
        out = convert(value if convert is not str else str(value))
    except (TypeError, ValueError):
        kind = getattr(convert, "__name__", "value")
        raise ConfigError(f"option {name!r} must be {'an' if kind == 'int' else 'a'} {kind}, got {value!r}") from None
    if action.choices is not None and out not in action.choices:
        raise ConfigError(f"option {name!r} must be one of {', '.join(map(str, action.choices))}, got {value!r}")
    return out


def normalize(kind: str, options: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    """Check a job's options against the ``kind`` command's flags; sorted (dest, value) pairs.

    Raises ConfigError naming the option for an unknown name, a wrong type or a bad choice.
    """
    if kind not in KINDS:
        raise ConfigError(f"kind must be 'animate' or 'talk', got {kind!r}")
    flags = _flags(kind)
    out: dict[str, Any] = {}
    for raw, value in options.items():
        name = str(raw).strip().lstrip("-").replace("-", "_")
        if name in _CONSENT_FLAGS:
            raise ConfigError(f"option {raw!r}: record consent before the batch with `avatar clone`, "
                              "then give the avatar id as the job's source (or its `avatar` option)")
        if name in _NOT_OPTIONS or name not in flags:
            known = sorted(n for n in flags if n not in _NOT_OPTIONS | _CONSENT_FLAGS and n != "help")
            raise ConfigError(f"unknown option {raw!r} for {kind} jobs; options are the `avatar {kind}` flags: "
                              + ", ".join(known))
        action, negated = flags[name]
        out[action.dest] = _coerce(str(raw), value, action, negated)
    return tuple(sorted(out.items()))


def namespace(kind: str, options: tuple[tuple[str, Any], ...]) -> argparse.Namespace:
    """The parsed command line of a job: the command's defaults overlaid with its options."""
    ns = argparse.Namespace(**_defaults(kind))
    for dest, value in options:
        setattr(ns, dest, value)
    return ns


def config_of(kind: str, options: tuple[tuple[str, Any], ...]) -> AvatarConfig:
    """The AvatarConfig the CLI would build for these options (raises ConfigError for bad values)."""
    from ..cli.animate import animate_config
    from ..cli.talk import talk_config

    ns = namespace(kind, options)
    return animate_config(ns) if kind == "animate" else talk_config(ns)


def wants_gpu(options: tuple[tuple[str, Any], ...]) -> bool:
    """Whether a job's engine runs on a GPU (a neural engine on CUDA, or onnxruntime with a GPU provider)."""
    opts = dict(options)
    if opts.get("engine", "warp") not in ("fomm", "onnx"):
        return False
    providers = str(opts.get("providers") or "").lower()
    return str(opts.get("device", "cpu")).startswith("cuda") or "cuda" in providers or "tensorrt" in providers
