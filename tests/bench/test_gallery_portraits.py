"""``python -m avatar.bench gallery --portrait PATH --clip-portraits``: portraits beyond the folder's own."""

import numpy as np
import pytest

from avatar.bench.gallery import with_portraits
from avatar.errors import InputError
from avatar.media.image import load_image, save_image
from avatar.media.video import VideoWriter


def test_extra_portraits_join_a_linked_copy_of_the_folder(tmp_path):
    """The folder's clips and portraits are linked, an extra image joins as ``portrait_x_<name>``,
    and each talking clip under ``clone/`` gives its frame 1 s in (a grey level per frame here: 1 s
    at 10 fps is frame 10)."""
    src = tmp_path / "eval"
    (src / "clone").mkdir(parents=True)
    (src / "driving_01.mp4").write_bytes(b"clip")
    save_image(src / "portrait_01.png", np.zeros((8, 8, 3), np.uint8))
    extra = tmp_path / "Mine.JPG"
    save_image(extra.with_suffix(".png"), np.full((8, 8, 3), 7, np.uint8))
    extra.with_suffix(".png").rename(extra)
    with VideoWriter(src / "clone" / "talk_09.mp4", fps=10, crf=0) as w:
        for i in range(15):
            w.write(np.full((32, 32, 3), 10 * i, np.uint8))
    out = with_portraits(src, tmp_path / "copy", [extra], clip_portraits=True)
    names = sorted(p.name for p in out.iterdir())
    assert names == ["driving_01.mp4", "portrait_01.png", "portrait_x_Mine.jpg", "portrait_x_talk_09.png"]
    assert (out / "driving_01.mp4").read_bytes() == b"clip"
    frame = load_image(out / "portrait_x_talk_09.png")
    assert abs(float(frame.mean()) - 100.0) < 4  # frame 10, not frame 0 or the last
    with pytest.raises(InputError, match="no such image"):
        with_portraits(src, tmp_path / "again", [tmp_path / "missing.png"])

