"""The face-alignment backend against the real, installed package (CI installs it; no weights are
ever downloaded): the files we require are exactly the ones the package itself would fetch, a
missing file is a clear refusal before any download, and with the files on disk the package's
own constructor loads them."""

from __future__ import annotations

import os

import pytest

fa = pytest.importorskip("face_alignment", reason="the optional face-alignment package is not installed")

from avatar.errors import EngineUnavailable  # noqa: E402
from avatar.face.fan import FanBoxes, required_files  # noqa: E402


@pytest.fixture()
def hub(tmp_path):
    """An empty torch hub folder (set_dir reaches face-alignment's own ``get_dir`` import too)."""
    import torch.hub

    before = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    yield tmp_path / "hub" / "checkpoints"
    torch.hub.set_dir(before)


@pytest.fixture()
def downloads(monkeypatch):
    """Every download face-alignment starts, recorded; the 'download' writes randomly initialised
    weights of the right network (what a real download would put there), never touching the network."""
    import torch
    import torch.hub
    from face_alignment import utils

    seen: list[str] = []

    def fake_download(url, dst, *args, **kwargs):
        seen.append(os.path.basename(url.split("?")[0]))
        if "s3fd" in url:
            from face_alignment.detection.sfd.net_s3fd import s3fd

            torch.save(s3fd().state_dict(), dst)
        else:
            from face_alignment.models import FAN

            torch.save(FAN(4).state_dict(), dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    monkeypatch.setattr(utils, "download_url_to_file", fake_download, raising=False)
    return seen


def test_missing_weights_are_refused_before_any_download(hub, downloads):
    with pytest.raises(EngineUnavailable) as err:
        FanBoxes()
    text = str(err.value)
    for p in required_files():
        assert p.name in text
    assert str(hub) in text and "mediapipe" in text
    assert downloads == []


def test_required_files_are_the_ones_the_package_loads(hub, downloads):
    expected = {p.name for p in required_files()}
    kwargs = {"compile": False} if "compile" in fa.FaceAlignment.__init__.__code__.co_varnames else {}
    fa.FaceAlignment(fa.LandmarksType.TWO_D, device="cpu", flip_input=False, **kwargs)  # the package's own path
    assert set(downloads) == expected, (downloads, expected)
    assert all((hub / name).is_file() for name in expected)
    downloads.clear()
    boxes = FanBoxes()  # with the files on disk: loads them, downloads nothing
    assert downloads == [] and boxes._fa.face_alignment_net is not None
