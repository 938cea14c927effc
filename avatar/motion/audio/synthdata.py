"""Synthetic speech with exact phone timing, for training and evaluating audio → mouth.

Three synthesis families: espeak-ng (formant; C-API phoneme events), flite (statistical
parametric and diphone voices; ``-psdur`` phone end times) and, where installed, festival
(Debian's festvox voices: an HTS voice and two diphone voices; the utterance's segment end
times). Augmentations model the recording chain: noise, reverberation, gain, speed and band
limits.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .features import SAMPLE_RATE
from .phones import Phone, fill_silence, from_espeak

ESPEAK_ACCENTS = ("en-us", "en", "en-gb-x-rp", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029")
# Variants used for training; "f3" and "m3" are kept out for the evaluation set.
ESPEAK_VARIANTS = ("", "f1", "f2", "f4", "f5", "m1", "m2", "m4", "m5", "m6", "m7", "klatt", "klatt2",
                   "klatt4", "Alex", "Annie", "belinda", "david", "linda", "steph", "paul", "robert")
FLITE_VOICES = ("awb", "rms", "slt", "kal16")
_FLITE_ARPA = {"pau": "SIL", "ax": "AX", "dx": "T"}
# festival voices from Debian (festvox-us-slt-hts, festvox-kallpc16k, festvox-kdlpc16k); the
# HTS voice ignores Duration_Stretch (its rate varies only through the speed augmentation)
FESTIVAL_VOICES = ("cmu_us_slt_arctic_hts", "kal_diphone", "ked_diphone")


@dataclass(frozen=True, eq=False)
class Utterance:
    """audio (N,) float32 at 16 kHz; phones covering [0, N / 16000]; description of the source."""

    audio: np.ndarray
    phones: list[Phone]
    source: str


def _resample(x: np.ndarray, sr: int, target: int = SAMPLE_RATE) -> np.ndarray:
    if sr == target:
        return x.astype(np.float32)
    import soxr  # noqa: PLC0415

    return soxr.resample(x.astype(np.float32), sr, target).astype(np.float32)


def _pad(audio: np.ndarray, phones: list[Phone], before: float, after: float) -> Utterance:
    n0, n1 = int(before * SAMPLE_RATE), int(after * SAMPLE_RATE)
    out = np.concatenate([np.zeros(n0, np.float32), audio, np.zeros(n1, np.float32)])
    shifted = [Phone(p.phone, p.start + before, p.end + before) for p in phones if p.phone != "SIL"]
    return out, fill_silence(shifted, len(out) / SAMPLE_RATE)


def espeak_utterance(text: str, voice: str, rate: int, pitch: int, before: float = 0.3, after: float = 0.4) -> Utterance:
    """espeak-ng speech of ``text`` at 16 kHz with its phones."""
    from . import espeak  # noqa: PLC0415

    u = espeak.synthesize(text, voice=voice, rate=rate, pitch=pitch)
    dur = len(u.audio) / u.sample_rate
    phones = from_espeak([(p.symbol, p.start) for p in u.phones], dur)
    audio, phones = _pad(_resample(u.audio, u.sample_rate), phones, before, after)
    return Utterance(audio, phones, f"espeak-ng {voice} {rate}wpm p{pitch}")


def flite_available() -> bool:
    """True when the ``flite`` program is on PATH."""
    import shutil  # noqa: PLC0415

    return shutil.which("flite") is not None


def flite_utterance(text: str, voice: str, stretch: float = 1.0, before: float = 0.3, after: float = 0.4) -> Utterance:
    """flite speech of ``text`` (voice awb/rms/slt/kal16) at 16 kHz with its phones."""
    import soundfile as sf  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as tmp:
        wav = os.path.join(tmp, "x.wav")
        res = subprocess.run(
            ["flite", "-voice", voice, "--setf", f"duration_stretch={stretch:.3f}", "-psdur", "-t", text, "-o", wav],
            capture_output=True, text=True, timeout=60, check=True,
        )
        audio, sr = sf.read(wav, dtype="float32")
    ends: list[tuple[str, float]] = []
    for tok in res.stdout.split():
        name, _, end = tok.rpartition(":")
        try:
            ends.append((name, float(end)))
        except ValueError:
            continue
    return _from_end_times(ends, audio, sr, before, after, f"flite {voice} x{stretch:.2f}")


def _from_end_times(ends: list[tuple[str, float]], audio: np.ndarray, sr: int, before: float, after: float,
                    source: str) -> Utterance:
    """An :class:`Utterance` from a synthesiser's (phone name, end time) list (flite's and
    festival's CMU names) and its audio at ``sr``, resampled and padded."""
    phones: list[Phone] = []
    t = 0.0
    for name, e in ends:
        phones.append(Phone(_FLITE_ARPA.get(name, name.upper()), t, e))
        t = e
    phones = [p for p in phones if p.phone != "SIL"]
    audio, phones = _pad(_resample(audio, sr), fill_silence(phones, len(audio) / sr), before, after)
    return Utterance(audio, phones, source)


