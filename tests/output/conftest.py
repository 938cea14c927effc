from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from faces import astronaut, different_face  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Every test gets its own avatar_home (keys, default store) and no consent policy override."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("AVATAR_HOME", str(home))
    monkeypatch.delenv("AVATAR_CONSENT_POLICY", raising=False)
    for k in ("AVATAR_C2PA_CERT", "AVATAR_C2PA_KEY", "AVATAR_C2PA_TRUST"):
        monkeypatch.delenv(k, raising=False)
    return home


@pytest.fixture(scope="session")
def portrait() -> np.ndarray:
    return astronaut()


@pytest.fixture(scope="session")
def portrait_face(portrait):
    from avatar.face.landmarks import detect_face

    return detect_face(portrait)


@pytest.fixture(scope="session")
def other_face(portrait, portrait_face) -> np.ndarray:
    return different_face(portrait, portrait_face.landmarks)
