"""What executors submit next: retries first, then the job stream; and the records of jobs they lose."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from .jobs import Job

WORKER_DIED = "the worker process died while rendering (killed, crashed or out of memory)"


def failed_record(job: Job, attempt: int, error: str, error_type: str) -> dict[str, Any]:
    return {**job.to_record(), "attempt": attempt, "status": "failed", "error": error, "error_type": error_type}


class JobFeed:
    """(job, attempt) pairs to submit. A job whose worker died comes back once more (``max_attempts``)."""

    def __init__(self, jobs: Iterable[Job], max_attempts: int = 2,
                 on_lost: Callable[[Job], None] = lambda job: None) -> None:
        self._jobs = iter(jobs)
        self._retry: deque[tuple[Job, int]] = deque()
        self._exhausted = False
        self.max_attempts, self.on_lost = max_attempts, on_lost

    def take(self) -> tuple[Job, int] | None:
        """The next job to submit, or None when there is none left."""
        if self._retry:
            return self._retry.popleft()
        if not self._exhausted:
            job = next(self._jobs, None)
            if job is not None:
                return job, 1
            self._exhausted = True
        return None

    def put_back(self, job: Job, attempt: int) -> None:
        """A taken job that could not be submitted yet (no free worker): first in line again."""
        self._retry.appendleft((job, attempt))

    def lost(self, job: Job, attempt: int) -> dict[str, Any] | None:
        """A job whose worker died: queued again (None), or its failed record after the last attempt."""
        self.on_lost(job)
        if attempt < self.max_attempts:
            self._retry.append((job, attempt + 1))
            return None
        return failed_record(job, attempt, WORKER_DIED, "WorkerDied")
