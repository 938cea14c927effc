"""Checkpoint reading: the official layout, safetensors, and every kind of bad file."""

from __future__ import annotations

import pickle

import pytest
import torch

from avatar.errors import WeightsError
from avatar.render.fomm.weights import load_models, read_checkpoint, save_safetensors


def _official(kp, gen) -> dict:
    return {
        "kp_detector": kp.state_dict(),
        "generator": gen.state_dict(),
        "discriminator": {"down_blocks.0.conv.weight": torch.zeros(2, 2)},
        "optimizer_generator": {"state": {}, "param_groups": [{"lr": 2e-4, "betas": (0.5, 0.999), "params": [0, 1]}]},
        "epoch": 3,
    }


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_official_layout_loads_strict(tmp_path, small_cfg, small_models, zip_format):
    kp, gen = small_models
    path = tmp_path / "vox-cpk.pth.tar"
    torch.save(_official(kp, gen), path, _use_new_zipfile_serialization=zip_format)
    kp2, gen2 = load_models(path, small_cfg)
    assert _same(kp, kp2) and _same(gen, gen2)
    assert not kp2.training and not gen2.training


def test_safetensors_round_trip(tmp_path, small_cfg, small_models):
    kp, gen = small_models
    path = save_safetensors({"kp_detector": kp.state_dict(), "generator": gen.state_dict()}, tmp_path / "fomm.safetensors")
    kp2, gen2 = load_models(path, small_cfg)
    assert _same(kp, kp2) and _same(gen, gen2)
    # also recognised without the suffix
    renamed = path.rename(tmp_path / "fomm.bin")
    assert set(read_checkpoint(renamed)) == {"kp_detector", "generator"}


def test_dataparallel_prefix_is_stripped(tmp_path, small_cfg, small_models):
    kp, gen = small_models
    state = {"kp_detector": {f"module.{k}": v for k, v in kp.state_dict().items()}, "generator": gen.state_dict()}
    torch.save(state, tmp_path / "dp.pth")
    kp2, _ = load_models(tmp_path / "dp.pth", small_cfg)
    assert _same(kp, kp2)


@pytest.mark.parametrize("suffix", [".pth.tar", ".safetensors"])
def test_truncated_file_is_refused(tmp_path, small_cfg, small_models, suffix):
    kp, gen = small_models
    full = tmp_path / f"full{suffix}"
    if suffix == ".safetensors":
        save_safetensors({"kp_detector": kp.state_dict(), "generator": gen.state_dict()}, full)
    else:
        torch.save(_official(kp, gen), full)
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size * 2 // 3])
    with pytest.raises(WeightsError, match="truncated"):
        load_models(cut, small_cfg)


def test_missing_key_is_named(tmp_path, small_cfg, small_models):
    kp, gen = small_models
    state = _official(kp, gen)
    del state["generator"]["final.bias"]
    torch.save(state, tmp_path / "c.pth")
    with pytest.raises(WeightsError, match=r"generator.*1 missing key.*final\.bias"):
        load_models(tmp_path / "c.pth", small_cfg)


def test_extra_key_is_named(tmp_path, small_cfg, small_models):
    kp, gen = small_models
    state = _official(kp, gen)
    state["kp_detector"]["extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "c.pth")
    with pytest.raises(WeightsError, match=r"kp_detector.*unexpected key.*extra\.weight"):
        load_models(tmp_path / "c.pth", small_cfg)


def test_wrong_shape_is_named(tmp_path, small_cfg, small_models):
    kp, gen = small_models
    state = _official(kp, gen)
    state["kp_detector"]["kp.weight"] = torch.zeros(10, 11, 5, 5)
    torch.save(state, tmp_path / "c.pth")
    with pytest.raises(WeightsError, match=r"wrong shape.*kp\.weight: file \[10, 11, 5, 5\], model \[10, 11, 7, 7\]"):
        load_models(tmp_path / "c.pth", small_cfg)


def test_vox_checkpoint_does_not_fit_small_models(tmp_path, small_cfg, small_models):
    kp, gen = small_models
    torch.save(_official(kp, gen), tmp_path / "small.pth")
    with pytest.raises(WeightsError, match="does not fit"):
        load_models(tmp_path / "small.pth")  # vox-256 architecture


class _Payload:
    """Pickles to a call of open(marker, 'w'), which creates the marker if it ever runs."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_malicious_pickle_is_refused_without_running(tmp_path, small_cfg):
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pth.tar"
    torch.save({"kp_detector": {"kp.weight": _Payload(str(marker))}, "generator": {}}, path)
    # a plain pickle of the same payload too (the legacy, non-zip layout)
    plain = tmp_path / "evil.pkl"
    plain.write_bytes(pickle.dumps({"kp_detector": _Payload(str(marker)), "generator": {}}, protocol=2))
    for p in (path, plain):
        with pytest.raises(WeightsError, match="code execution"):
            load_models(p, small_cfg)
    assert not marker.exists()


@pytest.mark.parametrize(
    "content, message",
    [({"generator": {}}, "kp_detector"), ([1, 2], "not a FOMM checkpoint"), ({"kp_detector": {"a": 1}, "generator": {}}, "not a tensor")],
)
def test_wrong_structure_is_refused(tmp_path, content, message):
    torch.save(content, tmp_path / "x.pth")
    with pytest.raises(WeightsError, match=message):
        read_checkpoint(tmp_path / "x.pth")


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(WeightsError, match="avatar weights fetch vox"):
        read_checkpoint(tmp_path / "nope.pth.tar")
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(WeightsError, match="empty"):
        read_checkpoint(tmp_path / "empty.pth")
