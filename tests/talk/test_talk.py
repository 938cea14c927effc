"""`avatar talk` and Animator.talk end to end: formats, A/V sync, bad input, streaming agreement."""

from __future__ import annotations

import io
import math
import shutil
import subprocess
import warnings
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from avatar.cli import main

CONSENT = ["--consent", "I agree to be animated for tests", "--subject", "Test Subject"]
FAST = ["--size", "256", "--max-size", "384", "--quiet"]


@pytest.fixture(scope="module")
def speech16k() -> np.ndarray:
    """1.0 s silence, ~1.2 s of espeak-ng speech (and its own trailing pause), 0.8 s silence (16 kHz float32)."""
    from avatar.motion.audio import espeak
    from avatar.motion.audio.track import to_mono_16k

    if not espeak.available():
        pytest.skip("espeak-ng (Debian package libespeak-ng1) is not installed")
    text = "Mama made a map of Bob's boat."
    exe = shutil.which("espeak-ng")
    if exe:
        # a fresh espeak-ng process: the library loaded in this one carries state from earlier
        # utterances (the same sentence came out a few samples longer or shorter after other
        # tests' speech), and the sync check below turned on such a difference
        wav = subprocess.run([exe, "-v", "en-us", "-s", "170", "--stdout", text], capture_output=True, check=True).stdout
        audio, rate = sf.read(io.BytesIO(wav), dtype="float32")
    else:
        u = espeak.synthesize(text, rate=170)
        audio, rate = u.audio, u.sample_rate
    speech = to_mono_16k(audio, rate)
    speech = 0.5 * speech / np.abs(speech).max()
    return np.concatenate([np.zeros(16000, np.float32), speech, np.zeros(12800, np.float32)])


