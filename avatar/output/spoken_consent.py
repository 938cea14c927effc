"""Spoken consent for video clones: a one-time code, the words checked by PocketSphinx, the face
checked against the footage's.

The subject reads :func:`consent_script` (the statement, then "My code is" and a one-time code
that ``avatar clone --new-code`` issued) on camera, in a separate consent video or at the start
of the footage. :func:`check_words` force-aligns that script to the speech with PocketSphinx and
scores every word by how close its aligned acoustic score comes to free phone recognition over
the same frames (1 = as good as anything could fit, 0 = nothing like it); speech that does not
contain the script cannot be aligned at all. :func:`check_face` compares face descriptors of the
consent part with the footage's. Codes are stored hashed, expire, and work once.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone

import numpy as np

from ..errors import ConsentError

# Spelling alphabet: distinct words PocketSphinx's dictionary knows, easy to read aloud.
CODE_WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa "
              "quebec romeo sierra tango uniform victor whiskey xray yankee zulu").split()
CODE_LENGTH = 4
CODE_TTL = timedelta(hours=24)
# A word of matching speech scores 0.6-0.95 (gap to free phone recognition 0.001-0.006 per
# frame, espeak-ng voices); a word scores 0 at a gap of _GAP_ZERO.
_GAP_ZERO = 0.02
WORD_THRESHOLD = 0.5       # a word counts as spoken at this score
STATEMENT_SHARE = 0.8      # share of the statement's words that must count
FACE_THRESHOLD = 0.45      # descriptor distance across frames of one video (see docs/clone.md)
_LOCK = threading.Lock()

_CODES_SCHEMA = """
CREATE TABLE IF NOT EXISTS consent_codes (
    code_hash  TEXT PRIMARY KEY,
    created    TEXT NOT NULL,
    expires    TEXT NOT NULL,
    used       TEXT
)
"""


def _hash_code(code: str) -> str:
    words = " ".join(code.lower().replace("-", " ").split())
    return hashlib.sha256(f"avatar-consent-code:{words}".encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(timezone.utc)


def issue_code(store, ttl: timedelta = CODE_TTL) -> str:
    """A fresh one-time code (four spelling-alphabet words); only its hash is stored."""
    code = " ".join(secrets.choice(CODE_WORDS) for _ in range(CODE_LENGTH))
    now = _now()
    with store.transaction() as db:
        db.execute(_CODES_SCHEMA)
        db.execute("INSERT INTO consent_codes VALUES (?, ?, ?, NULL)",
                   (_hash_code(code), now.isoformat(timespec="seconds"), (now + ttl).isoformat(timespec="seconds")))
    return code


def _valid_code(db, code: str) -> str:
    """The code's hash; raises ConsentError for an unknown, used or expired code."""
    h = _hash_code(code)
    db.execute(_CODES_SCHEMA)
    row = db.execute("SELECT expires, used FROM consent_codes WHERE code_hash=?", (h,)).fetchone()
    if row is None:
        raise ConsentError(f"the consent code {code!r} was not issued by this store; get one with "
                           "`avatar clone --new-code` and have the subject read it")
    if row[1] is not None:
        raise ConsentError(f"the consent code {code!r} was already used on {row[1]}; issue a new one "
                           "(`avatar clone --new-code`)")
    if datetime.fromisoformat(row[0]) <= _now():
        raise ConsentError(f"the consent code {code!r} expired on {row[0]}; issue a new one (`avatar clone --new-code`)")
    return h


def check_code(store, code: str) -> None:
    """Refuse an unknown, used or expired code before any work (it is redeemed only at the end)."""
    with store.transaction() as db:
        _valid_code(db, code)


def redeem_code(store, code: str) -> str:
    """Mark ``code`` used; returns its hash. Raises ConsentError for an unknown, used or expired code."""
    with store.transaction() as db:
        h = _valid_code(db, code)
        db.execute("UPDATE consent_codes SET used=? WHERE code_hash=?", (_now().isoformat(timespec="seconds"), h))
    return h


def consent_script(statement: str, code: str) -> str:
    """What the subject reads on camera."""
    return f"{statement.strip().rstrip('.')}. My code is {code.strip()}."


