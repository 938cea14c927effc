import numpy as np

from avatar.motion.audio.coarticulation import frame_tracks, mouth_tracks, segments_from_phones
from avatar.motion.audio.phones import Phone, fill_silence


def _word(*spec):
    t, out = 0.3, []
    for ph, d in spec:
        out.append(Phone(ph, t, t + d))
        t += d
    return fill_silence(out, t + 0.4)


def test_bilabial_closure_is_exactly_closed():
    phones = _word(("AA", 0.15), ("B", 0.08), ("AA", 0.15))
    times = np.arange(0, 1.2, 0.005)
    tr = mouth_tracks(segments_from_phones(phones), times)
    inside = (times >= 0.45) & (times <= 0.53)
    assert np.all(tr.openness[inside] == 0.0)
    assert np.all(tr.closed[inside] == 1.0)


def test_vowel_opens_and_silence_closes():
    phones = _word(("HH", 0.06), ("AA", 0.2), ("T", 0.06))
    times = np.arange(0, 1.0, 0.01)
    tr = mouth_tracks(segments_from_phones(phones), times)
    assert tr.openness[(times > 0.4) & (times < 0.5)].min() > 0.6
    assert np.all(tr.openness[times < 0.2] == 0.0)
    assert np.all(tr.openness[times > 0.75] == 0.0)


def test_coarticulation_is_continuous():
    phones = _word(("S", 0.08), ("IY", 0.12), ("W", 0.07), ("AA", 0.15), ("T", 0.05), ("UW", 0.14))
    times = np.arange(0, 1.5, 0.001)
    tr = mouth_tracks(segments_from_phones(phones), times)
    # 1 ms steps: no jumps larger than what a 30 ms ramp allows.
    assert np.abs(np.diff(tr.openness)).max() < 0.06
    assert np.abs(np.diff(tr.rounding)).max() < 0.06
    # the rounded W pulls rounding up, the spread IY pulls it down
    assert tr.rounding[(times > 0.51) & (times < 0.56)].max() > 0.5
    assert tr.rounding[(times > 0.40) & (times < 0.48)].min() < -0.3


def test_short_closure_is_seen_at_low_frame_rate():
    phones = _word(("AA", 0.15), ("M", 0.03), ("AA", 0.15))
    tr = frame_tracks(phones, 10.0, 12)
    assert (tr.openness == 0.0).sum() >= 1 + int(0.3 * 10)  # leading silence + the closure
    assert np.any((tr.closed[4:6] == 1.0))


def test_diphthong_splits():
    phones = _word(("AY", 0.3))
    times = np.arange(0, 1.0, 0.01)
    tr = mouth_tracks(segments_from_phones(phones), times)
    early, late = tr.openness[(times > 0.33) & (times < 0.45)].mean(), tr.openness[(times > 0.52) & (times < 0.58)].mean()
    assert early > late + 0.2  # AA then IH
