"""Lips lead the sound; openings follow vocal effort and stay in a real speaker's range; rounding follows the phones."""

import numpy as np
import pytest

from avatar.motion import rig as R
from avatar.motion.audio import speech_track, talk_targets
from avatar.motion.audio.visemes import VISEME_INDEX


def _onset(openness: np.ndarray, fps: float, thr: float = 0.05) -> float:
    return float(np.argmax(openness > thr)) / fps


def _speech16k(spoken):
    import soxr

    _, tr = spoken
    return soxr.resample(tr.audio, tr.sample_rate, 16000).astype(np.float32)


@pytest.mark.parametrize("path", ["network", "tts"])
def test_offline_mouth_leads_a_synthetic_onset_by_the_configured_lead(spoken, path):
    text, _ = spoken
    fps = 100.0
    if path == "tts":
        early = speech_track(None, 0, fps, text=text, lead_s=0.12, head_amplitude=0, blink_rate=0)
        late = speech_track(None, 0, fps, text=text, lead_s=0.0, head_amplitude=0, blink_rate=0)
    else:
        x = np.concatenate([np.zeros(8000, np.float32), _speech16k(spoken)])  # speech starts after 0.5 s of silence
        early = speech_track(x, 16000, fps, lead_s=0.12, head_amplitude=0, blink_rate=0)
        late = speech_track(x, 16000, fps, lead_s=0.0, head_amplitude=0, blink_rate=0)
    assert len(early) == len(late)
    assert _onset(late.openness, fps) - _onset(early.openness, fps) == pytest.approx(0.12, abs=0.011)
    # the whole track moves, not just the onset
    np.testing.assert_allclose(early.openness[:-12], late.openness[12:], atol=0.03)


def _gaps(face: np.ndarray, track) -> np.ndarray:
    lm = talk_targets(face, track)
    return lm[:, 14, 1] - lm[:, 13, 1]


def test_a_shout_opens_wider_and_normal_speech_stays_modest(spoken, canonical_face):
    x = _speech16k(spoken) * 0.05 / np.abs(_speech16k(spoken)).max()
    pause = np.zeros(8000, np.float32)
    loud = np.concatenate([x, pause, x, pause, x * 6.0])  # the third time 15.6 dB louder
    tr = speech_track(loud, 16000, 25, head_amplitude=0, blink_rate=0)
    n = len(x) * 25 // 16000
    k2, k3 = (len(x) + 8000) * 25 // 16000, 2 * (len(x) + 8000) * 25 // 16000
    normal, shout = tr.openness[k2:k2 + n], tr.openness[k3:k3 + n]
    assert np.percentile(shout, 90) > 1.2 * np.percentile(normal, 90)
    # normal speech: the lips part by at most a fifth of the portrait's mouth width (p95), whatever the level
    for level in (0.01, 0.05, 0.5):
        quiet = speech_track(x * level / 0.05, 16000, 25, head_amplitude=0, blink_rate=0)
        gap = _gaps(canonical_face, quiet)
        width = canonical_face[291, 0] - canonical_face[61, 0]
        assert np.percentile(gap, 95) <= 0.2 * width + (canonical_face[14, 1] - canonical_face[13, 1])
        assert gap.max() > 0.03 * width  # but it does move


def test_intensity_scales_the_opening(spoken, canonical_face):
    _, tr = spoken
    base = _gaps(canonical_face, tr)
    rig = R.MouthRig(canonical_face, R.RigConfig(intensity=0.5))
    half = np.array([rig.landmarks(tr.mouth(k))[14, 1] - rig.landmarks(tr.mouth(k))[13, 1] for k in range(len(tr))])
    rest = canonical_face[14, 1] - canonical_face[13, 1]
    apart = tr.closed < 0.3  # sealed frames are shut at any intensity
    assert apart.sum() > 20
    np.testing.assert_allclose(half[apart] - rest, 0.5 * (base[apart] - rest), atol=1e-9)


