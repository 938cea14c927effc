from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from avatar.errors import ConfigError, InputError, ShapeError
from avatar.media import video as vmod
from avatar.media.video import VideoWriter, apply_rotation, probe_video, read_frames


@pytest.mark.parametrize("fps", [25, Fraction(30000, 1001)])
def test_write_probe_read_roundtrip(tmp_path, media, fps):
    out = tmp_path / "rt.mp4"
    frames = [media.smooth_frame(i) for i in range(30)]
    with VideoWriter(out, fps=fps, size=(64, 48)) as w:
        for f in frames:
            w.write(f)
    info = probe_video(out)
    assert (info.width, info.height, info.frame_count, info.rotation) == (64, 48, 30, 0)
    assert info.fps == pytest.approx(float(fps), abs=1e-3)
    assert info.duration == pytest.approx(30 / float(fps), abs=0.05)
    assert not info.has_audio
    got = list(read_frames(out))
    assert len(got) == 30 and got[0].shape == (48, 64, 3) and got[0].dtype == np.uint8
    errs = [np.abs(a.astype(int) - b).mean() for a, b in zip(got, frames, strict=True)]
    assert max(errs) < 3.0
    # frames stay in order: each matches its own source better than its neighbour
    assert np.abs(got[10].astype(int) - frames[10]).mean() < np.abs(got[10].astype(int) - frames[20]).mean()
    assert [p.name for p in tmp_path.iterdir()] == ["rt.mp4"]


def test_fps_snaps_to_ntsc_and_validates(tmp_path):
    w = VideoWriter(tmp_path / "a.mp4", fps=29.97)
    assert w.fps == Fraction(30000, 1001)
    w.abort()
    assert VideoWriter(tmp_path / "b.mp4", fps=12.5).fps == Fraction(25, 2)
    with pytest.raises(ConfigError):
        VideoWriter(tmp_path / "c.mp4", fps=0)
    with pytest.raises(ConfigError, match="suffix"):
        VideoWriter(tmp_path / "c.avi", fps=25)
    with pytest.raises(ConfigError, match="preset"):
        VideoWriter(tmp_path / "c.mp4", fps=25, preset="warp-speed")
    assert not any(p.suffix == ".mp4" for p in tmp_path.iterdir() if p.name != "b.mp4")


def test_odd_size_padded_by_replication(tmp_path):
    out = tmp_path / "odd.mp4"
    f = np.zeros((17, 33, 3), np.uint8)
    f[:, -1] = (250, 250, 250)  # the last column is replicated into the padding
    f[-1, :] = (0, 0, 250)
    with VideoWriter(out, fps=25) as w:
        for _ in range(3):
            w.write(f)
    info = probe_video(out)
    assert (info.width, info.height) == (34, 18)
    g = next(iter(read_frames(out)))
    assert g.shape == (18, 34, 3)
    assert g[4:12, 33].mean() > 200  # padded column ≈ last column, not black
    assert g[17, 4:28, 2].mean() > 180  # padded row ≈ last row


def test_metadata_tags_survive(tmp_path, media):
    out = tmp_path / "m.mp4"
    tags = {"avatar_synthetic": "true", "avatar_engine": "warp", "comment": "made by a test"}
    with VideoWriter(out, fps=25, metadata=tags) as w:
        w.write(media.smooth_frame(0))
    with av.open(str(out)) as c:
        md = c.metadata
        for k, v in tags.items():
            assert md.get(k) == v
    # faststart: the index (moov) comes before the media data
    data = out.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")


def test_exception_inside_with_leaves_nothing(tmp_path, media):
    out = tmp_path / "x.mp4"
    with pytest.raises(RuntimeError, match="render failed"):
        with VideoWriter(out, fps=25) as w:
            w.write(media.smooth_frame(0))
            assert w.temp_path.exists() and w.temp_path.suffix == ".mp4"
            raise RuntimeError("render failed")
    assert list(tmp_path.iterdir()) == []


