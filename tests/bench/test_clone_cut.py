"""The clone benchmark's cut keeps a clip's sound with its frames."""

from fractions import Fraction

import av
import numpy as np

from avatar.bench.clone import cut
from avatar.media.video import read_audio, read_frames

FPS, RATE = 25, 16000


def _late_video(path, lead_frames: int = 2, flash: int = 23, frames: int = 50) -> float:
    """A clip whose first frame is shown ``lead_frames`` frames after its sound starts (as in
    phone and screen recordings); frame ``flash`` is white and its click sounds with it.
    Returns the flash's time in the clip."""
    flash_t = (lead_frames + flash) / FPS
    with av.open(str(path), "w") as c:
        vs = c.add_stream("libx264", rate=FPS)
        vs.width = vs.height = 64
        vs.pix_fmt = "yuv420p"
        vs.codec_context.time_base = Fraction(1, FPS)
        aus = c.add_stream("aac", rate=RATE, layout="mono")
        pcm = np.zeros(int((frames + lead_frames) / FPS * RATE) + 2048, np.float32)
        at = int(round(flash_t * RATE))
        pcm[at:at + 16] = 0.9
        for i in range(frames):
            img = np.full((64, 64, 3), 255 if i == flash else 60, np.uint8)
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts, f.time_base = lead_frames + i, Fraction(1, FPS)
            for p in vs.encode(f):
                c.mux(p)
        for p in vs.encode():
            c.mux(p)
        for k in range(0, len(pcm) - 1024, 1024):
            f = av.AudioFrame.from_ndarray(pcm[None, k:k + 1024], format="flt", layout="mono")
            f.sample_rate, f.pts, f.time_base = RATE, k, Fraction(1, RATE)
            for p in aus.encode(f):
                c.mux(p)
        for p in aus.encode():
            c.mux(p)
    return flash_t


def test_a_cut_keeps_the_sound_with_the_frames_of_a_clip_whose_video_starts_late(tmp_path):
    src = tmp_path / "late.mp4"
    _late_video(src)
    with read_frames(src) as reader:
        next(reader)
        assert abs(reader.time - 2 / FPS) < 1e-6  # the fixture: the video starts 80 ms after the sound
    out = cut(src, tmp_path / "cut.mp4", 0.0, 10.0)
    frames = list(read_frames(out))
    flash = int(np.argmax([f.mean() for f in frames]))
    click = float(np.argmax(np.abs(read_audio(out, RATE)))) / RATE
    # the cut's first frame is at 0 s: the click must sound when the white frame shows
    assert abs(click - flash / FPS) < 0.012, (click, flash / FPS)
