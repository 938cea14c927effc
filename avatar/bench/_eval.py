"""The evaluation folder's files, as the benchmarks read them (``../shared/eval`` or ``--eval``)."""

from __future__ import annotations

from pathlib import Path


def portraits(eval_dir: Path) -> list[Path]:
    """The folder's ``portrait_*.jpg`` and ``portrait_*.png``, sorted."""
    return sorted(list(eval_dir.glob("portrait_*.jpg")) + list(eval_dir.glob("portrait_*.png")))