def test_existing_file_kept_on_failure_and_no_overwrite(tmp_path, media):
    out = tmp_path / "keep.mp4"
    out.write_bytes(b"previous")
    with pytest.raises(ShapeError):
        with VideoWriter(out, fps=25, size=(64, 48)) as w:
            w.write(media.smooth_frame(0, w=32, h=32))
    assert out.read_bytes() == b"previous"
    with pytest.raises(InputError, match="keep.mp4"):
        VideoWriter(out, fps=25, overwrite=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.mp4"]


def test_finalize_hook_runs_on_temp_before_rename(tmp_path, media):
    out = tmp_path / "h.mp4"
    seen = []

    def hook(tmp):
        seen.append((tmp, tmp.exists(), tmp.stat().st_size, out.exists()))
        with open(tmp, "ab") as fh:  # e.g. a signature appended last
            fh.write(b"SIGNED")

    with VideoWriter(out, fps=25, finalize_hook=hook) as w:
        w.write(media.smooth_frame(0))
    (tmp, existed, size, final_existed), = seen
    assert existed and size > 0 and not final_existed and tmp != out and not tmp.exists()
    assert out.read_bytes().endswith(b"SIGNED")

    def failing(tmp):
        raise ValueError("signing failed")

    out2 = tmp_path / "h2.mp4"
    with pytest.raises(ValueError):
        with VideoWriter(out2, fps=25, finalize_hook=failing) as w:
            w.write(media.smooth_frame(0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.mp4"]


def test_zero_frames_is_an_error_and_leaves_no_file(tmp_path):
    out = tmp_path / "z.mp4"
    with pytest.raises(InputError, match=r"no frames.*z\.mp4|z\.mp4"):
        with VideoWriter(out, fps=25, size=(64, 48)):
            pass
    assert list(tmp_path.iterdir()) == []


def test_bad_frames_rejected(tmp_path):
    with VideoWriter(tmp_path / "b.mp4", fps=25) as w:
        with pytest.raises(ShapeError, match="uint8"):
            w.write(np.zeros((8, 8, 3), np.float32))
        with pytest.raises(ShapeError):
            w.write(np.zeros((8, 8), np.uint8))
        w.write(np.zeros((8, 8, 3), np.uint8))
    assert probe_video(tmp_path / "b.mp4").frame_count == 1


@pytest.mark.parametrize("degrees", [90, 180, -90])
def test_rotation_metadata_applied(tmp_path, media, degrees):
    frame = np.full((32, 64, 3), 255, np.uint8)
    frame[:8, :8] = (255, 0, 0)  # marker in the stored top-left corner
    p = media.raw_video(tmp_path / "rot.mp4", [frame] * 3, rotation=degrees)
    info = probe_video(p)
    assert info.rotation == degrees % 360
    expected = apply_rotation(frame, degrees)
    assert (info.width, info.height) == (expected.shape[1], expected.shape[0])
    got = list(read_frames(p))
    assert len(got) == 3 and got[0].shape == expected.shape
    assert np.abs(got[0].astype(int) - expected).mean() < 6


def test_apply_rotation_is_counter_clockwise():
    a = np.zeros((2, 3, 1), np.uint8)
    a[0, 0] = 1  # top-left
    assert apply_rotation(a, 90)[2, 0, 0] == 1  # CCW: top-left → bottom-left
    assert apply_rotation(a, 270)[0, 1, 0] == 1  # CW: top-left → top-right
    assert apply_rotation(a, -90)[0, 1, 0] == 1
    assert apply_rotation(a, 0) is a


def test_variable_frame_rate_yields_all_frames_in_order(tmp_path, media):
    frames = [np.full((32, 32, 3), 20 * i, np.uint8) for i in range(8)]
    pts = [0, 3, 4, 10, 11, 12, 30, 31]  # irregular, time base 1/100 s
    p = media.raw_video(tmp_path / "vfr.mp4", frames, fps=100, pts=pts, time_base=Fraction(1, 100))
    got = list(read_frames(p))
    assert len(got) == 8
    means = [g.mean() for g in got]
    assert means == sorted(means) and abs(means[-1] - 140) < 5


def test_max_frames(tmp_path, media):
    p = media.raw_video(tmp_path / "v.mp4", [media.smooth_frame(i) for i in range(10)])
    assert len(list(read_frames(p, max_frames=4))) == 4
    with pytest.raises(ConfigError):
        read_frames(p, max_frames=0)


def test_bad_video_files(tmp_path, media):
    with pytest.raises(InputError, match=r"nope\.mp4.*not found"):
        probe_video(tmp_path / "nope.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(InputError, match=r"empty\.mp4.*empty"):
        probe_video(tmp_path / "empty.mp4")
    with pytest.raises(InputError, match=r"empty\.mp4"):
        read_frames(tmp_path / "empty.mp4")
    (tmp_path / "t.mp4").write_text("not a video at all\n" * 20)
    with pytest.raises(InputError, match=r"t\.mp4.*not a readable"):
        probe_video(tmp_path / "t.mp4")
    wav = media.raw_audio(tmp_path / "a.wav", media.sine(440, 0.2, 16000), 16000, "pcm_s16le")
    with pytest.raises(InputError, match=r"a\.wav has no video stream"):
        probe_video(wav)


def test_container_without_frames(tmp_path):
    p = tmp_path / "noframes.mp4"
    with av.open(str(p), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        c.start_encoding()
    with pytest.raises(InputError, match=r"noframes\.mp4"):
        probe_video(p)
    with pytest.raises(InputError, match=r"noframes\.mp4"):
        list(read_frames(p))


def test_decode_error_mid_file_names_file_and_frame(tmp_path, media, monkeypatch):
    p = media.raw_video(tmp_path / "c.mp4", [media.smooth_frame(i) for i in range(6)])
    reader = read_frames(p)
    real = reader._frames

    def broken():
        for i, f in enumerate(real):
            if i == 3:
                raise av.InvalidDataError(1094995529, "Invalid data found when processing input")
            yield f

    reader._frames = broken()
    got = []
    with pytest.raises(InputError, match=r"c\.mp4.*frame 3"):
        for f in reader:
            got.append(f)
    assert len(got) == 3


def test_truncated_video_file(tmp_path, media):
    p = media.raw_video(tmp_path / "full.mp4", [media.smooth_frame(i) for i in range(20)])
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(p.read_bytes()[:400])  # header only: nothing decodable
    with pytest.raises(InputError, match=r"cut\.mp4"):
        list(read_frames(cut))


def test_writer_dropped_without_close_leaves_no_temp(tmp_path, media):
    w = VideoWriter(tmp_path / "d.mp4", fps=25)
    w.write(media.smooth_frame(0))
    w.abort()
    assert list(tmp_path.iterdir()) == []
    assert vmod._as_rate(23.976) == Fraction(24000, 1001)


def test_file_cut_short_is_reported_with_frame_index(tmp_path):
    frames = [np.random.default_rng(i).integers(0, 255, (64, 64, 3), dtype=np.uint8) for i in range(30)]
    full = tmp_path / "full.mp4"
    with VideoWriter(full, fps=25) as w:  # faststart: the index is complete even when cut
        for f in frames:
            w.write(f)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(full.read_bytes()[: int(full.stat().st_size * 0.6)])
    with pytest.raises(InputError, match=r"cut\.mp4 is truncated"):
        probe_video(cut)
    got = []
    with pytest.raises(InputError, match=r"cut\.mp4 is truncated: decoding stopped at frame \d+ of 30"):
        for f in read_frames(cut):
            got.append(f)
    assert 0 < len(got) < 30
    assert len(list(read_frames(full))) == 30  # the intact file is not flagged


def test_still_image_refused_but_gif_is_a_video(tmp_path):
    from PIL import Image

    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "still.png")
    with pytest.raises(InputError, match=r"still\.png is a still image"):
        probe_video(tmp_path / "still.png")
    imgs = [Image.fromarray(np.full((20, 30, 3), i * 60, np.uint8)) for i in range(4)]
    imgs[0].save(tmp_path / "anim.gif", save_all=True, append_images=imgs[1:], duration=100)
    info = probe_video(tmp_path / "anim.gif")
    assert (info.width, info.height, info.frame_count) == (30, 20, 4)
    assert [int(f.mean() // 60) for f in read_frames(tmp_path / "anim.gif")] == [0, 1, 2, 3]


def test_write_failure_is_an_avatar_error_and_leaves_nothing(tmp_path, media, monkeypatch):
    from avatar.errors import AvatarError

    def disk_full(packets):
        raise OSError(28, "No space left on device")

    with pytest.raises(AvatarError, match=r"full\.mp4.*frame 0"):
        with VideoWriter(tmp_path / "full.mp4", fps=25) as w:
            monkeypatch.setattr(w, "_mux", disk_full)
            w.write(media.smooth_frame(0))
    assert list(tmp_path.iterdir()) == []
