"""The evaluation folder's files, as the benchmarks read them (``../shared/eval`` or ``--eval``)."""

from __future__ import annotations

from pathlib import Path


def portraits(eval_dir: Path) -> list[Path]:
    """The folder's ``portrait_*.jpg`` and ``portrait_*.png``, sorted."""
    return sorted(list(eval_dir.glob("portrait_*.jpg")) + list(eval_dir.glob("portrait_*.png")))


def research_portraits(eval_dir: Path) -> list[Path]:
    """:func:`portraits`, with renders labelled "research" (benchmark material, not a person's
    avatar); says so when the folder has none."""
    import os

    from ..output.consent import POLICY_ENV

    os.environ[POLICY_ENV] = "research"
    found = portraits(eval_dir)
    if not found:
        print(f"no portrait_*.jpg/png in {eval_dir}")
    return found
