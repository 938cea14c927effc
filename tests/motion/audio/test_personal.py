"""A person's own audio-to-mouth model (avatar.motion.audio.personal): fitted on their speech and
tracked mouth, it follows their mouth on new speech where the generic openness does not."""

from __future__ import annotations

import numpy as np
import pytest

from avatar.motion.audio.personal import PersonalMouth, fit_personal_mouth, signal_features
from avatar.motion.audio.stream import MouthStreamer, network_frames

SR = 16000
FPS = 15.0


def _babble(seconds: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic speech-like sound: voiced vowels (harmonics under formants) and hiss-like
    fricatives in random order with short pauses; returns (audio, (N,) 1 where a fricative
    sounds, per sample)."""
    rng = np.random.default_rng(seed)
    out, fric = [], []
    total = 0
    while total < seconds * SR:
        kind = rng.choice(["vowel", "fricative", "pause"], p=[0.45, 0.35, 0.2])
        n = int(rng.uniform(0.08, 0.3) * SR)
        t = np.arange(n) / SR
        if kind == "vowel":
            f0 = rng.uniform(100, 180)
            f1, f2 = rng.uniform(300, 800), rng.uniform(900, 2200)
            x = sum(np.sin(2 * np.pi * k * f0 * t) * (np.exp(-((k * f0 - f1) / 150) ** 2)
                                                     + 0.5 * np.exp(-((k * f0 - f2) / 200) ** 2)) for k in range(1, 30))
        elif kind == "fricative":
            x = np.diff(rng.normal(0, 1, n + 1)) * 0.5  # high-passed noise
        else:
            x = rng.normal(0, 0.002, n)
        x = x / (np.abs(x).max() + 1e-9) * (0.5 if kind != "pause" else 0.002)
        out.append(x * np.hanning(n) ** 0.3)
        fric.append(np.full(n, 1.0 if kind == "fricative" else 0.0))
        total += n
    return np.concatenate(out).astype(np.float32)[: int(seconds * SR)], np.concatenate(fric)[: int(seconds * SR)]


def _odd_person(fric: np.ndarray, times: np.ndarray) -> np.ndarray:
    """A person who opens on hiss and stays closed on vowels (unlike anyone the generic network learnt)."""
    k = np.clip((times * SR).astype(int), 0, len(fric) - 1)
    win = int(0.04 * SR)
    c = np.convolve(fric, np.ones(win) / win, mode="same")
    return 0.02 + 0.05 * c[k]


def _openness(states) -> np.ndarray:
    return np.array([s.openness for s in states])


def test_personal_model_follows_its_person_on_new_speech():
    train, fric = _babble(40.0, seed=1)
    times = np.arange(0, 39.5, 1 / FPS)
    model, info = fit_personal_mouth(train, times, _odd_person(fric, times), lead_s=0.0)
    assert model is not None and info["used"], info
    assert info["r_cv"] > info["r_generic"] + 0.3
    new, fric_new = _babble(15.0, seed=2)
    t = np.arange(int(14.5 * FPS)) / FPS
    truth = _odd_person(fric_new, t)
    own = _openness(network_frames(new, FPS, lead_s=0.0, personal=model))[: len(t)]
    generic = _openness(network_frames(new, FPS, lead_s=0.0))[: len(t)]
    r_own, r_generic = np.corrcoef(own, truth)[0, 1], np.corrcoef(generic, truth)[0, 1]
    assert r_own > 0.7 and r_own > r_generic + 0.4, (r_own, r_generic)


def test_personal_model_streams_as_it_runs_offline_and_closes_in_silence():
    train, fric = _babble(30.0, seed=3)
    times = np.arange(0, 29.5, 1 / FPS)
    model, _ = fit_personal_mouth(train, times, _odd_person(fric, times), lead_s=0.06)
    audio = np.concatenate([np.zeros(SR, np.float32), _babble(6.0, seed=4)[0]])
    whole = network_frames(audio, 25.0, personal=model)
    s = MouthStreamer(25.0, personal=model)
    chunked = []
    for i in range(0, len(audio), 1234):
        chunked += s.push(audio[i:i + 1234])
    chunked += s.flush()
    assert len(chunked) == len(whole)
    np.testing.assert_allclose(_openness(chunked), _openness(whole), atol=1e-5)
    silent = whole[:20]  # the first 0.8 s: digital silence
    assert all(m.openness == 0.0 and m.closed >= 0.5 for m in silent)
    assert _openness(whole[30:]).max() > 0.2  # and it does open on the sound


def test_features_stream_alike_in_pushes_shorter_than_a_frame():
    """A push too short to complete a 10 ms frame (a sound card's small buffer, a file's last
    few samples) gives no rows, and the rows that follow are the offline ones: it crashed with
    "cannot reshape array of size 0" when a talking video avatar's speech ended on such a chunk."""
    from avatar.motion.audio.personal import BANDS, FrameFeatures

    audio = _babble(2.0, seed=5)[0]
    whole = signal_features(audio)
    stream, rows, i, k = FrameFeatures(), [], 0, 0
    sizes = (7, 150, 1000, 1, 333, 159)
    while i < len(audio):
        n = sizes[k % len(sizes)]
        feats, silent = stream.push(audio[i:i + n])
        assert feats.shape == (len(silent), BANDS + 1)
        rows.append(feats)
        i, k = i + n, k + 1
    empty, silent = FrameFeatures().push(audio[:7])
    assert empty.shape == (0, BANDS + 1) and silent.shape == (0,)
    np.testing.assert_allclose(np.concatenate(rows), whole, atol=1e-5)


def test_a_mouth_unrelated_to_the_sound_gives_no_model_to_use():
    train, _ = _babble(30.0, seed=5)
    times = np.arange(0, 29.5, 1 / FPS)
    rng = np.random.default_rng(0)
    noise = np.convolve(rng.normal(0, 1, len(times)), np.ones(5) / 5, mode="same")
    _, info = fit_personal_mouth(train, times, 0.03 + 0.01 * noise, lead_s=0.06)
    assert not info["used"] and "beat" in info["reason"]
    _, short = fit_personal_mouth(train[: 3 * SR], times[:40], 0.03 + 0.01 * noise[:40], lead_s=0.06)
    assert not short["used"] and "too little" in short["reason"]


def test_model_arrays_round_trip_and_bad_ones_are_refused():
    train, fric = _babble(20.0, seed=6)
    times = np.arange(0, 19.5, 1 / FPS)
    model, _ = fit_personal_mouth(train, times, _odd_person(fric, times), lead_s=0.06)
    again = PersonalMouth.from_arrays(model.to_arrays())
    feats = signal_features(_babble(3.0, seed=9)[0])
    np.testing.assert_allclose(again.openness(feats), model.openness(feats), atol=1e-6)
    assert model.openness(feats).std() > 0.01  # it does vary with the sound
    bad = dict(model.to_arrays(), coef=np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="support"):
        PersonalMouth.from_arrays(bad)
    with pytest.raises(ValueError, match="non-finite"):
        PersonalMouth.from_arrays(dict(model.to_arrays(), bias=np.array([np.nan], np.float32)))
    with pytest.raises(ValueError):
        PersonalMouth.from_arrays({"mean": model.mean})


def test_a_model_of_other_features_is_refused_and_talking_falls_back(tmp_path, caplog):
    """A pack's model from an earlier release (the network's hidden states, no feature tag) is not
    read as this one: loading says why, and talking keeps the generic mouth."""
    import logging
    from types import SimpleNamespace

    from avatar.pack.calibrate import MODEL_FILE
    from avatar.render.talking import personal_model

    train, fric = _babble(20.0, seed=7)
    times = np.arange(0, 19.5, 1 / FPS)
    model, _ = fit_personal_mouth(train, times, _odd_person(fric, times), lead_s=0.06)
    pack = SimpleNamespace(path=tmp_path)
    np.savez(tmp_path / MODEL_FILE, **model.to_arrays())
    assert personal_model(pack, {"personal": {"used": True}}) is not None
    old = {"offsets": np.array([-20, -10, -5, 0]), "mean": np.zeros(256, np.float32), "scale": np.ones(256, np.float32),
           "weights": np.zeros(256, np.float32), "bias": np.array([0.1], np.float32), "network": np.asarray("ab" * 8)}
    np.savez(tmp_path / MODEL_FILE, **old)
    with caplog.at_level(logging.WARNING, logger="avatar.render.talking"):
        assert personal_model(pack, {"personal": {"used": True}}) is None
    assert "cannot be read" in caplog.text and "re-clone" in caplog.text


def test_features_read_the_same_speech_alike_at_another_recording_level():
    """Features are relative to the speaker's running level, over a floor far below speech: the
    same speech 12 dB quieter or louder gives nearly the same openness."""
    train, fric = _babble(30.0, seed=10)
    times = np.arange(0, 29.5, 1 / FPS)
    model, _ = fit_personal_mouth(train, times, _odd_person(fric, times), lead_s=0.06)
    new = _babble(8.0, seed=11)[0] * 0.3
    base = _openness(network_frames(new, 25.0, personal=model))
    for gain in (0.25, 4.0):
        other = _openness(network_frames(new * gain, 25.0, personal=model))
        assert np.corrcoef(base, other)[0, 1] > 0.95, gain
        assert np.abs(base - other).mean() < 0.05, gain


def test_a_mouth_that_is_mostly_shut_stays_shut_as_often():
    """A regression shrinks toward the mean; the model's output is mapped onto the person's own
    distribution of openings, so a talker whose mouth is shut most of the time (here: open only
    on hiss) gets a shut mouth about as often on new speech, not a half-open one."""
    train, fric = _babble(40.0, seed=12)
    times = np.arange(0, 39.5, 1 / FPS)

    def shut_talker(f, t):
        return np.where(_odd_person(f, t) > 0.045, 0.05, 0.0)

    y = shut_talker(fric, times)
    assert 0.5 < (y == 0).mean() < 0.9
    model, info = fit_personal_mouth(train, times, y, lead_s=0.0)
    assert info["used"], info
    new, fric_new = _babble(15.0, seed=13)
    t = np.arange(int(14.5 * FPS)) / FPS
    own = _openness(network_frames(new, FPS, lead_s=0.0, personal=model))[: len(t)]
    truth = shut_talker(fric_new, t)
    assert (own < 0.05).mean() > 0.8 * (truth == 0).mean(), ((own < 0.05).mean(), (truth == 0).mean())
    assert np.corrcoef(own, truth)[0, 1] > 0.6


def test_both_halves_mix_and_a_half_of_another_network_is_set_aside(caplog):
    """Where the hidden-state half also beats the generic openness, the openness is the mean of the
    two; that half reads one network's hidden states, so with other audio weights it is set aside
    with a warning and the sound-based half speaks alone."""
    import dataclasses
    import logging

    train, fric = _babble(40.0, seed=14)
    times = np.arange(0, 39.5, 1 / FPS)
    model, info = fit_personal_mouth(train, times, _odd_person(fric, times), lead_s=0.06)
    assert info["used"] and model.hidden is not None and info["sound_weight"] == 0.5, info
    again = PersonalMouth.from_arrays(model.to_arrays())
    assert again.hidden is not None and again.hidden.network == model.hidden.network and again.sound_weight == 0.5
    audio = _babble(4.0, seed=15)[0]
    sound_only = dataclasses.replace(model, hidden=None, sound_weight=1.0)
    mixed = _openness(network_frames(audio, 25.0, personal=model))
    alone = _openness(network_frames(audio, 25.0, personal=sound_only))
    assert np.abs(mixed - alone).max() > 0.02  # the hidden-state half does take part
    other = dataclasses.replace(model, hidden=dataclasses.replace(model.hidden, network="0" * 16))
    with caplog.at_level(logging.WARNING, logger="avatar.motion.audio.stream"):
        got = _openness(network_frames(audio, 25.0, personal=other))
    assert "another audio network" in caplog.text
    np.testing.assert_allclose(got, alone, atol=1e-6)


def test_a_live_variant_reads_less_far_ahead_and_still_follows_its_person():
    """Beside the model, a variant that reads 60 ms ahead (not 200) is fitted for live streaming:
    its stream runs well under 200 ms behind the sound, it follows the person on new speech, and
    it is stored and read back with the model."""
    from avatar.motion.audio.personal import LIVE_OFFSETS

    train, fric = _babble(40.0, seed=16)
    times = np.arange(0, 39.5, 1 / FPS)
    model, info = fit_personal_mouth(train, times, _odd_person(fric, times), lead_s=0.06)
    live = model.for_streaming()
    assert info["live"]["used"] and live is model.live and live.offsets == LIVE_OFFSETS, info
    assert live.live is None and live.lookahead < model.lookahead / 2
    offline_s, live_s = MouthStreamer(25.0, personal=model).latency_s, MouthStreamer(25.0, personal=live).latency_s
    assert live_s <= 0.2 < offline_s, (live_s, offline_s)
    new, fric_new = _babble(15.0, seed=17)
    t = np.arange(int(14.5 * FPS)) / FPS
    truth = _odd_person(fric_new, t + 0.06)
    own = _openness(network_frames(new, FPS, personal=live))[: len(t)]
    assert np.corrcoef(own, truth)[0, 1] > 0.6
    again = PersonalMouth.from_arrays(model.to_arrays())
    assert again.live is not None and again.live.smooth == live.smooth and again.live.hidden is not None
    feats = signal_features(new[: 3 * SR])
    np.testing.assert_allclose(again.live.openness(feats), live.openness(feats), atol=1e-6)
    # the hidden-state half is stored once, also where only the live variant uses it
    import dataclasses

    odd = PersonalMouth.from_arrays(dataclasses.replace(model, hidden=None, sound_weight=1.0).to_arrays())
    assert odd.hidden is None and odd.live.hidden is not None
    # without it (a pack from before it), streaming uses the model itself
    older = {k: v for k, v in model.to_arrays().items() if not k.startswith("live_")}
    assert PersonalMouth.from_arrays(older).for_streaming().lookahead == model.lookahead


def test_a_model_using_only_its_hidden_state_half_reads_no_sound_ahead():
    """Where only the network's hidden states follow the person, the sound-based half is not run
    (nothing read ahead for it, no openness of its own)."""
    import dataclasses

    train, fric = _babble(20.0, seed=18)
    times = np.arange(0, 19.5, 1 / FPS)
    model, _ = fit_personal_mouth(train, times, _odd_person(fric, times), lead_s=0.06)
    hidden_only = dataclasses.replace(model, sound_weight=0.0, live=None)
    assert hidden_only.lookahead == 0 and hidden_only.history == 0
    s = MouthStreamer(25.0, personal=hidden_only)
    assert s.lookahead == s._net_lookahead and s.latency_s < MouthStreamer(25.0, personal=model).latency_s
    audio = _babble(3.0, seed=19)[0]
    got = _openness(network_frames(audio, 25.0, personal=hidden_only))
    assert got.std() > 0.01
