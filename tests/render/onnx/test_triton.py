"""Triton model repository: written configs validate offline; broken ones are rejected."""

from __future__ import annotations

import shutil

import pytest

from avatar.errors import ConfigError
from avatar.export.triton import (
    TritonConfigError,
    parse_config,
    validate_model,
    validate_repository,
    write_repository,
)


@pytest.fixture()
def repo(tmp_path, small_export):
    return write_repository(small_export, tmp_path / "repo", max_batch=8, tensorrt=True)


def test_repository_layout_and_configs_validate(repo):
    checks = {c.name: c for c in validate_repository(repo)}
    assert set(checks) == {"fomm_kp_detector", "fomm_source_encoder", "fomm_generator"}
    assert checks["fomm_generator"].inputs[:2] == ("source", "features") and checks["fomm_generator"].max_batch_size == 8
    for name in checks:
        assert (repo / name / "1" / "model.onnx").is_file()
        cfg = parse_config((repo / name / "config.pbtxt").read_text())
        assert cfg.platform == "onnxruntime_onnx" and cfg.WhichOneof("scheduling_choice") == "dynamic_batching"
        assert list(cfg.dynamic_batching.preferred_batch_size) == [4, 8]
    gen = parse_config((repo / "fomm_generator" / "config.pbtxt").read_text())
    assert list(gen.output[0].dims) == [3, 256, 256]
    assert gen.optimization.execution_accelerators.gpu_execution_accelerator[0].name == "tensorrt"


def _edit(repo, model, old, new):
    path = repo / model / "config.pbtxt"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize(
    ("old", "new", "match"),
    [
        ("max_queue_delay_microseconds", "max_queue_delay_ms", "has no field named"),  # typo caught by Triton's schema
        ("TYPE_FP32", "TYPE_FP16", "is TYPE_FP16, the ONNX graph has float32"),
        ("dims: [ 3, 256, 256 ]", "dims: [ 3, 128, 128 ]", "dims"),
        ('name: "source"', 'name: "src"', "input names"),
        ('name: "fomm_generator"', 'name: "generator"', "folder name"),
        ("max_batch_size: 8", "max_batch_size: 2", "preferred_batch_size"),
        ("KIND_GPU", "KIND_TPU", "KIND_TPU"),
    ],
)
def test_broken_configs_are_rejected(repo, old, new, match):
    _edit(repo, "fomm_generator", old, new)
    with pytest.raises(TritonConfigError, match=match):
        validate_repository(repo)


def test_missing_pieces_are_rejected(repo, tmp_path):
    (repo / "fomm_kp_detector" / "1" / "model.onnx").unlink()
    with pytest.raises(TritonConfigError, match="model.onnx is missing"):
        validate_model(repo / "fomm_kp_detector")
    text = (repo / "fomm_source_encoder" / "config.pbtxt").read_text()
    start = text.index("dynamic_batching")
    (repo / "fomm_source_encoder" / "config.pbtxt").write_text(text[:start] + text[text.index("instance_group"):])
    with pytest.raises(TritonConfigError, match="dynamic_batching is missing"):
        validate_model(repo / "fomm_source_encoder")
    shutil.rmtree(repo / "fomm_generator")
    with pytest.raises(TritonConfigError, match="fomm_generator"):
        validate_repository(repo)


def test_write_refuses_bad_options_and_existing_folders(tmp_path, small_export, repo):
    with pytest.raises(ConfigError, match="not empty"):
        write_repository(small_export, repo)
    with pytest.raises(ConfigError, match="max-batch"):
        write_repository(small_export, tmp_path / "r2", max_batch=0)
    half = write_repository(small_export, tmp_path / "r3", half=True, max_batch=1)
    assert [c.max_batch_size for c in validate_repository(half)] == [1, 1, 1]
