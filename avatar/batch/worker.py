"""Renders jobs inside one worker (a pool process or a Ray actor): engines load once, inputs are cached.

Every job goes through :class:`~avatar.pipeline.Animator` exactly like ``avatar animate`` /
``avatar talk``: the same consent gate (a job without consent fails alone, with the reason)
and the same labels (metadata, C2PA, watermark). A job's failure is returned as a result,
never raised, so one bad job cannot stop the batch.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import sys
import tempfile
import time
import traceback
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import AvatarError
from .jobs import Job

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerContext:
    """What every worker needs to know about the batch (small and picklable).

    out_dir: local folder or fsspec URL. upload_in_worker: remote outputs are uploaded by the
    worker (Ray cluster) rather than by the batch process (local pool, local Ray).
    env: AVATAR_HOME / AVATAR_CONSENT_POLICY as the batch process sees them.
    consent_store: the consent database every worker checks (a path on shared storage for a fleet).
    consent_snapshot: check consent against a local copy of that database, refreshed whenever
    the shared file changes (nodes of a cluster: SQLite's WAL must not be shared over a network
    filesystem). threads: CPU threads per worker for torch / OpenCV (0: leave as they are).
    """

    out_dir: str
    local_out: bool = True
    upload_in_worker: bool = False
    tmp_root: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    consent_store: str | None = None
    consent_snapshot: bool = False
    threads: int = 0
    cache_bytes: int = 512 << 20


def capture_env() -> tuple[tuple[str, str], ...]:
    """The environment settings that change what a worker renders or where it checks consent."""
    return tuple((k, os.environ[k]) for k in ("AVATAR_HOME", "AVATAR_CONSENT_POLICY") if k in os.environ)


def _peak_mib() -> float | None:
    """This worker's peak resident memory so far (Linux VmHWM), for sizing workers per node."""
    try:
        with open("/proc/self/status") as fh:
            kib = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
    except (OSError, StopIteration, ValueError):
        return None
    return round(kib / 1024, 1)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class Renderer:
    """One worker's renderer: Animators cached per config, driving clips cached per file."""

    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        for k, v in ctx.env:
            os.environ[k] = v
        self._limit_threads(ctx.threads)
        from .shared_inputs import TrackCache

        self.cache = TrackCache(ctx.cache_bytes)
        self._animators: OrderedDict[Any, Any] = OrderedDict()
        self._store = None
        self._stamp: tuple = ()
        self._snapshots = 0
        self._tmp = Path(tempfile.mkdtemp(prefix=f"w{os.getpid()}-", dir=ctx.tmp_root))
        self.name = f"{socket.gethostname()}:{os.getpid()}"

    @staticmethod
    def _limit_threads(n: int) -> None:
        # Several workers on one machine: each gets its share of cores instead of all of them.
        if n <= 0:
            return
        from ..media.video import CODEC_THREADS_ENV

        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", CODEC_THREADS_ENV):
            os.environ[var] = str(n)
        import cv2

        cv2.setNumThreads(n)
        # torch only where an engine already brought it in: importing it costs a worker ~0.9 s,
        # and the default engine never needs it (a later import reads OMP_NUM_THREADS above).
        if (torch := sys.modules.get("torch")) is not None:
            torch.set_num_threads(n)

    def _consent_store(self) -> Any:
        from ..output.consent import ConsentStore

        if self.ctx.consent_snapshot:
            return self._snapshot_store()
        if self._store is None:
            self._store = ConsentStore(self.ctx.consent_store)
        return self._store

    def _snapshot_store(self) -> Any:
        """A local copy of the shared consent store, copied again when the shared one changed
        (checked before every job, so a revocation stops the next job of every worker)."""
        import sqlite3

        from ..output.consent import ConsentStore, default_store_path

        shared = Path(self.ctx.consent_store) if self.ctx.consent_store else default_store_path()

        def stamp() -> tuple:
            files = (shared, Path(f"{shared}-wal"))
            return tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files if p.exists())

        if self._store is not None and stamp() == self._stamp:
            return self._store
        self._snapshots += 1
        folder = self._tmp / f"consent-{self._snapshots}"  # the previous copy stays with the Animators using it
        folder.mkdir(mode=0o700)
        local = folder / "avatars.sqlite3"
        if not shared.is_file():
            from ..errors import ConsentError

            raise ConsentError(f"the consent store {shared} does not exist on {self.name}; "
                               "put it on storage every node mounts and pass --consent-store")
        src = sqlite3.connect(f"file:{shared}?mode=ro", uri=True)
        dst = sqlite3.connect(local)
        try:
            src.backup(dst)  # a consistent copy even while someone writes
        finally:
            src.close()
            dst.close()
        os.chmod(local, 0o600)
        sources = folder / "sources"
        if not sources.exists() and (shared.parent / "sources").is_dir():
            sources.symlink_to(shared.parent / "sources")  # avatar-id sources are read from the shared copy
        self._store, self._stamp = ConsentStore(local), stamp()  # after the copy: reading may touch the -wal
        import shutil

        shutil.rmtree(self._tmp / f"consent-{self._snapshots - 2}", ignore_errors=True)
        return self._store

    def animator(self, config: Any) -> Any:
        """The cached Animator for ``config`` (its engine loads once per worker)."""
        from .shared_inputs import CachingAnimator

        store = self._consent_store()
        if self.ctx.threads > 0 and config.render.threads == 0:  # frames rendered at once: this worker's share
            config = dataclasses.replace(config, render=dataclasses.replace(config.render, threads=self.ctx.threads))
        anim = self._animators.get(config)
        if anim is None:
            anim = CachingAnimator(config, consent_store=store, cache=self.cache)
            self._animators[config] = anim
            while len(self._animators) > 4:
                self._animators.popitem(last=False)
        else:
            self._animators.move_to_end(config)
            anim.engine.configure(config.motion)
            anim._store = store  # a refreshed consent snapshot
        return anim

    def render(self, job: Job, attempt: int = 1) -> dict[str, Any]:
        """Render one job; the result record (status "done" or "failed" with the reason)."""
        t0 = time.perf_counter()
        rec: dict[str, Any] = {**job.to_record(), "attempt": attempt, "worker": self.name, "started": _now()}
        local_tmp = None
        try:
            if self.ctx.local_out:
                path = Path(self.ctx.out_dir) / job.output
            else:
                local_tmp = self._tmp / f"{job.key[:16]}{Path(job.output).suffix}"
                path = local_tmp
            result = self._render(job, path)
            from ..media.image import sha256_file

            rec.update(status="done", frames=result.frames, fps=result.fps, sha256=sha256_file(path),
                       size=path.stat().st_size, consent_id=result.provenance.get("consent_id"))
            if local_tmp is not None and self.ctx.upload_in_worker:
                from .outputs import OutputDir

                rec["path"] = OutputDir(self.ctx.out_dir).upload(local_tmp, job.output)
                local_tmp.unlink()
            elif local_tmp is not None:
                rec["local_tmp"] = str(local_tmp)  # the batch process uploads it
            else:
                rec["path"] = str(path)
        except AvatarError as exc:
            rec.update(status="failed", error=str(exc), error_type=type(exc).__name__)
        except Exception as exc:  # noqa: BLE001 - one broken job must not stop the batch
            log.debug("job %s failed", job.where, exc_info=True)
            tb = traceback.extract_tb(exc.__traceback__)[-1:]
            at = f" at {Path(tb[0].filename).name}:{tb[0].lineno}" if tb else ""
            rec.update(status="failed", error=f"{type(exc).__name__}: {exc}{at}", error_type=type(exc).__name__)
        if rec["status"] == "failed" and local_tmp is not None and local_tmp.exists():
            local_tmp.unlink()
        rec.update(seconds=round(time.perf_counter() - t0, 3), finished=_now(), worker_peak_mib=_peak_mib())
        return rec

    def _render(self, job: Job, path: Path) -> Any:
        from ..cli.talk import read_transcript
        from . import options as opts

        ns = opts.namespace(job.kind, job.options)
        config = opts.config_of(job.kind, job.options)
        anim = self.animator(config)
        source: Any = job.source
        avatar_id = job.avatar_id
        if avatar_id is not None and source == avatar_id:
            source = self._consent_store().source_image(avatar_id)
        if job.kind == "animate":
            return anim.animate(source, job.driving, path, avatar_id=avatar_id, progress=False, overwrite=True)
        return anim.talk(source, path, audio=job.audio, text=job.text, transcript=read_transcript(ns.transcript),
                         head_video=ns.head_from, avatar_id=avatar_id, progress=False, overwrite=True)


def localize(job: Job, local: dict[str, str]) -> Job:
    """``job`` with its input paths replaced by local copies (``local``: original path → copy)."""
    if not local:
        return job
    sub = lambda v: local.get(v, v) if isinstance(v, str) else v  # noqa: E731
    return dataclasses.replace(job, source=sub(job.source), driving=sub(job.driving), audio=sub(job.audio),
                               options=tuple((k, sub(v)) for k, v in job.options))


# -- process-pool entry points (one Renderer per worker process) ---------------------------
_RENDERER: Renderer | None = None


def init_process(ctx: WorkerContext) -> None:
    """Pool initializer: build this process's Renderer (engines load lazily, once)."""
    global _RENDERER
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the batch process; it ends the pool
    _RENDERER = Renderer(ctx)


def render_in_process(job: Job, attempt: int) -> dict[str, Any]:
    assert _RENDERER is not None, "init_process() first"
    return _RENDERER.render(job, attempt)
