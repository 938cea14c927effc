"""Settings of the Gradio demo: one frozen dataclass, built from CLI flags or by tests."""

from __future__ import annotations

import ipaddress
import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..config import AvatarConfig
from ..errors import ConfigError

FOMM_ENV = "AVATAR_FOMM_CHECKPOINT"
ONNX_ENV = "AVATAR_ONNX_MODEL_DIR"


@dataclass(frozen=True, slots=True)
class DemoSettings:
    """How the demo runs and what it accepts.

    config: base settings of every render (each request derives its own with ``replace``).
    store_path: consent database; None = the user's default store.
    max_upload_mb: largest upload accepted (Gradio refuses bigger files before they arrive).
    max_seconds: longest driving video / audio accepted, probed before any work.
    concurrency: renders running at once (all tabs share one limit); queue_size: waiting jobs.
    live_fps: webcam frames sent per second to the Live tab; live_seconds: one session's limit.
    sign_in: visitors sign in (Gradio auth): each sees, uses and revokes only the avatars they
    created; ``admins`` (user names) see all. Without sign-in the one visitor is the local
    operator, who sees every avatar (as the CLI does).
    """

    config: AvatarConfig = field(default_factory=AvatarConfig)
    store_path: Path | None = None
    max_upload_mb: float = 50.0
    max_seconds: float = 60.0
    concurrency: int = 1
    queue_size: int = 16
    live_fps: float = 10.0
    live_seconds: int = 300
    cache_minutes: int = 60
    sign_in: bool = False
    admins: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not 0 < self.max_upload_mb <= 10_000:
            raise ConfigError(f"max_upload_mb must be in (0, 10000], got {self.max_upload_mb}")
        if not 0 < self.max_seconds <= 3600:
            raise ConfigError(f"max_seconds must be in (0, 3600], got {self.max_seconds}")
        if not 1 <= self.concurrency <= 64:
            raise ConfigError(f"concurrency must be in [1, 64], got {self.concurrency}")
        if not 1 <= self.queue_size <= 10_000:
            raise ConfigError(f"queue_size must be in [1, 10000], got {self.queue_size}")
        if not 1 <= self.live_fps <= 60:
            raise ConfigError(f"live_fps must be in [1, 60], got {self.live_fps}")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


def available_engines(config: AvatarConfig) -> list[str]:
    """Engines the Animate tab offers: warp always; fomm / onnx only when their weights are configured.

    Weights come from ``config.render`` (checkpoint / model_dir) or ``$AVATAR_FOMM_CHECKPOINT`` /
    ``$AVATAR_ONNX_MODEL_DIR``.
    """
    engines = ["warp"]
    if _fomm_checkpoint(config):
        engines.append("fomm")
    if _onnx_model_dir(config):
        engines.append("onnx")
    return engines


def _fomm_checkpoint(config: AvatarConfig) -> str | None:
    path = config.render.checkpoint or os.environ.get(FOMM_ENV)
    return path if path and Path(path).is_file() else None


def _onnx_model_dir(config: AvatarConfig) -> str | None:
    path = config.render.model_dir or os.environ.get(ONNX_ENV)
    return path if path and Path(path).is_dir() else None


def engine_render_config(config: AvatarConfig, engine: str):
    """The RenderConfig for ``engine`` with its configured weights filled in."""
    from dataclasses import replace

    if engine not in available_engines(config):
        raise ConfigError(f"engine {engine!r} is not available in this demo; choose one of "
                          f"{', '.join(available_engines(config))} (fomm/onnx need their weights configured)")
    if engine == "fomm":
        return replace(config.render, engine="fomm", checkpoint=_fomm_checkpoint(config))
    if engine == "onnx":
        return replace(config.render, engine="onnx", model_dir=_onnx_model_dir(config))
    return replace(config.render, engine="warp")


# -- who may reach the demo ---------------------------------------------------------------

AuthCallback = Callable[[str, str], bool]
Credentials = list[tuple[str, str]]


def is_loopback(host: str | None) -> bool:
    """``host`` is reachable from this machine only (127.0.0.0/8, ::1, localhost)."""
    if host is None:
        return False
    host = host.strip().strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(host: str | None, share: bool, auth: object, insecure_no_auth: bool = False) -> None:
    """Refuse to serve faces beyond this machine without sign-in.

    Raises:
        ConfigError: ``host`` is not loopback (or ``share``) and there is no ``auth`` and no explicit
            ``insecure_no_auth``.
    """
    if auth or insecure_no_auth or (is_loopback(host) and not share):
        return
    where = "a public gradio.live link (--share)" if share else f"{host} (beyond this machine)"
    raise ConfigError(f"refusing to serve the demo on {where} without sign-in: anyone reaching it could list, "
                      "animate and revoke every consented face. Add --auth USER:PASS (repeatable) or --auth-file "
                      "FILE (lines user:pass, chmod 600), or pass --insecure-no-auth if you really mean it")


def parse_credential(text: str, where: str = "--auth") -> tuple[str, str]:
    """``"user:password"`` → (user, password); user names cannot contain ``:``."""
    user, sep, password = text.partition(":")
    user = user.strip()
    if not sep or not user or not password:
        raise ConfigError(f"{where} needs USER:PASSWORD (both non-empty), got {text.split(':')[0]!r}:…")
    return user, password


def read_auth_file(path: str | os.PathLike) -> Credentials:
    """Credentials from a file of ``user:password`` lines (blank lines and ``#`` comments skipped).

    The file must be private (no group/other access), like an SSH key.
    """
    p = Path(path)
    try:
        mode = stat.S_IMODE(p.stat().st_mode)
        lines = p.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read the auth file {p} ({exc.strerror or exc})") from None
    if mode & 0o077:
        raise ConfigError(f"the auth file {p} holds passwords but others can read it (mode {mode:o}); "
                          f"run `chmod 600 {p}`")
    creds = [parse_credential(line.strip(), f"{p} line {i}") for i, line in enumerate(lines, 1)
             if line.strip() and not line.lstrip().startswith("#")]
    if not creds:
        raise ConfigError(f"the auth file {p} has no user:password lines")
    return creds


def collect_auth(pairs: Sequence[str] = (), auth_file: str | os.PathLike | None = None) -> Credentials | None:
    """The demo's credentials from ``--auth`` values and ``--auth-file``; None when neither is given."""
    creds = [parse_credential(p) for p in pairs]
    if auth_file:
        creds += read_auth_file(auth_file)
    users = [u for u, _ in creds]
    dupes = sorted({u for u in users if users.count(u) > 1})
    if dupes:
        raise ConfigError(f"user {dupes[0]!r} is given more than once in --auth / --auth-file")
    return creds or None
