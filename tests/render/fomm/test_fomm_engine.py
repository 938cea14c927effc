"""FommEngine with tiny random models: shapes, relative/absolute modes, caching, batching, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data
from skimage.transform import resize

from avatar.config import RenderConfig
from avatar.errors import InputError, ShapeError, WeightsError
from avatar.render.fomm.engine import FommEngine
from avatar.types import DriveTarget, FaceCrop


def _crop(size: int, shift: int = 0, angle: float = 0.0) -> FaceCrop:
    from skimage.transform import rotate

    img = data.astronaut()[:400, 50:450]
    if angle:
        img = (rotate(img, angle, mode="edge") * 255).round().astype(np.uint8)
    img = (resize(img, (size, size), anti_aliasing=True) * 255).round().astype(np.uint8)
    img = np.roll(img, shift, axis=1)
    return FaceCrop(image=img, landmarks=np.zeros((478, 3), np.float32), crop_from_frame=np.eye(2, 3), frame_size=(size, size))


def _target(driving: FaceCrop | None, reference: FaceCrop | None = None) -> DriveTarget:
    return DriveTarget(landmarks=np.zeros((478, 3), np.float32), driving=driving, reference=reference)


@pytest.fixture()
def engine(small_cfg, small_models):
    torch.set_num_threads(min(2, torch.get_num_threads()))
    kp, gen = small_models
    return FommEngine(RenderConfig(engine="fomm", batch_size=2), small_cfg, kp_detector=kp, generator=gen)


def test_render_shapes_batches_and_modes(engine):
    src = _crop(192)
    state = engine.prepare(src)
    ref = _crop(192)
    targets = [_target(_crop(192, 4), ref), _target(_crop(192, -4)), _target(_crop(192, 0, 5.0), ref)]
    out = engine.render(state, targets)
    assert out.shape == (3, 192, 192, 3) and out.dtype == np.uint8
    assert out.std() > 2  # an image, not a constant
    assert engine.render(state, []).shape == (0, 192, 192, 3)
    assert engine.needs_driving_image is True and engine.name == "fomm"


def _u8(pred: torch.Tensor) -> np.ndarray:
    return (pred[0].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy().astype(int)


def test_relative_with_driving_equal_reference_reproduces_source_driven_prediction(engine):
    src = _crop(256)
    state = engine.prepare(src)
    ref = _crop(256, 6, 4.0)
    out = engine.render(state, [_target(ref, ref)])[0].astype(int)
    with torch.no_grad():
        x = torch.from_numpy(src.image).permute(2, 0, 1)[None].float() / 255
        kp = engine.kp_detector(x)
        want = _u8(engine.generator(x, kp, kp).prediction)
        kp_ref = engine.kp_detector(torch.from_numpy(ref.image).permute(2, 0, 1)[None].float() / 255)
        want_abs = _u8(engine.generator(x, kp_ref, kp).prediction)
    diff = np.abs(out - want)
    assert diff.max() <= 2 and diff.mean() < 0.02
    # absolute mode (no reference) drives with the raw driving keypoints instead
    absolute = engine.render(state, [_target(ref)])[0].astype(int)
    assert np.abs(absolute - want_abs).max() <= 2 and np.abs(absolute - want_abs).mean() < 0.02
    assert np.abs(want_abs - want).mean() > 0.1


def test_batch_equals_single_calls(engine):
    state = engine.prepare(_crop(160))
    ref = _crop(160, 0, -6.0)
    targets = [_target(_crop(160, 8), ref), _target(_crop(160, 0, 7.0), _crop(160, 0, 12.0))]
    both = engine.render(state, targets)
    singles = np.concatenate([engine.render(state, [t]) for t in targets])
    assert np.abs(both.astype(int) - singles.astype(int)).max() <= 1


def test_reference_keypoints_are_cached(engine):
    calls = []
    engine.kp_detector.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    state = engine.prepare(_crop(128))
    ref = _crop(128, 3)
    targets = [_target(_crop(128, s), ref) for s in (1, 2)]
    engine.render(state, targets)
    assert calls == [1, 2, 1]  # source, driving batch, reference once
    engine.render(state, targets)
    assert calls[3:] == [2]  # the same reference object is not recomputed
    engine.render(state, [_target(_crop(128, 1), _crop(128, 3))])
    assert calls[4:] == [1, 1]  # an equal but different object is


def test_best_reference_index(engine):
    src = _crop(128)
    state = engine.prepare(src)
    crops = [_crop(128, 0, 25.0), _crop(128, 0, 0.0), _crop(128, 30, -20.0)]
    assert engine.best_reference_index(state, crops) == 1


def test_bad_targets(engine):
    state = engine.prepare(_crop(128))
    with pytest.raises(InputError, match="driving crop"):
        engine.render(state, [_target(None)])
    bad = FaceCrop(image=np.zeros((128, 128, 3), np.float32), landmarks=np.zeros((1, 3)), crop_from_frame=np.eye(2, 3), frame_size=(1, 1))
    with pytest.raises(ShapeError, match="uint8"):
        engine.render(state, [_target(bad)])


def test_engine_loads_checkpoint_from_config(tmp_path, small_cfg, small_models):
    kp, gen = small_models
    path = tmp_path / "tiny.pth.tar"
    torch.save({"kp_detector": kp.state_dict(), "generator": gen.state_dict(), "epoch": 1}, path)
    eng = FommEngine(RenderConfig(engine="fomm", checkpoint=str(path)), small_cfg)
    crop = _crop(256)
    state = eng.prepare(crop)
    with torch.no_grad():
        want = kp(torch.from_numpy(crop.image).permute(2, 0, 1)[None].float() / 255)
    assert torch.allclose(state.kp_source.value, want.value, atol=1e-5)
    eng.close()
    eng.close()


def test_missing_checkpoint_tells_how_to_get_it(tmp_path, monkeypatch):
    from avatar.render.registry import create_engine

    monkeypatch.setenv("AVATAR_HOME", str(tmp_path))
    with pytest.raises(WeightsError) as err:
        create_engine(RenderConfig(engine="fomm"))
    msg = str(err.value)
    assert "avatar weights fetch vox" in msg and str(tmp_path / "cache" / "vox-cpk.pth.tar") in msg
    with pytest.raises(WeightsError, match="not found"):
        FommEngine(RenderConfig(engine="fomm", checkpoint=str(tmp_path / "elsewhere.pth.tar")))