def _video_frames(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def _audio(path: Path) -> tuple[np.ndarray, int]:
    with av.open(str(path)) as c:
        s = c.streams.audio[0]
        rate = s.rate
        data = np.concatenate([f.to_ndarray().mean(axis=0) for f in c.decode(s)])
    return data, rate


def _talk(args: list[str]) -> int:
    return main(["talk", *args, *FAST])


def test_talk_audio_sync_and_labels(tmp_path, portrait_path, speech16k, capsys, monkeypatch):
    import uuid

    # a fixed consent id, so the same watermark every run: the tracker's reading of the written
    # video moves with the watermark's payload (the closed tail below read -0.50 to +0.49 of the
    # opening over 17 runs with random ids; 1 of 5 other fixed ids reads 0.48), which made the
    # check a draw
    monkeypatch.setattr("avatar.output.consent.uuid.uuid4", lambda: uuid.UUID(int=0x5EED))
    wav = tmp_path / "speech.wav"
    sf.write(wav, speech16k, 16000)
    out = tmp_path / "talk.mp4"
    code = _talk([str(portrait_path), str(wav), "-o", str(out), "--blink-rate", "0", "--head-motion", "0", *CONSENT])
    assert code == 0, capsys.readouterr().err
    frames = _video_frames(out)
    duration = len(speech16k) / 16000
    assert abs(len(frames) - round(duration * 25)) <= 1
    audio, rate = _audio(out)
    assert abs(len(audio) / rate - duration) < 0.1
    # The written audio starts where the silence ends, and the written video's mouth moves with it.
    sound_on = np.argmax(np.abs(audio) > 0.05) / rate
    from avatar.face.landmarks import LandmarkDetector

    with LandmarkDetector(video=True) as det:
        gap = np.array([np.ptp(det.detect(f)[0].landmarks[[13, 14], 1]) for f in frames])
    rest = np.median(gap[:20])
    assert gap.max() - rest > 2.0, "the mouth never opened"  # the tracker's noise on a still mouth: under 1 px
    assert abs(sound_on - 1.0) < 0.05
    # Sync: the lag that best lines the mouth's opening up with the sound's loudness (per frame).
    # A whole-clip correlation, not the first opening's frame: the opening is a few pixels here,
    # and the output's own watermark moves the tracker's reading of one frame by about 1 px.
    env = np.array([np.sqrt(np.mean(audio[int(i * rate / 25):int((i + 1) * rate / 25)] ** 2)) for i in range(len(gap))])
    lags = np.arange(-12, 13)
    corr = [np.corrcoef(gap[max(0, k):len(gap) + min(0, k)], env[max(0, -k):len(env) - max(0, k)])[0, 1] for k in lags]
    best = int(lags[int(np.argmax(corr))])
    assert max(corr) > 0.3 and abs(best) <= 3, (best, np.round(corr, 2))  # within ±0.12 s
    # Silence at the end: the mouth is back at rest, not open. The tracker reading the written
    # video puts a closed mouth within a pixel or so of its opening at the start, depending on
    # the output's own watermark (random consent ids, 17 runs: tail - rest from -0.50 to +0.49 of
    # the opening's amplitude; -0.12 with the fixed id above); a mouth left open reads near 1.
    assert np.median(gap[-5:]) - rest < 0.4 * (gap.max() - rest)
    from avatar.output.verify import verify

    report = verify(out)
    assert report.labelled_ai


@pytest.mark.parametrize("fmt", ["mp3", "m4a", "wav8k", "wav44k_stereo", "wav48k_float"])
def test_talk_audio_formats(fmt, tmp_path, portrait_path, speech16k, capsys):
    import librosa

    base = speech16k[:24000]
    if fmt.startswith("wav"):
        rate = {"wav8k": 8000, "wav44k_stereo": 44100, "wav48k_float": 48000}[fmt]
        x = librosa.resample(base, orig_sr=16000, target_sr=rate)
        if "stereo" in fmt:
            x = np.stack([x, 0.5 * x], axis=1)
        src = tmp_path / "in.wav"
        sf.write(src, x, rate, subtype="FLOAT" if "float" in fmt else "PCM_16")
    else:
        src = tmp_path / f"in.{fmt}"
        codec = {"mp3": "libmp3lame", "m4a": "aac"}[fmt]
        with av.open(str(src), "w") as c:
            s = c.add_stream(codec, rate=16000 if fmt == "mp3" else 44100)
            s.layout = "mono"
            x = base if fmt == "mp3" else librosa.resample(base, orig_sr=16000, target_sr=44100)
            frame = av.AudioFrame.from_ndarray(x[None].astype(np.float32), format="fltp", layout="mono")
            frame.sample_rate = s.rate
            for p in s.encode(frame):
                c.mux(p)
            for p in s.encode(None):
                c.mux(p)
    out = tmp_path / "o.mp4"
    assert _talk([str(portrait_path), str(src), "-o", str(out), *CONSENT]) == 0, capsys.readouterr().err
    frames = _video_frames(out)
    assert abs(len(frames) - 1.5 * 25) <= 2
    assert _audio(out)[0].size > 0


def test_talk_silence_keeps_mouth_closed(tmp_path, portrait_path, capsys):
    from avatar.pipeline import Animator

    wav = tmp_path / "silence.wav"
    sf.write(wav, np.zeros(16000, np.float32), 16000)
    out = tmp_path / "o.mp4"
    assert _talk([str(portrait_path), str(wav), "-o", str(out), "--blink-rate", "0", "--head-motion", "0", *CONSENT]) == 0
    frames = _video_frames(out)
    assert len(frames) == 25
    # Nothing moves: every frame equals the first within encoder noise.
    assert np.abs(frames.astype(np.int16) - frames[0].astype(np.int16)).mean(axis=(1, 2, 3)).max() < 1.0
    assert Animator  # the API path is exercised in the other tests


@pytest.mark.parametrize("case", ["empty_wav", "zero_bytes", "not_audio", "no_audio_stream", "missing"])
def test_talk_bad_audio_is_refused_cleanly(case, tmp_path, portrait_path, driving_clip, capsys):
    src = tmp_path / "bad.wav"
    if case == "empty_wav":
        sf.write(src, np.zeros(0, np.float32), 16000)
    elif case == "zero_bytes":
        src.write_bytes(b"")
    elif case == "not_audio":
        src.write_bytes(b"this is not audio at all" * 100)
    elif case == "no_audio_stream":
        import shutil

        src = tmp_path / "video.mp4"
        with av.open(str(driving_clip)) as c_in, av.open(str(src), "w") as c_out:
            v = c_out.add_stream("libx264", rate=25)
            v.width, v.height, v.pix_fmt = 256, 256, "yuv420p"
            for f in c_in.decode(video=0):
                for p in v.encode(f.reformat(format="yuv420p")):
                    c_out.mux(p)
            for p in v.encode(None):
                c_out.mux(p)
        assert shutil.which  # keep the import used
    out = tmp_path / "o.mp4"
    arg = str(src) if case != "missing" else str(tmp_path / "nope.wav")
    code = _talk([str(portrait_path), arg, "-o", str(out), *CONSENT])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "error:" in err and "Traceback" not in err
    assert not out.exists()
    assert not any(p.name.startswith(".o.mp4") or p.suffix == ".tmp" for p in tmp_path.iterdir())


def test_talk_needs_consent_for_audio_use(tmp_path, portrait_path, speech16k, capsys):
    wav = tmp_path / "s.wav"
    sf.write(wav, speech16k[:8000], 16000)
    out = tmp_path / "o.mp4"
    assert _talk([str(portrait_path), str(wav), "-o", str(out)]) == 1
    assert "consent" in capsys.readouterr().err.lower() and not out.exists()
    # A consent whose scope excludes audio-driven use is refused too.
    assert main(["clone", str(portrait_path), "--subject", "T", "--consent", "video only", "--scope", "video"]) == 0
    assert _talk([str(portrait_path), str(wav), "-o", str(out)]) == 1
    assert "audio" in capsys.readouterr().err and not out.exists()


def test_talk_text_and_transcript(tmp_path, portrait_path, speech16k, capsys):
    out = tmp_path / "text.mp4"
    assert _talk([str(portrait_path), "--text", "Hello, my name is Bob.", "-o", str(out), *CONSENT]) == 0
    n = len(_video_frames(out))
    audio, rate = _audio(out)
    assert n > 20 and abs(n / 25 - len(audio) / rate) < 0.1
    # A transcript that does not match the audio falls back to the network with a warning.
    wav = tmp_path / "s.wav"
    sf.write(wav, speech16k, 16000)
    from avatar.config import AvatarConfig, FaceConfig
    from avatar.pipeline import Animator

    animator = Animator(AvatarConfig(face=FaceConfig(size=256)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = animator.talk(portrait_path, tmp_path / "t.mp4", audio=wav, progress=False,
                            transcript="completely unrelated words about zebras and violins")
    assert res.frames == math.ceil(len(speech16k) / 16000 * 25 - 1e-9)
    assert any("network" in str(w.message) for w in caught), [str(w.message) for w in caught]
    assert (tmp_path / "t.mp4").exists()


def test_streamed_targets_match_offline(portrait, speech16k):
    """LiveSpeech (chunks of 20 ms) gives the same mouth as the offline track."""
    from avatar.face.landmarks import detect_face
    from avatar.motion.audio import speech_track
    from avatar.motion.audio.drive import LiveSpeech, SpeechDriver
    from avatar.motion.rig import INNER_LOWER, INNER_UPPER

    lm = detect_face(portrait).landmarks
    track = speech_track(speech16k, 16000, 25.0, head_amplitude=0.0, blink_rate=0.0)
    offline = np.array(list(SpeechDriver(lm).targets(track)))
    live = LiveSpeech(lm, fps=25.0, head_amplitude=0.0, blink_rate=0.0)
    streamed = []
    for i in range(0, len(speech16k), 320):
        streamed += live.push(speech16k[i:i + 320])
    streamed = np.array(streamed + live.flush())
    assert streamed.shape == offline.shape
    gap_off = offline[:, INNER_LOWER, 1].mean(1) - offline[:, INNER_UPPER, 1].mean(1)
    gap_live = streamed[:, INNER_LOWER, 1].mean(1) - streamed[:, INNER_UPPER, 1].mean(1)
    assert gap_off.max() > 2.0, "speech should open the mouth"
    np.testing.assert_allclose(gap_live, gap_off, atol=1e-3)


def test_head_motion_from_a_driving_video(tmp_path, portrait_path, driving_clip, speech16k, capsys):
    """--head-from: the head follows the video (looped) while the lips follow the speech."""
    from avatar.face.landmarks import LandmarkDetector
    from avatar.media.video import read_frames
    from avatar.motion.decompose import decompose

    wav = tmp_path / "s.wav"
    sf.write(wav, speech16k[:24000], 16000)
    out = tmp_path / "head.mp4"
    code = _talk([str(portrait_path), str(wav), "-o", str(out), "--head-from", str(driving_clip),
                  "--blink-rate", "0", *CONSENT])
    assert code == 0, capsys.readouterr().err
    frames = _video_frames(out)
    with LandmarkDetector(video=True) as det:
        yaw_out = np.array([decompose(det.detect(f)[0].landmarks)[0].angles()[0] for f in frames])
    with LandmarkDetector(video=True) as det:
        drv = [decompose(det.detect(f)[0].landmarks)[0].angles()[0] for f in read_frames(driving_clip)]
    yaw_drv = np.array([drv[k % len(drv)] for k in range(len(frames))])
    assert np.ptp(yaw_drv) > 3.0, "the generated driving clip should turn its head"
    assert np.corrcoef(yaw_out, yaw_drv)[0, 1] > 0.8
    missing = tmp_path / "nope.mp4"
    assert _talk([str(portrait_path), str(wav), "-o", str(tmp_path / "x.mp4"), "--head-from", str(missing), *CONSENT]) == 1
    assert "nope.mp4" in capsys.readouterr().err and not (tmp_path / "x.mp4").exists()


def test_streamed_head_motion_and_blinks_match_offline(portrait, speech16k):
    """With idle head motion and blinks on, LiveSpeech's landmarks equal the offline ones."""
    from avatar.face.landmarks import detect_face
    from avatar.motion.audio import speech_track
    from avatar.motion.audio.drive import LiveSpeech, SpeechDriver

    lm = detect_face(portrait).landmarks
    track = speech_track(speech16k, 16000, 25.0, seed=3, head_amplitude=1.5, blink_rate=30.0)
    offline = np.array(list(SpeechDriver(lm).targets(track)))
    live = LiveSpeech(lm, fps=25.0, seed=3, head_amplitude=1.5, blink_rate=30.0)
    streamed = []
    for i in range(0, len(speech16k), 320):
        streamed += live.push(speech16k[i:i + 320])
    streamed = np.array(streamed + live.flush())
    assert streamed.shape == offline.shape
    moved = np.abs(offline - offline[0]).max(axis=(1, 2))
    assert moved.max() > 2.0  # the head really moves
    np.testing.assert_allclose(streamed, offline, atol=2e-2)
