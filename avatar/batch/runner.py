"""Runs a batch: validate every job, skip finished ones, render the rest on an executor, record results.

Order of events: the whole job file is validated first (nothing runs if a line is bad); the
output folder is checked for writing; the manifest is locked and read back; then jobs stream
through the executor with a bounded number in flight, and each result is appended to the
manifest the moment it arrives.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .jobs import Job, JobSource
from .manifest import Entry, Manifest
from .outputs import OutputDir
from .schedule import longest_first
from .worker import WorkerContext, capture_env

log = logging.getLogger(__name__)
# Jobs looked ahead to hand out the longest first (see schedule.py): small records, bounded.
_WINDOW = 256


@dataclass
class BatchSummary:
    """What a batch did. ``failures``: (where, output, reason) of the first 50 failed jobs."""

    total: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0
    failed_before: int = 0
    frames: int = 0
    seconds: float = 0.0
    to_run: int = 0
    manifest: str = ""
    dry_run: bool = False
    failures: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def jobs_per_s(self) -> float:
        return (self.done + self.failed) / self.seconds if self.seconds > 0 else 0.0

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def text(self) -> str:
        if self.dry_run:
            return (f"dry run: {self.total} valid jobs; would render {self.to_run}, skip {self.skipped} already done"
                    + (f", skip {self.failed_before} that failed before (--retry-failed retries them)"
                       if self.failed_before else ""))
        lines = [f"{self.total} jobs: {self.done} rendered, {self.skipped} already done, {self.failed} failed"
                 + (f", {self.failed_before} failed before and not retried (--retry-failed)" if self.failed_before else "")
                 + f" in {self.seconds:.1f} s ({self.jobs_per_s:.2f} jobs/s, {self.frames_per_s:.1f} frames/s)",
                 f"manifest: {self.manifest}"]
        for where, output, reason in self.failures[:10]:
            lines.append(f"  failed: {where} ({output}): {reason}")
        if self.failed > 10:
            lines.append(f"  ... and {self.failed - 10} more failures (see the manifest)")
        return "\n".join(lines)


def _decide(job: Job, entry: Entry | None, out: OutputDir, retry_failed: bool) -> str:
    """"run", "skip" (done, output matches) or "failed-before"."""
    if entry is None or entry.key != job.key:
        return "run"
    if entry.status == "done":
        size = out.size(job.output)
        return "skip" if size is not None and (entry.size is None or size == entry.size) else "run"
    if entry.status == "failed" and not retry_failed:
        return "failed-before"
    return "run"


def _executor(ray: str | bool | None, workers: int, ctx: WorkerContext, **ray_options: Any) -> Any:
    if ray is None or ray is False:
        from .local_pool import LocalPool

        return LocalPool(workers, ctx)
    from .ray_pool import RayPool

    return RayPool(workers, ctx, **ray_options)


def run(jobs: str | os.PathLike[str] | Iterable[dict[str, Any]], out_dir: str | os.PathLike[str], *,
        workers: int | None = None, ray: str | bool | None = None, manifest: str | os.PathLike[str] | None = None,
        retry_failed: bool = False, dry_run: bool = False, progress: bool = True, base_dir: str | Path | None = None,
        consent_store: str | os.PathLike[str] | None = None, max_in_flight: int | None = None,
        ray_timeout: float = 30.0, ray_num_cpus: float = 1.0, ray_num_gpus: float = 1.0,
        ray_ship_inputs: bool = True, threads_per_worker: int | None = None) -> BatchSummary:
    """Render a batch of ``animate`` / ``talk`` jobs into ``out_dir`` (a folder or an fsspec URL).

    jobs: a JSONL or CSV file (see :mod:`avatar.batch.jobs`) or an iterable of job dicts.
    workers: processes (local pool) or actors per resource class (Ray); default: the CPU count.
    ray: None/False = local process pool; True or "local" = a local Ray; "HOST:PORT", "ray://…"
        or "auto" = an existing cluster (unreachable → InputError within ``ray_timeout`` s).
    manifest: results JSONL (default ``out_dir/manifest.jsonl``, or ``JOBS.manifest.jsonl``
        beside the job file when ``out_dir`` is a URL).
    retry_failed: re-render jobs the manifest lists as failed (otherwise they are skipped).
    dry_run: validate and plan only; nothing is rendered or written.
    consent_store: the consent database every worker checks (default: the user's).
    max_in_flight: jobs submitted at once (default 2 per worker on the local pool, 1 per actor on Ray).
    ray_num_cpus / ray_num_gpus: what each Ray actor asks for (GPUs only for jobs that run fomm/onnx on CUDA).
    ray_ship_inputs: send input files through Ray's object store (False: they are on shared storage).
    threads_per_worker: CPU threads each worker renders with (default: its share of this machine's
        cores on the local pool or a local Ray, ``ray_num_cpus`` on a cluster).

    Raises InputError / ConfigError before anything runs for a bad job file, an unwritable
    output folder or an unreachable Ray cluster. A job that fails (no consent, bad input) is
    recorded as failed and the others go on.
    """
    workers = int(workers or os.cpu_count() or 1)
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    if threads_per_worker is not None and threads_per_worker < 1:
        raise ConfigError(f"threads_per_worker must be >= 1, got {threads_per_worker}")
    source = JobSource(jobs, base_dir)
    out = OutputDir(out_dir)
    manifest_path = Path(manifest) if manifest else (
        out.root / "manifest.jsonl" if out.local else
        Path(f"{source.path}.manifest.jsonl") if source.path else Path("batch-manifest.jsonl"))
    summary = BatchSummary(manifest=str(manifest_path), dry_run=dry_run)
    summary.total = source.validate()
    index = Manifest(manifest_path).load()
    for job in source.jobs():
        decision = _decide(job, index.get(job.output), out, retry_failed)
        summary.to_run += decision == "run"
        summary.skipped += decision == "skip"
        summary.failed_before += decision == "failed-before"
    if dry_run or summary.to_run == 0:
        return summary
    out.check_writable()
    with Manifest(manifest_path) as book:
        return _render(source, out, book, index, summary, workers=workers, ray=ray, retry_failed=retry_failed,
                       progress=progress, consent_store=consent_store, max_in_flight=max_in_flight,
                       ray_timeout=ray_timeout, ray_options={"num_cpus": ray_num_cpus, "num_gpus": ray_num_gpus,
                                                               "ship_inputs": ray_ship_inputs},
                       threads_per_worker=threads_per_worker)


def _render(source: JobSource, out: OutputDir, book: Manifest, index: dict[str, Entry], summary: BatchSummary, *,
            workers: int, ray: str | bool | None, retry_failed: bool, progress: bool, consent_store: Any,
            max_in_flight: int | None, ray_timeout: float, ray_options: dict[str, Any],
            threads_per_worker: int | None = None) -> BatchSummary:
    from tqdm.auto import tqdm

    removed = out.remove_temps()  # leftovers of a batch killed mid-write (we hold the manifest lock)
    if removed:
        log.info("removed %d temp file(s) left by an interrupted batch", removed)
    use_ray = ray not in (None, False)
    remote_cluster = use_ray and ray not in (True, "local")
    started_ray = False
    if use_ray:
        from .ray_pool import connect

        cpus = int(workers * ray_options["num_cpus"] + 0.999)
        started_ray = connect(str(ray) if remote_cluster else None, num_cpus=None if remote_cluster else cpus,
                              timeout=ray_timeout)
    tmp_root = tempfile.mkdtemp(prefix="avatar-batch-")
    threads = threads_per_worker or (int(ray_options["num_cpus"]) if remote_cluster else (os.cpu_count() or 1) // workers)
    ctx = WorkerContext(out_dir=str(out.root) if out.local else out.url, local_out=out.local,
                        upload_in_worker=remote_cluster and not out.local,
                        tmp_root=None if remote_cluster else tmp_root, env=capture_env(),
                        consent_store=str(consent_store) if consent_store else None, consent_snapshot=remote_cluster,
                        threads=max(1, threads))
    in_flight = max_in_flight or (workers if use_ray else 2 * workers)

    def todo() -> Iterator[Job]:
        for job in source.jobs():
            if _decide(job, index.get(job.output), out, retry_failed) == "run":
                yield job

    executor = None
    bar = tqdm(total=summary.to_run, unit="job", desc="batch", disable=not progress, file=sys.stderr)
    t0 = time.perf_counter()
    finished = False
    try:
        executor = _executor(ray, workers, ctx, **(ray_options if use_ray else {}))
        ordered = longest_first(todo(), max(_WINDOW, 4 * in_flight))
        for rec in executor.run(ordered, in_flight, on_lost=lambda job: out.remove_temps(job.output)):
            rec = _finish(rec, out)
            book.append(rec)
            if rec["status"] == "done":
                summary.done += 1
                summary.frames += int(rec.get("frames") or 0)
            else:
                summary.failed += 1
                if len(summary.failures) < 50:
                    summary.failures.append((source.name + f" line {rec['line']}", rec["output"], rec.get("error", "")))
            summary.seconds = time.perf_counter() - t0
            bar.set_postfix(done=summary.done, failed=summary.failed, fps=f"{summary.frames_per_s:.1f}", refresh=False)
            bar.update(1)
        finished = True
    finally:
        bar.close()
        summary.seconds = time.perf_counter() - t0
        if executor is not None:
            executor.close(abort=not finished)  # Ctrl-C: in-flight jobs are lost, never half-written
        if not finished:
            out.remove_temps()
        if started_ray:
            from .ray_pool import disconnect

            disconnect()
        shutil.rmtree(tmp_root, ignore_errors=True)
    return summary


def _finish(rec: dict[str, Any], out: OutputDir) -> dict[str, Any]:
    """Upload a result rendered to a local temp file (remote output folders) and fill in its path."""
    local_tmp = rec.pop("local_tmp", None)
    if local_tmp is not None:
        try:
            rec["path"] = out.upload(local_tmp, rec["output"])
        except Exception as exc:  # noqa: BLE001 - an upload failure fails this job, not the batch
            rec.update(status="failed", error=str(exc), error_type=type(exc).__name__)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(local_tmp)
    if rec["status"] == "done":
        rec.setdefault("path", out.target(rec["output"]))
    return rec
