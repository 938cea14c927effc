"""The optional face-alignment backend: used only with its weights on disk, a clear refusal otherwise."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from avatar.errors import EngineUnavailable
from avatar.face.landmarks import LandmarkDetector


def _fake_face_alignment(points: list[np.ndarray], calls: list) -> types.ModuleType:
    """A stand-in with face-alignment 1.4.x's layout: ``models_urls`` nested by torch version, with
    ``default_model_urls`` for versions it does not list (tests/face/test_fan_real.py runs the
    installed release itself)."""
    fa = types.ModuleType("face_alignment")
    fa.api = types.SimpleNamespace(
        default_model_urls={"2DFAN-4": "https://example.invalid/fan/2DFAN4-11f355bf06.pth.tar"},
        models_urls={"1.6": {"2DFAN-4": "https://example.invalid/fan/2DFAN4_1.6-c827573f02.zip"}})
    fa.LandmarksType = types.SimpleNamespace(TWO_D=1)

    class FaceAlignment:
        def __init__(self, landmarks_type, **kwargs):
            calls.append(("init", kwargs))

        def get_landmarks_from_image(self, image):
            calls.append(("detect", image.shape))
            return points

    fa.FaceAlignment = FaceAlignment
    return fa


@pytest.fixture()
def hub(tmp_path, monkeypatch):
    import torch.hub

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    return tmp_path / "checkpoints"


def test_the_1_4_layout_nested_by_torch_version_is_resolved(monkeypatch):
    """face-alignment 1.4.x keys ``models_urls`` by torch version: a flat lookup raised KeyError '2DFAN-4'."""
    import torch

    from avatar.face.fan import _fan_url

    api = _fake_face_alignment([], []).api
    assert _fan_url(api).endswith("2DFAN4-11f355bf06.pth.tar")  # this torch is not listed: the default
    monkeypatch.setattr(torch, "__version__", "1.6.0+cpu")
    assert _fan_url(api).endswith("2DFAN4_1.6-c827573f02.zip")  # a listed torch: its own build


def test_missing_package_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "face_alignment", None)
    with pytest.raises(EngineUnavailable, match=r'pip install "avatar\[face-alignment\]"'):
        LandmarkDetector(backend="face_alignment")


def test_missing_weights_name_the_files_and_never_download(monkeypatch, hub):
    calls: list = []
    monkeypatch.setitem(sys.modules, "face_alignment", _fake_face_alignment([], calls))
    with pytest.raises(EngineUnavailable) as err:
        LandmarkDetector(backend="face_alignment")
    assert "2DFAN4-11f355bf06.pth.tar" in str(err.value) and str(hub) in str(err.value)
    assert calls == []  # face-alignment was never constructed, so it could not start a download


def test_boxes_seed_the_mesh(monkeypatch, hub, portrait):
    """With weights present, face-alignment's box is where mediapipe looks, in a wide image too."""
    from avatar.face.landmarks import detect_face

    ref = detect_face(portrait).landmarks
    wide = np.zeros((portrait.shape[0], portrait.shape[1] * 4, 3), np.uint8)
    x_off = portrait.shape[1] * 2
    wide[:, x_off:x_off + portrait.shape[1]] = portrait
    # 68 points spanning the known face (as FAN would report them)
    lo, hi = ref[:, :2].min(0), ref[:, :2].max(0)
    pts = np.stack(np.meshgrid(np.linspace(lo[0], hi[0], 17), np.linspace(lo[1], hi[1], 4)), -1).reshape(-1, 2)[:68]
    pts = pts + [x_off, 0]
    calls: list = []
    monkeypatch.setitem(sys.modules, "face_alignment", _fake_face_alignment([pts], calls))
    hub.mkdir(parents=True)
    (hub / "2DFAN4-11f355bf06.pth.tar").write_bytes(b"weights")
    with LandmarkDetector(backend="face_alignment") as det:
        faces = det.detect(wide)
    assert ("detect", wide.shape) in calls
    assert faces, "the face inside face-alignment's box was not meshed"
    err = np.abs(faces[0].landmarks[:, :2] - (ref[:, :2] + [x_off, 0])).mean()
    assert err < 3.0, err