@pytest.mark.parametrize("source", ["tts", "network"])
def test_rounded_vowels_narrow_the_mouth_and_spread_ones_widen_it(espeak_ok, canonical_face, source):
    rounded = speech_track(None, 0, 25, text="Who knew? Two blue shoes. Oh, no, go slow.", head_amplitude=0, blink_rate=0)
    spread = speech_track(None, 0, 25, text="See me eat these cheese treats, Eve.", head_amplitude=0, blink_rate=0)
    if source == "network":
        rounded = speech_track(rounded.audio, rounded.sample_rate, 25, head_amplitude=0, blink_rate=0)
        spread = speech_track(spread.audio, spread.sample_rate, 25, head_amplitude=0, blink_rate=0)
    rest = canonical_face[291, 0] - canonical_face[61, 0]

    def width(track):
        lm = talk_targets(canonical_face, track)
        w = lm[:, 291, 0] - lm[:, 61, 0]
        speaking = track.openness > 0.05
        return float(np.median(w[speaking]))

    assert width(rounded) < rest - 0.03 * rest
    assert width(spread) > rest + 0.03 * rest


def test_silence_and_faint_noise_are_closed(canonical_face):
    rng = np.random.default_rng(0)
    for x in (np.zeros(48000, np.float32), (rng.standard_normal(48000) * 1e-3).astype(np.float32)):
        tr = speech_track(x, 16000, 25, head_amplitude=0, blink_rate=0)
        gap = _gaps(canonical_face, tr)
        assert np.mean(tr.openness < 0.05) >= 0.98
        assert np.all(gap <= canonical_face[14, 1] - canonical_face[13, 1] + 1e-2)  # never opens past rest
        assert np.mean(gap < 1e-9) >= 0.9  # and the lips are sealed


def test_hard_audio_gives_a_sane_mouth(spoken):
    """Clipping, music under the speech, 8 kHz telephone band: bounded openness, closed in the silence after."""
    import scipy.signal
    import soxr

    x = _speech16k(spoken)
    t = np.arange(len(x)) / 16000
    music = 0.1 * sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6)) * (1 + 0.5 * np.sin(2 * np.pi * 2 * t))
    sos = scipy.signal.butter(4, [300, 3400], btype="band", fs=16000, output="sos")
    phone = soxr.resample(scipy.signal.sosfilt(sos, x), 16000, 8000).astype(np.float32)
    for audio, sr in ((np.clip(x * 30, -1, 1), 16000), ((x + music).astype(np.float32), 16000), (phone, 8000)):
        tail = np.zeros(sr, np.float32)
        tr = speech_track(np.concatenate([audio, tail]), sr, 25, head_amplitude=0, blink_rate=0)
        assert np.all(np.isfinite(tr.openness)) and 0 <= tr.openness.min() and tr.openness.max() <= 1
        assert tr.openness.max() > 0.1  # speech still moves the mouth
        assert np.all(tr.openness[-15:] < 0.05)  # and the silence after it is closed
    assert VISEME_INDEX["sil"] == 0


def test_lead_and_intensity_are_checked():
    from avatar.config import SpeechConfig
    from avatar.errors import ConfigError

    for bad in ({"lead_s": -0.01}, {"lead_s": 0.3}, {"intensity": -1.0}, {"intensity": 4.0}):
        with pytest.raises(ConfigError):
            SpeechConfig(**bad)
    with pytest.raises(ConfigError):
        speech_track(np.zeros(1600, np.float32), 16000, 25, lead_s=0.5)
    with pytest.raises(ConfigError):
        R.RigConfig(intensity=-0.5)


