import warnings

import numpy as np
import pytest

from avatar.errors import ConfigError, InputError
from avatar.motion.audio import MouthStreamer, speech_track


def test_tts_track_has_audio_and_closures(spoken):
    _, tr = spoken
    assert tr.source == "tts" and tr.audio.dtype == np.float32 and tr.sample_rate == 22050
    assert len(tr) == int(np.ceil(len(tr.audio) / tr.sample_rate * 25 - 1e-9))
    assert tr.openness.max() > 0.35  # ordinary speech: about 0.6 of wide open (the effort gain)
    assert tr.openness[0] == 0.0 and tr.openness[-1] == 0.0  # closed in the silence around speech
    assert (tr.closed == 1.0).sum() >= 6  # p, b, m in the sentence


def test_forced_alignment_on_own_text(spoken):
    text, tr = spoken
    al = speech_track(tr.audio, tr.sample_rate, 25, transcript=text, head_amplitude=0, blink_rate=0)
    assert al.source == "alignment"
    assert np.corrcoef(al.openness, tr.openness)[0, 1] > 0.8


def test_mismatched_transcript_falls_back_with_warning(spoken):
    _, tr = spoken
    with pytest.warns(UserWarning, match="audio-only network"):
        out = speech_track(tr.audio, tr.sample_rate, 25, transcript="seven green parrots sang loudly in the kitchen yesterday")
    assert out.source == "network" and len(out) == len(tr)


def test_unknown_words_align(espeak_ok):
    text = "Zorblax and Quimbly met Blorf."
    tts = speech_track(None, 0, 25, text=text, voice="en-us")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        al = speech_track(tts.audio, tts.sample_rate, 25, transcript=text)
    assert al.source == "alignment"


def test_shipped_weights_track_the_rules(spoken):
    _, tr = spoken
    net = speech_track(tr.audio, tr.sample_rate, 25)
    assert net.source == "network"
    assert np.corrcoef(net.openness, tr.openness)[0, 1] > 0.7


def test_streaming_equals_offline(spoken):
    _, tr = spoken
    off = speech_track(tr.audio, tr.sample_rate, 30)
    a16 = off.audio
    s = MouthStreamer(30)
    rng = np.random.default_rng(0)
    out, i = [], 0
    while i < len(a16):
        n = int(rng.integers(1, 2000))
        out += s.push(a16[i:i + n])
        i += n
    out += s.flush()
    assert len(out) == len(off)
    assert np.abs(np.array([m.openness for m in out]) - off.openness).max() < 1e-4
    assert s.latency_s <= 0.2


def test_streamer_memory_is_bounded():
    s = MouthStreamer(25)
    chunk = (np.random.default_rng(1).standard_normal(16000) * 0.05).astype(np.float32)
    sizes = []
    for _ in range(20):
        s.push(chunk)
        sizes.append(len(s._buf))
    assert max(sizes[5:]) <= max(sizes[:5]) + 2 and max(sizes) < 50


@pytest.mark.parametrize("sr", [8000, 44100, 48000])
def test_any_rate_and_stereo(spoken, sr):
    import soxr

    _, tr = spoken
    x = soxr.resample(tr.audio, tr.sample_rate, sr).astype(np.float32)
    st = np.stack([x, x * 0.5], axis=1)
    out = speech_track(st, sr, 25)
    assert abs(len(out) - len(tr)) <= 1 and np.all(np.isfinite(out.openness))


def test_int16_silence_and_empty():
    sil = speech_track(np.zeros(32000, np.int16), 16000, 25)
    assert len(sil) == 50 and np.mean(sil.openness < 0.05) >= 0.95
    empty = speech_track(np.zeros(0, np.float32), 16000, 25)
    assert len(empty) == 0 and empty.head.shape == (0, 5)


def test_bad_inputs():
    with pytest.raises(InputError):
        speech_track(None, 16000, 25)
    with pytest.raises(InputError):
        speech_track(np.full(100, np.nan, np.float32), 16000, 25)
    with pytest.raises(InputError):
        speech_track(np.zeros((2, 2, 2)), 16000, 25)
    with pytest.raises(InputError):
        speech_track(np.zeros(100), 0, 25)
    with pytest.raises(ConfigError):
        speech_track(np.zeros(100), 16000, 0)


def test_audio_files(tmp_path, spoken):
    import soundfile as sf

    from avatar.motion.audio import load_audio

    _, tr = spoken
    p = tmp_path / "x.wav"
    sf.write(p, np.stack([tr.audio, tr.audio], 1), tr.sample_rate, subtype="FLOAT")
    a = load_audio(p)
    assert a.ndim == 1 and abs(len(a) / 16000 - len(tr.audio) / tr.sample_rate) < 0.05
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    with pytest.raises(InputError):
        load_audio(bad)


def test_blinks_and_head_motion_are_seeded(spoken):
    _, tr = spoken
    a = speech_track(tr.audio, tr.sample_rate, 25, seed=3, blink_rate=30)
    b = speech_track(tr.audio, tr.sample_rate, 25, seed=3, blink_rate=30)
    c = speech_track(tr.audio, tr.sample_rate, 25, seed=4, blink_rate=30)
    assert np.array_equal(a.head, b.head) and not np.array_equal(a.head, c.head)
    assert a.blink.max() == 1.0 and np.abs(a.head[:, :3]).max() < 0.2


def test_speech_span_finds_the_loud_part():
    from avatar.motion.audio.align import speech_span

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1e-4, 8000), rng.normal(0, 0.2, 16000), rng.normal(0, 1e-4, 8000)]).astype(np.float32)
    onset, offset = speech_span(x)
    assert abs(onset - 0.5) <= 0.011 and abs(offset - 1.5) <= 0.011
    noise = rng.normal(0, 0.1, 32000).astype(np.float32)  # no quiet stretch: nothing to trim by
    assert speech_span(noise) == (0.0, 2.0)


def test_alignment_never_holds_the_mouth_open_through_silence(spoken, monkeypatch):
    """The no-filler attempt gives leading/trailing silence to the first/last phone; the aligner
    trims them back to where the speech is."""
    from avatar.motion.audio import align as align_mod
    import soxr

    text, tr = spoken
    audio = soxr.resample(tr.audio, tr.sample_rate, 16000).astype(np.float32)
    pad = np.zeros(9600, np.float32)  # 0.6 s
    padded = np.concatenate([pad, audio, pad])
    monkeypatch.setattr(align_mod, "_ATTEMPTS", ({"fsgusefiller": False},))
    phones = align_mod.align(padded, text)
    spoken_phones = [p for p in phones if p.phone != "SIL"]
    duration = len(padded) / 16000
    assert spoken_phones[0].start >= 0.5 and spoken_phones[-1].end <= duration - 0.5
    assert phones[0].phone == "SIL" and phones[-1].phone == "SIL"
