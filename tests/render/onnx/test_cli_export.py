"""`avatar export onnx|triton` and `avatar animate --engine onnx` end to end."""

from __future__ import annotations

import json

import pytest

from avatar.cli import main
from avatar.media.video import probe_video

CONSENT = ["--consent", "I agree to be animated for tests", "--subject", "Test Subject"]


def _run(args, capsys):
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_export_onnx_and_triton_cli(tmp_path, small_checkpoint, capsys):
    out = tmp_path / "model"
    code, stdout, err = _run(["export", "onnx", "--checkpoint", str(small_checkpoint), "--out", str(out), "--opset", "18"], capsys)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["avatar-onnx.json", "generator.onnx", "kp_detector.onnx", "source_encoder.onnx"]
    assert json.loads((out / "avatar-onnx.json").read_text())["opset"] == 18 and str(out) in stdout
    before = (out / "generator.onnx").stat().st_mtime_ns
    code, _, err = _run(["export", "onnx", "--checkpoint", str(small_checkpoint), "--out", str(out)], capsys)
    assert code == 1 and "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert (out / "generator.onnx").stat().st_mtime_ns == before
    code, _, err = _run(["export", "onnx", "--checkpoint", str(small_checkpoint), "--out", str(out), "--overwrite", "--fp16"], capsys)
    assert code == 0, err and (out / "generator.fp16.onnx").is_file()

    repo = tmp_path / "repo"
    code, stdout, err = _run(["export", "triton", "--model-dir", str(out), "--out", str(repo), "--max-batch", "4"], capsys)
    assert code == 0, err
    assert (repo / "fomm_generator" / "1" / "model.onnx").is_file() and "max_batch_size: 4" in (repo / "fomm_generator" / "config.pbtxt").read_text()
    code, stdout, _ = _run(["export", "validate-triton", str(repo)], capsys)
    assert code == 0 and stdout.count(": OK") == 3


@pytest.mark.parametrize("content", [b"", b"this is not a checkpoint", None])
def test_export_onnx_bad_checkpoint_is_a_one_line_error(tmp_path, capsys, content):
    ckpt = tmp_path / "bad.pth.tar"
    if content is not None:
        ckpt.write_bytes(content)
    out = tmp_path / "model"
    code, _, err = _run(["export", "onnx", "--checkpoint", str(ckpt), "--out", str(out)], capsys)
    assert code == 1 and err.startswith("avatar: error:") and len(err.strip().splitlines()) == 1
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ([ckpt.name] if content is not None else [])


def test_animate_with_the_onnx_engine(tmp_path, small_export, portrait_path, driving_clip, capsys):
    out = tmp_path / "out.mp4"
    code, _, err = _run(["animate", str(portrait_path), str(driving_clip), "-o", str(out), "--engine", "onnx",
                              "--model-dir", str(small_export), "--providers", "cpu", "--strict-providers", "--max-frames", "3",
                              "--size", "256", "--quiet", "--no-audio", *CONSENT], capsys)
    assert code == 0, err
    assert probe_video(out).frame_count == 3
    code, _, err = _run(["animate", str(portrait_path), str(driving_clip), "-o", str(tmp_path / "x.mp4"), "--engine", "onnx",
                         "--model-dir", str(tmp_path / "missing"), "--max-frames", "3", "--quiet", *CONSENT], capsys)
    assert code == 1 and "avatar export onnx" in err and not (tmp_path / "x.mp4").exists()
