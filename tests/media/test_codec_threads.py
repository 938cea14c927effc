"""A batch worker given one core encodes and decodes with one codec thread, not one per core."""

from __future__ import annotations

import re

import numpy as np

from avatar.media.video import CODEC_THREADS_ENV, VideoWriter, read_frames


def _x264_threads(path) -> int:
    # x264 writes its settings into the stream ("... threads=3 lookahead_threads=1 ...")
    found = re.search(rb"[ :]threads=(\d+)", path.read_bytes())
    assert found, "no x264 settings in the file"
    return int(found.group(1))


def _write(path):
    with VideoWriter(path, 25.0) as w:
        for i in range(5):
            w.write(np.full((64, 64, 3), 40 * i, np.uint8))
    return path


def test_the_codec_thread_setting_reaches_the_encoder(tmp_path, monkeypatch):
    monkeypatch.setenv(CODEC_THREADS_ENV, "1")
    one = _x264_threads(_write(tmp_path / "one.mp4"))
    monkeypatch.setenv(CODEC_THREADS_ENV, "2")
    two = _x264_threads(_write(tmp_path / "two.mp4"))
    assert (one, two) == (1, 2)
    monkeypatch.setenv(CODEC_THREADS_ENV, "not a number")  # ignored: FFmpeg's own choice
    assert _x264_threads(_write(tmp_path / "auto.mp4")) >= 1
    assert len(list(read_frames(tmp_path / "one.mp4"))) == 5  # decoding honours it too, and works
