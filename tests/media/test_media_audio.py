from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from avatar.errors import ConfigError, InputError, ShapeError
from avatar.media.video import AudioSpec, VideoWriter, has_audio, probe_video, read_audio


def _write(out, media, n, fps=25, audio=None, size=(64, 48)):
    with VideoWriter(out, fps=fps, size=size, audio=audio) as w:
        for i in range(n):
            w.write(media.smooth_frame(i, *size))
    return out


def test_pcm_sine_muxed_and_read_back(tmp_path, media):
    sr = 48000
    pcm = media.sine(440, 3.0, sr)  # longer than the video: must be cut
    out = _write(tmp_path / "a.mp4", media, 40, audio=AudioSpec.from_array(pcm, sr))
    info = probe_video(out)
    assert info.has_audio and has_audio(out)
    a = read_audio(out, sample_rate=16000)
    assert a.dtype == np.float32 and a.ndim == 1
    assert len(a) / 16000 == pytest.approx(40 / 25, abs=0.05)
    assert media.dominant_freq(a, 16000) == pytest.approx(440, abs=5)
    assert 0.15 < np.abs(a[1000:-1000]).max() <= 0.35


def test_audio_starts_with_frame_zero(tmp_path, media):
    sr = 48000
    pcm = np.zeros(sr, np.float32)
    onset = int(0.3 * sr)
    pcm[onset:] = media.sine(1000, 1.0, sr)[: sr - onset]  # silence, then a tone from 0.3 s
    out = _write(tmp_path / "b.mp4", media, 25, audio=AudioSpec.from_array(pcm, sr))
    a = read_audio(out, sample_rate=sr)
    env = np.abs(a)
    first = int(np.argmax(env > 0.05))
    assert abs(first - onset) / sr < 0.005  # no encoder-delay offset


def test_stereo_int16_and_odd_rate(tmp_path, media):
    sr = 22000  # not an AAC rate: resampled on the way in
    left = (media.sine(300, 1.0, sr) * 32767).astype(np.int16)
    pcm = np.stack([left, left], axis=1)
    out = _write(tmp_path / "c.mp4", media, 20, audio=AudioSpec.from_array(pcm, sr))
    a = read_audio(out, sample_rate=16000, mono=False)
    assert a.ndim == 2 and a.shape[1] == 2
    assert media.dominant_freq(a[:, 0], 16000) == pytest.approx(300, abs=5)
    assert len(a) / 16000 == pytest.approx(20 / 25, abs=0.05)


def test_audio_copied_from_driving_video(tmp_path, media):
    sr = 44100
    drive = media.raw_video(
        tmp_path / "drive.mp4", [media.smooth_frame(i) for i in range(75)], audio=(media.sine(330, 3.0, sr), sr)
    )
    assert has_audio(drive)
    out = _write(tmp_path / "out.mp4", media, 30, audio=AudioSpec.from_file(drive))  # 1.2 s of 3 s
    a = read_audio(out, sample_rate=16000)
    assert len(a) / 16000 == pytest.approx(1.2, abs=0.05)
    assert media.dominant_freq(a, 16000) == pytest.approx(330, abs=5)


def test_audio_from_a_wav_file(tmp_path, media):
    wav = tmp_path / "speech.wav"
    sf.write(wav, media.sine(250, 2.0, 16000), 16000, subtype="PCM_16")
    out = _write(tmp_path / "talk.mp4", media, 25, audio=AudioSpec.from_file(wav))
    a = read_audio(out, sample_rate=16000)
    assert len(a) / 16000 == pytest.approx(1.0, abs=0.05)
    assert media.dominant_freq(a, 16000) == pytest.approx(250, abs=5)


def test_copied_audio_keeps_its_offset_to_the_video(tmp_path, media):
    sr = 48000
    drive = media.raw_video(
        tmp_path / "late.mp4",
        [media.smooth_frame(i) for i in range(50)],
        audio=(media.sine(1000, 1.0, sr), sr),
        audio_delay=0.5,  # the sound starts half a second after the first frame
    )
    out = _write(tmp_path / "out.mp4", media, 40, audio=AudioSpec.from_file(drive))
    a = read_audio(out, sample_rate=sr)
    assert int(np.argmax(np.abs(a) > 0.05)) / sr == pytest.approx(0.5, abs=0.01)


