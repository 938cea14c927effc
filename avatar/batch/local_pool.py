"""The default executor: a pool of worker processes on this machine.

Workers are spawned (not forked: mediapipe and torch keep threads that fork would copy
half-alive), each loads its engines once and keeps its input cache for the whole batch. At
most ``max_in_flight`` jobs are submitted at a time, so a 100 000-line job file is streamed,
never held. A worker that dies mid-job (kill -9, out of memory) breaks the pool: the pool is
rebuilt and the jobs it held are retried once, then reported as failed.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
from collections.abc import Callable, Iterator
from typing import Any

from .feed import JobFeed, failed_record
from .jobs import Job
from .worker import WorkerContext, init_process, render_in_process

class LocalPool:
    """``workers`` processes rendering jobs; ``on_lost(job)`` runs for each job whose worker died."""

    def __init__(self, workers: int, ctx: WorkerContext, max_attempts: int = 2) -> None:
        self.workers, self.ctx, self.max_attempts = workers, ctx, max_attempts
        self._pool: cf.ProcessPoolExecutor | None = None

    def _start(self) -> cf.ProcessPoolExecutor:
        self._pool = cf.ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=init_process, initargs=(self.ctx,))
        return self._pool

    def run(self, jobs: Iterator[Job], max_in_flight: int, on_lost: Callable[[Job], None] = lambda job: None
            ) -> Iterator[dict[str, Any]]:
        """Render ``jobs``; yields one result record per job as each finishes (any order)."""
        pool = self._pool or self._start()
        feed = JobFeed(jobs, self.max_attempts, on_lost)
        inflight: dict[cf.Future, tuple[Job, int]] = {}
        while True:
            while len(inflight) < max_in_flight and (item := feed.take()) is not None:
                inflight[pool.submit(render_in_process, *item)] = item
            if not inflight:
                return
            done, _ = cf.wait(inflight, return_when=cf.FIRST_COMPLETED)
            broken = any(isinstance(f.exception(), cf.process.BrokenProcessPool) for f in done)
            if broken:  # the pool fails every job it still holds: collect them all
                done, _ = cf.wait(inflight)
            for fut in done:
                job, attempt = inflight.pop(fut)
                exc = fut.exception()
                if exc is None:
                    yield fut.result()
                elif not isinstance(exc, cf.process.BrokenProcessPool):
                    yield failed_record(job, attempt, f"{type(exc).__name__}: {exc}", type(exc).__name__)
                elif (rec := feed.lost(job, attempt)) is not None:
                    yield rec
            if broken:
                pool.shutdown(wait=True, cancel_futures=True)
                pool = self._start()

    def close(self, abort: bool = False) -> None:
        """Stop the workers: after their current jobs, or at once (``abort``: Ctrl-C, an error)."""
        if self._pool is None:
            return
        if abort:
            processes = list((getattr(self._pool, "_processes", None) or {}).values())
            self._pool.shutdown(wait=False, cancel_futures=True)
            for proc in processes:
                proc.terminate()
            for proc in processes:
                proc.join(10)
        else:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self._pool = None
