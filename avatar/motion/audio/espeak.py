"""espeak-ng speech synthesis with exact phoneme timing (ctypes binding to libespeak-ng.so.1).

The C API's phoneme events are the only espeak-ng output that carries times (the command
line's ``-x``/``--pho`` do not): each ``espeakEVENT_PHONEME`` gives the phoneme mnemonic
and its audio position. A process's first synthesis of a text is reproducible; later ones may
differ slightly (the library keeps state between utterances: the same text spoken again came
out up to ~2 % longer or shorter, phones drifting by ~12 ms over 3 s).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from dataclasses import dataclass

import numpy as np

from ...errors import EngineUnavailable, InputError

# speak_lib.h constants (espeak-ng 1.51; the header is not installed by the runtime package).
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_INITIALIZE_DONT_EXIT = 0x8000
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_EVENT_END = 5
_EVENT_MSG_TERMINATED = 6
_EVENT_PHONEME = 7
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_RATE = 1
_VOLUME = 2
_PITCH = 3

_INSTALL_HINT = "install espeak-ng (Debian/Ubuntu: `apt-get install espeak-ng libespeak-ng1`)"


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass(frozen=True)
class EspeakPhone:
    """One phoneme event: espeak mnemonic, start time in seconds (event position)."""

    symbol: str
    start: float


@dataclass(frozen=True, eq=False)
class EspeakUtterance:
    """Synthesised speech: audio (N,) float32 in [-1, 1] at ``sample_rate``; phones in time order."""

    audio: np.ndarray
    sample_rate: int
    phones: tuple[EspeakPhone, ...]
    words: tuple[float, ...]


class _Engine:
    """The process-wide espeak-ng instance (the library keeps global state; one lock guards it)."""

    def __init__(self) -> None:
        name = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
        try:
            lib = ctypes.CDLL(name)
        except OSError as exc:
            raise EngineUnavailable(f"libespeak-ng.so.1 could not be loaded ({exc}); {_INSTALL_HINT}") from exc
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, None, _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_DONT_EXIT)
        if rate <= 0:
            raise EngineUnavailable(f"espeak_Initialize failed ({rate}): espeak-ng-data missing? {_INSTALL_HINT}")
        self.sample_rate = int(rate)
        self.lib = lib
        self.lock = threading.Lock()
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, int, str]] = []
        self._cb = _CALLBACK(self._callback)  # keep a reference: the library calls it later
        lib.espeak_SetSynthCallback(self._cb)

    def _callback(self, wav, numsamples, events) -> int:
        if numsamples > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(numsamples,)).copy())
        i = 0
        while True:
            ev = events[i]
            if ev.type == _EVENT_LIST_TERMINATED:
                break
            if ev.type == _EVENT_PHONEME:
                self._events.append((_EVENT_PHONEME, ev.audio_position, ev.id.string.decode("ascii", "replace")))
            elif ev.type == _EVENT_WORD:
                self._events.append((_EVENT_WORD, ev.audio_position, ""))
            i += 1
        return 0

    def synth(self, text: str, voice: str, rate: int, pitch: int) -> EspeakUtterance:
        with self.lock:
            if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise InputError(f"espeak-ng has no voice {voice!r}; expected e.g. 'en-us', 'en', 'en-us+f3'")
            self.lib.espeak_SetParameter(_RATE, int(rate), 0)
            self.lib.espeak_SetParameter(_PITCH, int(pitch), 0)
            self._chunks, self._events = [], []
            data = text.encode("utf-8") + b"\0"
            err = self.lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            if err != 0:
                raise EngineUnavailable(f"espeak_Synth failed with code {err}")
            self.lib.espeak_Synchronize()
            pcm = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
            events = self._events
            self._chunks, self._events = [], []
        audio = (pcm.astype(np.float32) / 32768.0).astype(np.float32)
        phones = tuple(EspeakPhone(s, p / 1000.0) for k, p, s in events if k == _EVENT_PHONEME)
        words = tuple(p / 1000.0 for k, p, _ in events if k == _EVENT_WORD)
        return EspeakUtterance(audio, self.sample_rate, phones, words)


_ENGINE: _Engine | None = None
_ENGINE_LOCK = threading.Lock()


def _engine() -> _Engine:
    global _ENGINE
    with _ENGINE_LOCK:
        if _ENGINE is None:
            _ENGINE = _Engine()
        return _ENGINE


def available() -> bool:
    """True when libespeak-ng can be loaded and initialised here."""
    try:
        _engine()
    except EngineUnavailable:
        return False
    return True


def synthesize(text: str, voice: str = "en-us", rate: int = 165, pitch: int = 50) -> EspeakUtterance:
    """Speak ``text`` with espeak-ng; returns 22.05 kHz audio and timed phoneme mnemonics.

    Args:
        text: plain UTF-8 text (not SSML).
        voice: espeak-ng voice name, optionally with a variant (``en-us+f3``).
        rate: words per minute (80..450); pitch: 0..100.
    Raises:
        EngineUnavailable: libespeak-ng is missing (names the Debian packages).
        InputError: empty text or unknown voice.
    """
    if not isinstance(text, str) or not text.strip():
        raise InputError("text to speak is empty; pass a non-empty string")
    if not 80 <= rate <= 450:
        raise InputError(f"espeak-ng rate must be 80..450 words per minute, got {rate}")
    return _engine().synth(text, voice, rate, max(0, min(100, int(pitch))))