def festival_voices() -> tuple[str, ...]:
    """The :data:`FESTIVAL_VOICES` installed (none without the ``festival`` program)."""
    import shutil  # noqa: PLC0415

    if shutil.which("festival") is None:
        return ()
    roots = [Path("/usr/share/festival/voices"), Path("/usr/lib/festival/voices")]
    have = {d.name for r in roots if r.is_dir() for d in r.glob("*/*") if d.is_dir()}
    return tuple(v for v in FESTIVAL_VOICES if v in have)


def festival_utterance(text: str, voice: str, stretch: float = 1.0, before: float = 0.3, after: float = 0.4) -> Utterance:
    """festival speech of ``text`` (one of :data:`FESTIVAL_VOICES`) at 16 kHz with its phones
    (the utterance's segments: ARPAbet-like names with end times, as flite's)."""
    import soundfile as sf  # noqa: PLC0415

    if voice not in FESTIVAL_VOICES:
        raise ValueError(f"unknown festival voice {voice!r}; choose one of {', '.join(FESTIVAL_VOICES)}")
    quoted = text.replace("\\", " ").replace('"', " ")
    with tempfile.TemporaryDirectory() as tmp:
        wav, segs, script = (os.path.join(tmp, n) for n in ("x.wav", "x.segs", "x.scm"))
        Path(script).write_text(
            f"(voice_{voice})\n(Parameter.set 'Duration_Stretch {stretch:.3f})\n"
            f'(set! utt (SynthText "{quoted}"))\n'
            f'(utt.save.wave utt "{wav}" \'riff)\n(utt.save.segs utt "{segs}")\n')
        subprocess.run(["festival", "-b", script], capture_output=True, text=True, timeout=60, check=True)
        audio, sr = sf.read(wav, dtype="float32")
        rows = [line.split() for line in Path(segs).read_text().splitlines()[1:]]
    ends = [(row[2], float(row[0])) for row in rows if len(row) == 3]
    return _from_end_times(ends, audio, sr, before, after, f"festival {voice} x{stretch:.2f}")


# ---------------------------------------------------------------------------------- text


def license_sentences(root: str = "/usr/share/common-licenses") -> list[str]:
    """Sentences (4..25 words) from the licence texts Debian ships."""
    out: list[str] = []
    for p in sorted(Path(root).glob("*")):
        if not p.is_file():
            continue
        txt = re.sub(r"\s+", " ", p.read_text(errors="ignore"))
        for s in re.split(r"(?<=[.;:!?])\s+", txt):
            s = re.sub(r"[^A-Za-z',\- ]", " ", s)
            s = re.sub(r"\s+", " ", s).strip()
            if 4 <= len(s.split()) <= 25:
                out.append(s)
    return sorted(set(out))


def dictionary_words() -> list[str]:
    """Plain alphabetic words of the CMU dictionary bundled with PocketSphinx."""
    import pocketsphinx  # noqa: PLC0415

    path = Path(pocketsphinx.get_model_path()) / "en-us" / "cmudict-en-us.dict"
    words = []
    for line in path.read_text(errors="ignore").splitlines():
        w = line.split(" ", 1)[0]
        if w.isalpha() and 2 <= len(w) <= 12:
            words.append(w)
    return words


# --------------------------------------------------------------------------- augmentation


def _coloured_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    kind = rng.integers(3)
    w = rng.standard_normal(n).astype(np.float32)
    if kind == 0:
        return w
    spec = np.fft.rfft(w)
    f = np.maximum(np.arange(len(spec)), 1.0)
    spec /= f ** (0.5 if kind == 1 else 1.0)
    x = np.fft.irfft(spec, n).astype(np.float32)
    return x / (x.std() + 1e-9)


_CODECS = (("libmp3lame", "mp3", 16000, (24000, 64000)), ("aac", "adts", 16000, (16000, 48000)),
           ("libopus", "ogg", 48000, (8000, 32000)))


