"""Fixtures for the FOMM tests (the tiny architecture, random models and the reference fixture are
in tests/render/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

LAYOUT = Path(__file__).resolve().parents[3] / ".." / "shared" / "fomm" / "vox-256-state-dict.txt"


@pytest.fixture(scope="session")
def layout_text() -> str:
    if not LAYOUT.is_file():
        pytest.skip(f"{LAYOUT} not found (CI has it at ../shared/fomm)")
    return LAYOUT.read_text()


@pytest.fixture()
def small_models(small_cfg, make_models):
    """Fresh random tiny models per test (tests may change them)."""
    return make_models(small_cfg, seed=0)