@dataclass
class WordCheck:
    """PocketSphinx's verdict on the spoken script."""

    aligned: bool
    words: list[tuple[str, float]] = field(default_factory=list)   # (word, score 0..1) in script order
    transcript: str = ""
    span: tuple[float, float] = (0.0, 0.0)                          # seconds of the audio checked
    heard_code: str = ""   # the code words recognised against every spelling-alphabet word, slot by slot

    def score_of(self, words: list[str]) -> list[float]:
        return [s for w, s in self.words if w in words]

    def as_dict(self) -> dict:
        return asdict(self)


def _word_scores(pcm: bytes, words: list[str]) -> list[tuple[str, float]] | None:
    from pocketsphinx import Decoder, get_model_path  # noqa: PLC0415

    from ..motion.audio.align import _ATTEMPTS, aligned_decoder  # noqa: PLC0415

    d = next((d for d in (aligned_decoder(words, pcm, kw) for kw in _ATTEMPTS) if d is not None), None)
    if d is None:
        return None
    aligned = [(w.name.split("(")[0], w.start, w.duration, w.score) for w in d.get_alignment()]
    free = Decoder(samprate=16000, allphone=get_model_path("en-us/en-us-phone.lm.bin"), lw=2.0, beam=1e-20,
                   pbeam=1e-20, loglevel="FATAL")
    free.start_utt()
    free.process_raw(pcm, full_utt=True)
    free.end_utt()
    per = np.zeros(max(free.n_frames(), 1) + 2)
    for seg in free.seg():
        per[seg.start_frame:seg.end_frame + 1] += seg.ascore / max(seg.end_frame - seg.start_frame + 1, 1)
    cum = np.concatenate([[0.0], np.cumsum(per)])
    out = []
    for name, start, dur, score in aligned:
        if name.startswith("<") or name.startswith("+") or name == "(NULL)":
            continue
        best = cum[min(start + dur, len(cum) - 1)] - cum[min(start, len(cum) - 1)]
        gap = (best - score) * np.log(1.0001) / max(dur, 1)
        out.append((name, float(np.clip(1.0 - max(gap, 0.0) / _GAP_ZERO, 0.0, 1.0))))
    return out


def _heard_code(pcm: bytes, statement_words: list[str], n_code: int) -> str:
    """The code as read: the script decoded with a grammar whose code slots accept any spelling-alphabet
    word, so each slot gets the word that fits best (forced alignment alone would stretch a wrong code
    over the speech with passable scores)."""
    from pocketsphinx import Decoder  # noqa: PLC0415

    from ..motion.audio.align import pronunciation  # noqa: PLC0415

    grammar = ("#JSGF V1.0;\ngrammar consent;\npublic <script> = " + " ".join(statement_words)
               + " <w>" * n_code + ";\n<w> = " + " | ".join(CODE_WORDS) + ";\n")
    d = Decoder(samprate=16000, lm=None, loglevel="FATAL")
    for w in sorted(set(statement_words) | set(CODE_WORDS)):
        if d.lookup_word(w) is None:
            d.add_word(w, " ".join(pronunciation(w)), True)
    try:
        d.add_jsgf_string("consent", grammar)
        d.activate_search("consent")
    except (RuntimeError, ValueError):
        return ""
    d.start_utt()
    d.process_raw(pcm, full_utt=True)
    d.end_utt()
    hyp = d.hyp().hypstr.split() if d.hyp() is not None else []
    if len(hyp) < len(statement_words) + n_code:
        return ""  # the grammar did not reach the end of the code
    return " ".join(hyp[-n_code:])


def _transcript(pcm: bytes) -> str:
    from pocketsphinx import Decoder  # noqa: PLC0415

    d = Decoder(samprate=16000, loglevel="FATAL")
    d.start_utt()
    d.process_raw(pcm, full_utt=True)
    d.end_utt()
    return d.hyp().hypstr if d.hyp() is not None else ""


def _pause_ends(audio: np.ndarray, lo: float, hi: float) -> list[float]:
    """Candidate ends of the consent part: the middles of pauses (≥ 0.25 s) between lo and hi s."""
    hop = 160
    n = len(audio) // hop
    if n < 3:
        return [len(audio) / 16000]
    db = 10 * np.log10(np.mean(audio[: n * hop].reshape(n, hop).astype(np.float64) ** 2, axis=1) + 1e-12)
    quiet = db < db.max() - 30
    ends, run = [], 0
    for i, q in enumerate(np.append(quiet, False)):
        if q:
            run += 1
            continue
        if run >= 25:
            mid = (i - run / 2) * hop / 16000
            if lo <= mid <= hi:
                ends.append(mid)
        run = 0
    total = len(audio) / 16000
    if total <= hi:
        ends.append(total)
    return sorted(set(ends))