def codec_roundtrip(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """Encode and decode 16 kHz audio with a random lossy codec and bit rate (PyAV), re-aligned to the input."""
    import io  # noqa: PLC0415

    import av  # noqa: PLC0415

    codec, fmt, rate, (lo, hi) = _CODECS[int(rng.integers(len(_CODECS)))]
    y = _resample(x, SAMPLE_RATE, rate)
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as c:
        st = c.add_stream(codec, rate=rate, layout="mono")
        st.bit_rate = int(rng.integers(lo, hi))
        fs = st.codec_context.frame_size or 1024
        for i in range(0, len(y), fs):
            f = av.AudioFrame.from_ndarray(np.ascontiguousarray(y[None, i:i + fs]), format="fltp", layout="mono")
            f.sample_rate, f.pts = rate, i
            for pkt in st.encode(f):
                c.mux(pkt)
        for pkt in st.encode(None):
            c.mux(pkt)
    buf.seek(0)
    with av.open(buf) as c:
        z = np.concatenate([fr.to_ndarray().reshape(-1) for fr in c.decode(audio=0)]).astype(np.float32)
    z = _resample(z, rate, SAMPLE_RATE)
    # Encoders prime with a few ms of silence: undo the delay so the phone times stay right.
    n = min(len(x), len(z), 4 * SAMPLE_RATE)
    corr = np.fft.irfft(np.fft.rfft(z[:n], 2 * n) * np.conj(np.fft.rfft(x[:n], 2 * n)))
    lags = np.r_[np.arange(0, 2049), np.arange(-2048, 0)]
    lag = int(lags[np.argmax(corr[lags])])
    z = z[lag:] if lag >= 0 else np.r_[np.zeros(-lag, np.float32), z]
    out = np.zeros(len(x), np.float32)
    out[: min(len(x), len(z))] = z[: len(x)]
    return out, f"{codec}@{st.bit_rate // 1000}k"


def augment(audio: np.ndarray, phones: list[Phone], rng: np.random.Generator,
            real_chain: bool = False) -> tuple[np.ndarray, list[Phone], str]:
    """Random recording chain (speed, reverb, band limit, noise, gain); returns new audio and phones.

    ``real_chain`` adds what real uploads go through: lossy codecs (MP3, AAC, Opus round trips,
    40 %) and telephone band (300–3400 Hz at 8 kHz, 15 %).
    """
    import scipy.signal  # noqa: PLC0415

    x = audio.astype(np.float32)
    notes = []
    if rng.random() < 0.3:
        s = float(rng.uniform(0.9, 1.1))  # resampling changes speed and pitch together
        import soxr  # noqa: PLC0415

        x = soxr.resample(x, SAMPLE_RATE * s, SAMPLE_RATE).astype(np.float32)
        phones = fill_silence([Phone(p.phone, p.start / s, p.end / s) for p in phones if p.phone != "SIL"], len(x) / SAMPLE_RATE)
        notes.append(f"speed{s:.2f}")
    if rng.random() < 0.3:
        rt60 = float(rng.uniform(0.15, 0.6))
        n = int(rt60 * SAMPLE_RATE)
        t = np.arange(n) / SAMPLE_RATE
        ir = rng.standard_normal(n).astype(np.float32) * np.exp(-6.9 * t / rt60).astype(np.float32)
        ir[0] = 0.0
        ir *= float(rng.uniform(0.2, 0.7)) / (np.sqrt((ir**2).sum()) + 1e-9)
        ir[0] = 1.0
        x = scipy.signal.fftconvolve(x, ir)[: len(x)].astype(np.float32)
        notes.append(f"rt60={rt60:.2f}")
    if rng.random() < 0.3:
        hi = float(rng.uniform(3000, 7000))
        lo = float(rng.uniform(60, 300))
        sos = scipy.signal.butter(4, [lo, hi], btype="band", fs=SAMPLE_RATE, output="sos")
        x = scipy.signal.sosfilt(sos, x).astype(np.float32)
        notes.append(f"band{lo:.0f}-{hi:.0f}")
    if rng.random() < 0.7:
        snr = float(rng.uniform(5, 35))
        p = float(np.mean(x[np.abs(x) > 1e-4] ** 2)) if np.any(np.abs(x) > 1e-4) else 1e-4
        x = x + _coloured_noise(len(x), rng) * np.sqrt(p / 10 ** (snr / 10))
        notes.append(f"snr{snr:.0f}")
    if real_chain and rng.random() < 0.15:
        sos = scipy.signal.butter(4, [300, 3400], btype="band", fs=SAMPLE_RATE, output="sos")
        x = _resample(_resample(scipy.signal.sosfilt(sos, x).astype(np.float32), SAMPLE_RATE, 8000), 8000, SAMPLE_RATE)
        notes.append("phone")
    if real_chain and rng.random() < 0.4:
        x, note = codec_roundtrip(x, rng)
        notes.append(note)
    g = float(rng.uniform(-12, 6))
    x = (x * 10 ** (g / 20)).astype(np.float32)
    peak = float(np.abs(x).max()) if len(x) else 0.0
    if peak > 1.0:
        x /= peak
    return x, phones, " ".join(notes)
