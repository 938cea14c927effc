"""Batch rendering: many ``animate`` / ``talk`` jobs from a JSONL or CSV file, on a local process pool or Ray.

    from avatar import batch
    summary = batch.run("jobs.jsonl", "out/", workers=4)            # local process pool
    summary = batch.run("jobs.jsonl", "s3://bucket/out", ray="auto")  # an existing Ray cluster

Modules, in the order data flows: ``jobs`` (the job file and its validation), ``options``
(job options = CLI flags), ``runner`` (plan, execute, record), ``local_pool`` / ``ray_pool``
(executors), ``worker`` and ``shared_inputs`` (what runs inside a worker), ``outputs``
(local folder or fsspec URL) and ``manifest`` (the resumable results file). See docs/batch.md.
"""

from __future__ import annotations

from .jobs import Job, JobSource, parse_job
from .runner import BatchSummary, run

__all__ = ["BatchSummary", "Job", "JobSource", "parse_job", "run"]