def test_recognition_path_gives_phones_and_falls_back_on_silence(espeak_ok):
    from avatar.motion.audio.synthdata import flite_available, flite_utterance

    if not flite_available():
        pytest.skip("flite is not installed (apt-get install flite)")
    u = flite_utterance("Maybe the brown puppy will bob happily beside my mum.", "slt")
    tr = speech_track(u.audio, 16000, 25, recognise=True, head_amplitude=0, blink_rate=0)
    assert tr.source == "recognition"
    assert (tr.closed == 1.0).sum() >= 4 and tr.openness.max() > 0.2  # p/b/m from the phones, and it opens
    with pytest.warns(UserWarning, match="audio-only network"):
        sil = speech_track(np.zeros(32000, np.float32), 16000, 25, recognise=True)
    assert sil.source == "network" and np.all(sil.openness < 0.05)


def test_real_speech_bench_scores():
    """The real-speech benchmark's scoring: lag, opening ratios, width r and p/b/m closures on known tracks."""
    from avatar.bench._lipsync_real import MouthTrack, score

    rng = np.random.default_rng(0)
    real_open = np.abs(np.convolve(rng.standard_normal(400), np.ones(5) / 5, "same")) * 0.05
    real = MouthTrack(real_open, 1.0 + 0.1 * rng.standard_normal(400))
    late = MouthTrack(np.r_[np.zeros(2), real_open[:-2]] * 2.0, real.width.copy())  # 80 ms late, twice as wide
    s = score(late, real, 25.0, [(4.0, 4.1)])
    assert s["lag_ms"] == 80.0 and s["r_at_lag"] > 0.99 > s["r"]
    assert s["p90"] == pytest.approx(2.0, abs=0.05) and s["width_r"] == pytest.approx(1.0)
    assert s["pbm"] == 1 and s["pbm_closed"] in (0.0, 1.0)


def test_codec_round_trip_keeps_length_and_timing(spoken):
    """Training augmentation for real uploads: a lossy codec changes the sound, not where the phones are."""
    from avatar.motion.audio.synthdata import codec_roundtrip

    x = _speech16k(spoken)
    rng = np.random.default_rng(1)
    for _ in range(3):
        z, note = codec_roundtrip(x, rng)
        assert len(z) == len(x) and not np.array_equal(z, x)
        c = [float(np.dot(z[800 + k:len(x) - 800 + k], x[800:len(x) - 800])) for k in range(-40, 41)]
        assert int(np.argmax(c)) - 40 == 0, note


def test_festival_voices_give_speech_where_their_phones_say():
    """Training voices from festival (Debian festvox): 16 kHz speech whose bilabial closures fall
    where the utterance's segments put them (quiet), and its vowels loud."""
    from avatar.motion.audio import features as feat
    from avatar.motion.audio.synthdata import festival_utterance, festival_voices

    voices = festival_voices()
    if not voices:
        pytest.skip("festival voices are not installed (apt-get install festival festvox-kallpc16k …)")
    with pytest.raises(ValueError, match="unknown festival voice"):
        festival_utterance("hello", "no_such_voice")
    for voice in voices:
        u = festival_utterance('Mama, "papa" and baby bob amble.', voice, stretch=1.2, before=0.3, after=0.4)
        dur = len(u.audio) / feat.SAMPLE_RATE
        assert u.audio.dtype == np.float32 and abs(u.phones[-1].end - dur) < 0.02 and u.phones[0].start == 0.0
        db = 10 * np.log10(np.exp(feat.logmel(u.audio)).sum(1) + 1e-12)

        def level(kind: set[str]) -> float:
            frames = [db[int(p.start * 100) + 1:max(int(p.end * 100) - 1, int(p.start * 100) + 2)]
                      for p in u.phones if p.phone in kind and p.end - p.start > 0.03]
            return float(np.median(np.concatenate(frames)))

        closures, vowels = level({"M", "P", "B"}), level({"AA", "AE", "AH", "AX", "EY", "OW"})
        assert vowels - closures > 6.0, (voice, vowels, closures)
        assert level({"SIL"}) < closures  # the padding before and after is silent
