"""Forced alignment of a transcript to 16 kHz speech with PocketSphinx 5 (model in the wheel).

Words missing from the bundled CMU dictionary get a pronunciation from espeak-ng's
letter-to-sound rules (mnemonics → ARPAbet), or from a crude letter table when espeak-ng is
absent. A transcript that does not fit the audio is detected by comparing the aligned
acoustic score with free phone recognition on the same audio, and raises
:class:`AlignmentError` so the caller can fall back to the audio-only path.
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache

import numpy as np

from ...errors import EngineUnavailable, InputError
from .phones import Phone, fill_silence
from .visemes import espeak_to_arpabet

_PS_PHONES = frozenset("AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH UH UW V W Y Z ZH".split())
_LETTERS = {"a": "AE", "b": "B", "c": "K", "d": "D", "e": "EH", "f": "F", "g": "G", "h": "HH", "i": "IH",
            "j": "JH", "k": "K", "l": "L", "m": "M", "n": "N", "o": "AA", "p": "P", "q": "K", "r": "R",
            "s": "S", "t": "T", "u": "AH", "v": "V", "w": "W", "x": "K S", "y": "Y", "z": "Z"}
# A transcript that does not match still aligns now and then, but badly: its acoustic score
# falls further below free phone recognition (matching text, synthetic speech: gap <= 0.003;
# mismatched: 0.004-0.007 in these units) and many phones are squeezed to the 3-frame minimum
# (matching: 3-12 %; mismatched: 20-46 %). Measured on espeak-ng and flite speech only.
MISMATCH_GAP = 0.0045
MISMATCH_SQUEEZED = 0.17
_LOCK = threading.Lock()


class AlignmentError(InputError):
    """The transcript cannot be aligned to the audio (it does not match, or nothing is said)."""


def words_of(text: str) -> list[str]:
    """Lower-case words of a transcript (punctuation dropped, apostrophes kept)."""
    return [w for w in re.findall(r"[a-z0-9']+", text.lower().replace("’", "'")) if w.strip("'")]


def _espeak_pron(word: str) -> list[str] | None:
    try:
        from . import espeak  # noqa: PLC0415

        u = espeak.synthesize(word, voice="en-us", rate=175)
    except (EngineUnavailable, InputError):
        return None
    out = []
    for p in u.phones:
        for ph in espeak_to_arpabet(p.symbol):
            ph = {"AX": "AH", "DX": "T"}.get(ph, ph)
            if ph in _PS_PHONES:
                out.append(ph)
    return out or None


@lru_cache(maxsize=4096)
def pronunciation(word: str) -> tuple[str, ...]:
    """ARPAbet pronunciation for a word not in the dictionary (espeak-ng G2P, else letters)."""
    pron = _espeak_pron(word)
    if pron:
        return tuple(pron)
    letters = [_LETTERS[c] for c in word.lower() if c in _LETTERS]
    return tuple(" ".join(letters).split()) or ("AH",)


@lru_cache(maxsize=1)
def _config_paths() -> dict[str, str]:
    try:
        import pocketsphinx  # noqa: PLC0415, F401
    except ImportError as exc:
        raise EngineUnavailable("pocketsphinx is not installed; run `pip install pocketsphinx`") from exc
    return {}


def _pcm16(audio: np.ndarray) -> bytes:
    return (np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def _phone_loop_score(pcm: bytes) -> float:
    """Total acoustic score of free phone recognition (the best any phone string can do)."""
    from pocketsphinx import Decoder, get_model_path  # noqa: PLC0415

    d = Decoder(samprate=16000, allphone=get_model_path("en-us/en-us-phone.lm.bin"), lw=2.0,
                beam=1e-20, pbeam=1e-20, loglevel="FATAL")
    d.start_utt()
    d.process_raw(pcm, full_utt=True)
    d.end_utt()
    return float(sum(seg.ascore for seg in d.seg()))


# Tried in order until one reaches the end of the transcript: espeak-ng voices in particular
# fall off the default beams now and then; dither or no fillers usually rescues them.
_ATTEMPTS = ({}, {"dither": True}, {"fsgusefiller": False}, {"beam": 1e-100, "pbeam": 1e-100, "wbeam": 1e-80})


def aligned_decoder(words: list[str], pcm: bytes, kw: dict):
    """A PocketSphinx decoder that force-aligned ``words`` to 16 kHz 16-bit ``pcm`` with the
    settings ``kw`` (one of :data:`_ATTEMPTS`), its ``get_alignment()`` ready (word and phone
    segments); None when the words could not be aligned."""
    from pocketsphinx import Decoder  # noqa: PLC0415

    d = Decoder(samprate=16000, bestpath=False, lm=None, loglevel="FATAL", **kw)
    for w in sorted(set(words)):
        if d.lookup_word(w) is None:
            d.add_word(w, " ".join(pronunciation(w)), True)
    d.set_align_text(" ".join(words))
    d.start_utt()
    d.process_raw(pcm, full_utt=True)
    d.end_utt()
    if d.hyp() is None:
        return None
    d.set_alignment()  # second pass: the segmentation of the words found
    d.start_utt()
    d.process_raw(pcm, full_utt=True)
    d.end_utt()
    return d


def _try_align(words: list[str], pcm: bytes, kw: dict) -> tuple[list[tuple[str, int, int, int]], int] | None:
    d = aligned_decoder(words, pcm, kw)
    if d is None:
        return None
    # Copy out at once: the entries point into the decoder's memory.
    raw = [(ph.name, ph.start, ph.duration, ph.score) for word in d.get_alignment() for ph in word]
    return raw, max(d.n_frames(), 1)


def align(audio: np.ndarray, transcript: str) -> list[Phone]:
    """Timed ARPAbet phones (gap-free, SIL between words) for 16 kHz mono ``audio``.

    Raises:
        AlignmentError: empty transcript, alignment failure, or a transcript that does not
            fit the audio (see :data:`MISMATCH_GAP`).
    """
    _config_paths()
    words = words_of(transcript)
    if not words:
        raise AlignmentError("the transcript has no words; pass the text that is spoken, or none")
    if len(audio) < 1600:
        raise AlignmentError(f"audio too short to align ({len(audio)} samples at 16 kHz)")
    pcm = _pcm16(audio)
    with _LOCK:
        result = None
        for kw in _ATTEMPTS:
            try:
                result = _try_align(words, pcm, kw)
            except RuntimeError as exc:
                raise AlignmentError(f"PocketSphinx could not align the transcript: {exc}") from exc
            if result is not None:
                break
        if result is None:
            raise AlignmentError("the transcript could not be aligned to the audio (no path through it)")
        raw, n = result
        free = _phone_loop_score(pcm)
    aligned = sum(r[3] for r in raw)
    gap = (free - aligned) * np.log(1.0001) / n
    squeezed = float(np.mean([r[2] <= 3 for r in raw if r[0] != "SIL"] or [0.0]))
    if gap > MISMATCH_GAP or squeezed > MISMATCH_SQUEEZED:
        raise AlignmentError(f"the transcript does not seem to match the audio (score gap {gap:.4f}, "
                             f"{squeezed:.0%} of phones at minimum length)")
    phones = []
    for name, start, dur, _ in raw:
        name = name.upper()
        phones.append(Phone("SIL" if name in ("SIL", "<SIL>", "+NSN+", "+SPN+") else name, start / 100.0, (start + dur) / 100.0))
    spoken = _trim_to_speech([p for p in phones if p.phone != "SIL"], *speech_span(audio))
    return fill_silence(spoken, len(audio) / 16000.0)


def speech_span(audio: np.ndarray, floor_db: float = 35.0, hop: int = 160) -> tuple[float, float]:
    """(first, last) second at which 16 kHz ``audio`` is within ``floor_db`` of its loudest
    10 ms frame; (0, duration) when it never rises that far above its quietest frames (noise)."""
    n = len(audio) // hop
    duration = len(audio) / 16000.0
    if n < 3:
        return 0.0, duration
    frames = np.asarray(audio[: n * hop], np.float64).reshape(n, hop)
    db = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    loud = db >= db.max() - floor_db
    if np.percentile(db, 5) >= db.max() - floor_db:  # no quiet stretch to tell speech from
        return 0.0, duration
    idx = np.flatnonzero(loud)
    return idx[0] * hop / 16000.0, min((idx[-1] + 1) * hop / 16000.0, duration)


def _trim_to_speech(phones: list[Phone], onset: float, offset: float, margin: float = 0.03) -> list[Phone]:
    """Keep phones out of the silence around the speech.

    Without filler words (one of the fallback attempts) the aligner has nothing to put the
    leading and trailing silence on but the first and last words' phones, which would hold the
    mouth open through it: their boundaries are clamped to the speech span, and a phone left
    with no time there is dropped."""
    lo, hi = onset - margin, offset + margin
    out = []
    for p in phones:
        start, end = min(max(p.start, lo), hi), max(min(p.end, hi), lo)
        if end - start > 1e-3:
            out.append(Phone(p.phone, start, end))
    return out or list(phones)


def recognise(audio: np.ndarray) -> str:
    """PocketSphinx's own word recognition of 16 kHz speech (bundled English model, no transcript).

    Raises AlignmentError when nothing is recognised (silence, noise, music).
    """
    pcm = _pcm16(audio)
    from pocketsphinx import Decoder  # noqa: PLC0415

    with _LOCK:
        d = Decoder(samprate=16000, loglevel="FATAL")
        d.start_utt()
        d.process_raw(pcm, full_utt=True)
        d.end_utt()
        hyp = d.hyp()
    if hyp is None or not words_of(hyp.hypstr):
        raise AlignmentError("speech recognition found no words")
    return hyp.hypstr
