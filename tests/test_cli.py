"""End-to-end CLI runs and the bad-input contract: one-line error, non-zero exit, no output file."""

import av
import numpy as np
import pytest

from avatar.cli import main
from avatar.media.video import probe_video

CONSENT = ["--consent", "I agree to be animated for tests", "--subject", "Test Subject"]


def _run(args, capsys):
    code = main(args)
    err = capsys.readouterr().err
    return code, err


def test_animate_end_to_end(tmp_path, portrait_path, driving_clip, capsys):
    out = tmp_path / "out.mp4"
    code, err = _run(["animate", str(portrait_path), str(driving_clip), "-o", str(out), "--size", "256", "--quiet", *CONSENT], capsys)
    assert code == 0, err
    info = probe_video(out)
    assert info.frame_count == 20 and abs(info.fps - 25) < 1e-6 and info.has_audio
    assert (info.width, info.height) == (512, 512)
    with av.open(str(out)) as c:
        assert c.metadata.get("ai_generated") == "true"
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    # the portrait moves: frames differ from each other, but the background corner does not
    assert np.abs(frames[10].astype(int) - frames[0]).mean() > 0.5
    assert np.abs(frames[10][:40, :40].astype(int) - frames[0][:40, :40]).mean() < 3
    # a second run without --overwrite refuses to replace the file
    code, err = _run(["animate", str(portrait_path), str(driving_clip), "-o", str(out), "--quiet"], capsys)
    assert code != 0 and "exists" in err


def test_no_consent_is_refused(tmp_path, portrait_path, driving_clip, capsys):
    out = tmp_path / "out.mp4"
    code, err = _run(["animate", str(portrait_path), str(driving_clip), "-o", str(out), "--quiet"], capsys)
    assert code == 1 and "consent" in err.lower() and not out.exists()


def _bad(tmp_path, portrait, portrait_path):
    from avatar.media.image import save_image
    from avatar.media.video import VideoWriter

    blank = save_image(tmp_path / "wall.png", np.full((256, 256, 3), 90, np.uint8))
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    two = np.full((512, 1024, 3), 200, np.uint8)
    two[:, :512] = portrait
    two[:, 512:] = portrait[:, ::-1]
    group = save_image(tmp_path / "group.png", two)
    zero = tmp_path / "zero.mp4"
    try:
        with VideoWriter(zero, 25):
            pass
    except Exception:
        pass
    if not zero.exists():
        zero.write_bytes(b"\x00\x00\x00\x18ftypmp42")
    return blank, empty, text, group, zero


@pytest.mark.parametrize("case", ["noface", "empty", "text", "several", "zero_video", "driving_is_image"])
def test_bad_inputs(case, tmp_path, portrait, portrait_path, driving_clip, capsys):
    blank, empty, text, group, zero = _bad(tmp_path, portrait, portrait_path)
    src, drv, extra = str(portrait_path), str(driving_clip), []
    src = {"noface": str(blank), "empty": str(empty), "text": str(text), "several": str(group)}.get(case, src)
    if case == "zero_video":
        drv = str(zero)
    if case == "driving_is_image":
        drv = str(portrait_path)
    if case == "several":
        extra = []
    out = tmp_path / "out.mp4"
    code, err = _run(["animate", src, drv, "-o", str(out), "--quiet", "--size", "256", *CONSENT, *extra], capsys)
    lines = [l for l in err.strip().splitlines() if l.startswith("avatar: error")]
    if case == "several":  # the largest face is taken by default; the run succeeds
        assert code == 0, err
        return
    assert code == 1, err
    assert len(lines) == 1 and "Traceback" not in err
    assert not out.exists()
    assert not list(tmp_path.glob("*.tmp*"))
    name = {"noface": "wall.png", "empty": "empty.jpg", "text": "notes.png", "zero_video": "zero.mp4",
            "driving_is_image": "astronaut.png"}[case]
    assert name in lines[0]


def test_several_faces_face_index(tmp_path, portrait, capsys, driving_clip):
    from avatar.media.image import save_image

    two = np.full((512, 1024, 3), 200, np.uint8)
    two[:, :512] = portrait
    two[:, 512:] = portrait[:, ::-1]
    group = save_image(tmp_path / "group.png", two)
    out = tmp_path / "o.mp4"
    code, err = _run(["animate", str(group), str(driving_clip), "-o", str(out), "--quiet", "--size", "256",
                      "--face-index", "7", *CONSENT], capsys)
    assert code == 1 and "face-index" in err and not out.exists()


def test_engine_switches_reach_the_render_config():
    from avatar.cli import build_parser
    from avatar.cli.animate import build_config

    args = build_parser().parse_args(["animate", "a.jpg", "b.mp4", "-o", "c.mp4", "--no-shading"])
    assert build_config(args).render.shading is False
    args = build_parser().parse_args(["animate", "a.jpg", "b.mp4", "-o", "c.mp4", "--engine", "onnx", "--int8"])
    render = build_config(args).render
    assert render.shading is True and render.int8 is True and render.engine == "onnx"


def test_max_turn_reaches_the_motion_config_and_is_checked(capsys):
    from avatar.batch.options import config_of, normalize
    from avatar.cli import build_parser
    from avatar.cli.animate import animate_config

    args = build_parser().parse_args(["animate", "a.jpg", "b.mp4", "-o", "c.mp4", "--max-turn", "30"])
    assert animate_config(args).motion.max_turn == 30.0
    args = build_parser().parse_args(["animate", "a.jpg", "b.mp4", "-o", "c.mp4"])
    assert animate_config(args).motion.max_turn == 0.0
    assert config_of("animate", normalize("animate", {"max_turn": 25})).motion.max_turn == 25.0
    code, err = _run(["animate", "a.jpg", "b.mp4", "-o", "c.mp4", "--max-turn", "400"], capsys)
    assert code != 0 and "max_turn" in err