def test_audio_source_without_audio_is_refused(tmp_path, media):
    silent = media.raw_video(tmp_path / "silent.mp4", [media.smooth_frame(i) for i in range(3)])
    assert not has_audio(silent)
    with pytest.raises(InputError, match=r"silent\.mp4 has no audio stream"):
        VideoWriter(tmp_path / "o.mp4", fps=25, audio=AudioSpec.from_file(silent))  # fails before any frame
    assert sorted(p.name for p in tmp_path.iterdir()) == ["silent.mp4"]
    with pytest.raises(InputError, match=r"silent\.mp4 has no audio stream"):
        read_audio(silent)


def test_audio_spec_validation():
    with pytest.raises(ConfigError):
        AudioSpec()
    with pytest.raises(ShapeError):
        AudioSpec.from_array(np.zeros((3, 100), np.float32), 16000)
    with pytest.raises(ConfigError):
        AudioSpec(samples=np.zeros(10, np.float32))


def test_read_float_stereo_wav_44k_to_16k_mono(tmp_path, media):
    sr = 44100
    left = media.sine(440, 1.5, sr, amp=0.5)
    right = media.sine(440, 1.5, sr, amp=0.1)
    p = tmp_path / "s.wav"
    sf.write(p, np.stack([left, right], axis=1), sr, subtype="FLOAT")
    a = read_audio(p, sample_rate=16000, mono=True)
    assert a.shape == (pytest.approx(24000, abs=2),)
    assert media.dominant_freq(a, 16000) == pytest.approx(440, abs=5)
    assert np.abs(a[2000:-2000]).max() == pytest.approx(0.3, abs=0.03)  # average of the channels
    st = read_audio(p, sample_rate=16000, mono=False)
    assert st.shape[1] == 2 and np.abs(st[:, 0]).max() > 3 * np.abs(st[:, 1]).max()


def test_read_int16_wav(tmp_path, media):
    p = tmp_path / "i.wav"
    sf.write(p, (media.sine(200, 0.5, 8000, amp=0.5) * 32767).astype(np.int16), 8000, subtype="PCM_16")
    a = read_audio(p, sample_rate=16000)
    assert len(a) == pytest.approx(8000, abs=2) and np.abs(a).max() == pytest.approx(0.5, abs=0.02)


@pytest.mark.parametrize(("name", "codec"), [("t.mp3", "libmp3lame"), ("t.m4a", "aac")])
def test_read_compressed_audio(tmp_path, media, name, codec):
    sr = 44100
    p = media.raw_audio(tmp_path / name, media.sine(523, 1.0, sr), sr, codec)
    a = read_audio(p, sample_rate=16000)
    assert len(a) / 16000 == pytest.approx(1.0, abs=0.06)
    assert media.dominant_freq(a, 16000) == pytest.approx(523, abs=5)


def test_bad_audio_files(tmp_path):
    with pytest.raises(InputError, match=r"gone\.wav.*not found"):
        read_audio(tmp_path / "gone.wav")
    (tmp_path / "e.wav").write_bytes(b"")
    with pytest.raises(InputError, match=r"e\.wav.*empty"):
        read_audio(tmp_path / "e.wav")
    (tmp_path / "junk.mp3").write_bytes(b"\x00\x01junk" * 50)
    with pytest.raises(InputError, match=r"junk\.mp3"):
        read_audio(tmp_path / "junk.mp3")
    p = tmp_path / "zero.wav"
    sf.write(p, np.zeros(0, np.float32), 16000)
    with pytest.raises(InputError, match=r"zero\.wav"):
        read_audio(p)
    with pytest.raises(InputError, match=r"gone\.mp4"):
        has_audio(tmp_path / "gone.mp4")
