"""The Ray executor: long-lived actors that load the engine once and render many jobs.

``address=None`` starts a local Ray (or joins the one this process already started);
``address="HOST:PORT"`` / ``"ray://HOST:10001"`` / ``"auto"`` joins an existing cluster. An
address that does not answer fails within ``connect_timeout`` seconds with a clear error.

Each actor asks for ``num_cpus`` (and ``num_gpus`` when its jobs run a neural engine on
CUDA), takes one job at a time, and the batch keeps at most one job per actor in flight
(backpressure: the job file is streamed). Input files go through Ray's object store: each
distinct file is ``ray.put`` once by the batch process and copied once to each actor's local
disk, never pickled into every task. Inputs over ``ship_limit`` bytes (or all inputs, with
``ship_inputs=False``) must be on storage every node sees at the same path.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..errors import EngineUnavailable, InputError
from . import options as opts
from .feed import JobFeed, failed_record
from .jobs import Job
from .worker import Renderer, WorkerContext, localize

log = logging.getLogger(__name__)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise EngineUnavailable("--ray needs Ray: pip install 'avatar[batch]' (or pip install ray)") from None
    return ray


def _probe(address: str, timeout: float) -> None:
    """Fail fast when nothing listens at ``address`` (Ray's own connect retries for a long time)."""
    hostport = address.split("://", 1)[-1].split("/", 1)[0]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise InputError(f"Ray address {address!r} must be HOST:PORT (e.g. 10.0.0.5:6379), ray://HOST:10001 or auto")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise InputError(f"cannot reach a Ray cluster at {address}: {exc.strerror or exc}; "
                         "check the address (`ray status` on the head node prints it) and that the port is open") from None


def _handshake(address: str, timeout: float) -> None:
    """Connect once from a throw-away process: a port that accepts but never speaks Ray would
    block ``ray.init`` inside native code, where no Python-level timeout can interrupt it."""
    code = ("import sys, ray\n"
            "ray.init(address=sys.argv[1], log_to_driver=False, configure_logging=False)\n"
            "ray.shutdown()\n")
    try:
        proc = subprocess.run([sys.executable, "-c", code, address], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise InputError(f"the Ray cluster at {address} did not answer within {timeout:g} s "
                         "(is it a Ray head node? --ray-timeout sets the wait)") from None
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        reason = lines[-1] if lines else f"exit status {proc.returncode}"
        if "InvalidAuthToken" in proc.stderr or "Unauthenticated" in proc.stderr:
            reason = ("the cluster uses Ray's token authentication: set RAY_AUTH_MODE=token and the head node's "
                      "token (RAY_AUTH_TOKEN or ~/.ray/auth_token) here")
        raise InputError(f"cannot connect to the Ray cluster at {address}: {reason}")


@contextlib.contextmanager
def _deadline(seconds: float, what: str) -> Iterator[None]:
    """Raise InputError if the block runs longer than ``seconds`` (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGALRM"):
        yield
        return

    def expire(*_: object) -> None:
        raise InputError(f"{what} did not answer within {seconds:g} s")

    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def connect(address: str | None, num_cpus: int | None = None, timeout: float = 30.0) -> bool:
    """Connect this process to Ray; True when this call started it (then :func:`disconnect` stops it)."""
    ray = _import_ray()
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
    if address in (None, "", "local"):
        ray.init(num_cpus=num_cpus, include_dashboard=False, **kwargs)
        return True
    if address != "auto":
        _probe(address, min(timeout, 10.0))
    _handshake(address, timeout)
    try:
        with _deadline(timeout, f"the Ray cluster at {address}"):
            ray.init(address=address, **kwargs)
    except InputError:
        with contextlib.suppress(Exception):
            ray.shutdown()
        raise
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise InputError(f"cannot connect to the Ray cluster at {address}: {exc}") from None
    return True


def disconnect() -> None:
    _import_ray().shutdown()


class _RenderActor:
    """Ray actor body: one Renderer for the actor's life, inputs copied to local disk once."""

    def __init__(self, ctx: WorkerContext) -> None:
        self.renderer = Renderer(ctx)
        self.inputs: dict[str, str] = {}  # identity → local copy

    def render(self, job: Job, shipped: dict[str, tuple[str, str, Any]], attempt: int) -> dict[str, Any]:
        import ray

        local: dict[str, str] = {}
        for ident, (path, suffix, ref) in shipped.items():
            if ident not in self.inputs:
                import hashlib

                copy = self.renderer._tmp / f"in-{hashlib.sha256(ident.encode()).hexdigest()[:20]}{suffix}"
                copy.write_bytes(ray.get(ref))
                self.inputs[ident] = str(copy)
            local[path] = self.inputs[ident]
        return self.renderer.render(localize(job, local), attempt)

    def ping(self) -> str:
        return self.renderer.name


class RayPool:
    """Actors on a Ray cluster rendering jobs.

    workers: actors per resource class (CPU jobs, GPU jobs). num_cpus / num_gpus: what each
    actor asks for (num_gpus only for jobs whose engine runs on CUDA). ship_inputs: pass input
    files through the object store (False: every node reads them from shared storage).
    """

    def __init__(self, workers: int, ctx: WorkerContext, *, num_cpus: float = 1.0, num_gpus: float = 1.0,
                 ship_inputs: bool = True, ship_limit: int = 1 << 30, max_attempts: int = 2) -> None:
        self.ray = _import_ray()
        self.workers, self.ctx = workers, ctx
        self.num_cpus, self.num_gpus = num_cpus, num_gpus
        self.ship_inputs, self.ship_limit, self.max_attempts = ship_inputs, ship_limit, max_attempts
        self._actor_cls = self.ray.remote(_RenderActor)
        self._idle: dict[str, list[Any]] = {}
        self._busy: dict[Any, Any] = {}
        self._refs: OrderedDict[str, tuple[str, str, Any]] = OrderedDict()

    def _new_actor(self, cls: str) -> Any:
        gpus = self.num_gpus if cls == "gpu" else 0
        return self._actor_cls.options(num_cpus=self.num_cpus, num_gpus=gpus).remote(self.ctx)

    def _shipped(self, job: Job) -> dict[str, tuple[str, str, Any]]:
        """identity → (original path, suffix, ObjectRef) for the job's inputs; each file put once."""
        if not self.ship_inputs:
            return {}
        out = {}
        for path in job.input_paths:
            st = os.stat(path)
            if st.st_size > self.ship_limit or os.path.isdir(path):
                continue
            ident = f"{path}:{st.st_size}:{st.st_mtime_ns}"
            if ident not in self._refs:
                self._refs[ident] = (path, Path(path).suffix, self.ray.put(Path(path).read_bytes()))
                while len(self._refs) > 256:  # the oldest inputs leave the store once no task holds them
                    self._refs.popitem(last=False)
            self._refs.move_to_end(ident)
            out[ident] = self._refs[ident]
        return out

    def run(self, jobs: Iterator[Job], max_in_flight: int, on_lost: Callable[[Job], None] = lambda job: None
            ) -> Iterator[dict[str, Any]]:
        """Render ``jobs``; yields one result record per job as each finishes (any order)."""
        ray = self.ray
        feed = JobFeed(jobs, self.max_attempts, on_lost)
        inflight: dict[Any, tuple[Job, int, str, Any]] = {}
        while True:
            while len(inflight) < max_in_flight and (item := feed.take()) is not None:
                job, attempt = item
                cls = "gpu" if opts.wants_gpu(job.options) else "cpu"
                if cls == "gpu" and ray.cluster_resources().get("GPU", 0) < self.num_gpus:
                    # actors asking for GPUs the cluster lacks would wait for ever
                    yield failed_record(job, attempt, f"this job runs on CUDA but the Ray cluster has fewer "
                                        f"GPUs than the {self.num_gpus:g} each actor asks for (--ray-gpus); add GPU nodes or run it "
                                        "on the CPU (device cpu)", "EngineUnavailable")
                    continue
                if cls not in self._idle:
                    self._idle[cls] = [self._new_actor(cls) for _ in range(self.workers)]
                if not self._idle[cls]:  # every actor of this class is busy: wait for one
                    feed.put_back(job, attempt)
                    break
                actor = self._idle[cls].pop()
                ref = actor.render.remote(job, self._shipped(job), attempt)
                inflight[ref] = (job, attempt, cls, actor)
                self._busy[ref] = actor
            if not inflight:
                return
            done, _ = ray.wait(list(inflight), num_returns=1)
            for ref in done:
                job, attempt, cls, actor = inflight.pop(ref)
                self._busy.pop(ref, None)
                try:
                    yield ray.get(ref)
                except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError):
                    with contextlib.suppress(Exception):
                        ray.kill(actor)
                    actor = self._new_actor(cls)  # a fresh actor takes the dead one's place
                    if (rec := feed.lost(job, attempt)) is not None:
                        yield rec
                except ray.exceptions.RayError as exc:
                    yield failed_record(job, attempt, f"{type(exc).__name__}: {exc}", type(exc).__name__)
                self._idle[cls].append(actor)

    def close(self, abort: bool = False) -> None:
        """Kill this batch's actors (busy ones too when ``abort``: their jobs are not recorded)."""
        for actor in self._busy.values() if abort else ():
            with contextlib.suppress(Exception):
                self.ray.kill(actor)
        for actors in self._idle.values():
            for actor in actors:
                with contextlib.suppress(Exception):
                    self.ray.kill(actor)
        self._idle.clear()
        self._refs.clear()
