"""Shared fixtures: an isolated avatar home per test, the public-domain portrait, generated clips."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(autouse=True)
def _avatar_home(tmp_path_factory, monkeypatch):
    """Every test gets its own consent store and key folder."""
    home = tmp_path_factory.mktemp("avatar-home")
    monkeypatch.setenv("AVATAR_HOME", str(home))
    monkeypatch.delenv("AVATAR_CONSENT_POLICY", raising=False)
    return home


@pytest.fixture(scope="session")
def portrait() -> np.ndarray:
    from avatar.examples import example_portrait

    return example_portrait()


@pytest.fixture(scope="session")
def portrait_path(tmp_path_factory, portrait) -> Path:
    from avatar.media.image import save_image

    return save_image(tmp_path_factory.mktemp("portrait") / "astronaut.png", portrait)


@pytest.fixture(scope="session")
def driving_clip(tmp_path_factory) -> Path:
    """A generated 20-frame, 25 fps driving clip with an audio track."""
    from avatar.examples import write_example_driving

    return write_example_driving(tmp_path_factory.mktemp("driving") / "driving.mp4", frames=20, size=256)