def check_words(audio: np.ndarray, script: str, *, whole: bool = False, code_words: int = CODE_LENGTH) -> WordCheck:
    """Align ``script`` (ending in ``code_words`` code words) to 16 kHz mono ``audio``: the whole of it
    (a consent video), or its start up to the pause where the script fits (the consent read at the
    start of the footage); then decode which code was read (:func:`_heard_code`)."""
    from ..motion.audio.align import _config_paths, _pcm16, words_of  # noqa: PLC0415

    _config_paths()
    words = words_of(script)
    total = len(audio) / 16000
    ends = [total] if whole else _pause_ends(audio, 0.25 * len(words), 1.0 * len(words) + 4.0)
    with _LOCK:
        for end in ends[:8]:
            pcm = _pcm16(audio[: int(end * 16000)])
            scores = _word_scores(pcm, words)
            if scores is not None:
                return WordCheck(True, scores, _transcript(pcm), (0.0, round(end, 2)),
                                 _heard_code(pcm, words[:-code_words], code_words))
        span = ends[0] if ends else total
        pcm = _pcm16(audio[: int(span * 16000)])
        return WordCheck(False, [(w, 0.0) for w in words], _transcript(pcm), (0.0, round(span, 2)))


def judge_words(check: WordCheck, statement: str, code: str) -> None:
    """Raise ConsentError unless the script was spoken: every code word and most statement words."""
    from ..motion.audio.align import words_of  # noqa: PLC0415

    heard = f" (PocketSphinx heard: {check.transcript!r})" if check.transcript else ""
    if not check.aligned:
        raise ConsentError("the consent statement and code are not in the speech: PocketSphinx could not align "
                           f"them to the recording{heard}. The subject must read the statement and the code aloud")
    code_words = words_of(code)
    n_code = len(code_words)
    if check.heard_code != " ".join(code_words):
        read = f"{check.heard_code!r}" if check.heard_code else "no code"
        raise ConsentError(f"the one-time code read in the recording ({read}) is not the code given "
                           f"({' '.join(code_words)!r}); the subject must read the code issued for this clone")
    code_scores = [s for _, s in check.words[-n_code:]]
    stmt_scores = [s for _, s in check.words[:-n_code]]
    missing = [w for w, s in check.words[-n_code:] if s < WORD_THRESHOLD]
    if missing:
        raise ConsentError(f"the one-time code was not spoken clearly: {', '.join(missing)} scored below "
                           f"{WORD_THRESHOLD} (scores {', '.join(f'{s:.2f}' for s in code_scores)}){heard}")
    share = float(np.mean([s >= WORD_THRESHOLD for s in stmt_scores])) if stmt_scores else 0.0
    if share < STATEMENT_SHARE:
        weak = [w for w, s in check.words[:-n_code] if s < WORD_THRESHOLD]
        raise ConsentError(f"the consent statement was not spoken clearly: only {share:.0%} of its words scored "
                           f"{WORD_THRESHOLD} or more (need {STATEMENT_SHARE:.0%}; weak: {', '.join(weak[:8])}){heard}")


def face_distance(consent: list[np.ndarray], footage: list[np.ndarray]) -> float:
    """Median over the consent part's descriptors of the distance to the closest footage descriptor."""
    from ..face.descriptor import descriptor_distance  # noqa: PLC0415

    if not consent or not footage:
        return float("inf")
    return float(np.median([min(descriptor_distance(c, f) for f in footage) for c in consent]))


def judge_face(distance: float, where: str) -> None:
    if not np.isfinite(distance):
        raise ConsentError(f"no face could be compared in {where}; the subject must be on camera while reading the statement")
    if distance >= FACE_THRESHOLD:
        raise ConsentError(f"the face in {where} is not the face in the footage (descriptor distance {distance:.2f}, "
                           f"threshold {FACE_THRESHOLD}); the person cloned must read the consent statement themselves")
