"""Fixtures of the demo tests: small, fast settings and a demo served on a free localhost port."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from demo_helpers import FAST, MAX_UPLOAD_MB, free_port


@pytest.fixture
def service(tmp_path):
    from avatar.demo.service import DemoService
    from avatar.demo.settings import DemoSettings

    svc = DemoService(DemoSettings(config=FAST, store_path=tmp_path / "store" / "avatars.sqlite3",
                                   max_upload_mb=MAX_UPLOAD_MB, max_seconds=10))
    yield svc
    svc.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(demo, url) of the app on 127.0.0.1:<free port>; closed at teardown."""
    from avatar.demo import close_demo, launch

    store = tmp_path_factory.mktemp("demo-store") / "avatars.sqlite3"
    port = free_port()
    demo = launch(FAST, port=port, block=False, quiet=True, store_path=store, max_upload_mb=MAX_UPLOAD_MB,
                  max_seconds=10)
    yield demo, f"http://127.0.0.1:{port}/"
    close_demo(demo)


@pytest.fixture(scope="module")
def plain_image_path(tmp_path_factory) -> Path:
    """A smooth gradient with no face in it."""
    from avatar.media.image import save_image

    y, x = np.mgrid[0:256, 0:256]
    img = np.stack([x, y, (x + y) // 2], -1).astype(np.uint8)
    return save_image(tmp_path_factory.mktemp("plain") / "plain.png", img)


@pytest.fixture(scope="module")
def two_faces_path(tmp_path_factory, portrait) -> Path:
    """Two portraits side by side: a large face on the left, a smaller one on the right."""
    import cv2

    from avatar.media.image import save_image

    small = cv2.resize(portrait[:, ::-1], (384, 384), interpolation=cv2.INTER_AREA)
    canvas = np.full((512, 512 + 384, 3), 255, np.uint8)
    canvas[:, :512] = portrait
    canvas[64:448, 512:] = small
    return save_image(tmp_path_factory.mktemp("two") / "two.png", canvas)
