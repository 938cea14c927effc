"""Phones → visemes: the mouth target of every ARPAbet phone and every espeak-ng mnemonic.

One phone set (ARPAbet, as in the CMU dictionary and PocketSphinx) carries all sources;
espeak-ng mnemonics are mapped onto it. Each viseme has an openness target (0 closed ..
1 wide open), a rounding target (-1 spread .. 1 fully rounded) and a dominance (how much
it resists its neighbours in coarticulation: low for consonants that leave the lips free).
Diphthongs split 60/40 into two visemes. The values are a design choice (audio.md §3.2),
not measurements.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Viseme:
    """Mouth target of one viseme class."""

    name: str
    openness: float
    rounding: float
    dominance: float
    bilabial: bool = False


VISEMES: tuple[Viseme, ...] = (
    Viseme("sil", 0.00, 0.00, 0.60),
    Viseme("PBM", 0.00, 0.00, 1.00, bilabial=True),
    Viseme("FV", 0.08, -0.10, 0.90),
    Viseme("TH", 0.22, -0.05, 0.45),
    Viseme("TDN", 0.22, -0.05, 0.15),
    Viseme("SZ", 0.12, -0.30, 0.50),
    Viseme("L", 0.30, 0.00, 0.20),
    Viseme("R", 0.22, 0.45, 0.55),
    Viseme("KG", 0.28, 0.00, 0.12),
    Viseme("HH", 0.35, 0.00, 0.05),
    Viseme("SH", 0.18, 0.65, 0.80),
    Viseme("W", 0.10, 1.00, 0.90),
    Viseme("Y", 0.18, -0.40, 0.40),
    Viseme("AA", 1.00, 0.00, 0.70),
    Viseme("AE", 0.85, -0.35, 0.70),
    Viseme("AH", 0.70, 0.00, 0.60),
    Viseme("AX", 0.42, 0.00, 0.35),
    Viseme("AO", 0.80, 0.50, 0.70),
    Viseme("EH", 0.62, -0.30, 0.60),
    Viseme("ER", 0.38, 0.40, 0.60),
    Viseme("IH", 0.40, -0.40, 0.50),
    Viseme("IY", 0.30, -0.65, 0.60),
    Viseme("UH", 0.35, 0.60, 0.60),
    Viseme("UW", 0.20, 1.00, 0.80),
    Viseme("OW", 0.55, 0.75, 0.70),
)
VISEME_INDEX: dict[str, int] = {v.name: i for i, v in enumerate(VISEMES)}
NUM_VISEMES = len(VISEMES)

# ARPAbet phone → one viseme, or two for diphthongs (first part takes 60 % of the time).
ARPABET_VISEMES: dict[str, tuple[str, ...]] = {
    "SIL": ("sil",),
    "P": ("PBM",), "B": ("PBM",), "M": ("PBM",),
    "F": ("FV",), "V": ("FV",),
    "TH": ("TH",), "DH": ("TH",),
    "T": ("TDN",), "D": ("TDN",), "N": ("TDN",), "DX": ("TDN",),
    "S": ("SZ",), "Z": ("SZ",),
    "L": ("L",), "R": ("R",),
    "K": ("KG",), "G": ("KG",), "NG": ("KG",),
    "HH": ("HH",),
    "SH": ("SH",), "ZH": ("SH",), "CH": ("SH",), "JH": ("SH",),
    "W": ("W",), "Y": ("Y",),
    "AA": ("AA",), "AE": ("AE",), "AH": ("AH",), "AX": ("AX",), "AO": ("AO",),
    "EH": ("EH",), "ER": ("ER",), "IH": ("IH",), "IY": ("IY",), "UH": ("UH",), "UW": ("UW",),
    "OW": ("OW", "UW"), "AW": ("AA", "UH"), "AY": ("AA", "IH"), "EY": ("EH", "IH"), "OY": ("AO", "IH"),
}

# espeak-ng English mnemonics → ARPAbet (one or two phones; syllabic consonants get a schwa).
# Flap "t#"/"t2" becomes T: PocketSphinx's model has no DX (audio.md §1.1).
ESPEAK_ARPABET: dict[str, tuple[str, ...]] = {
    "_": ("SIL",), "_:": ("SIL",), "_|": ("SIL",), "_!": ("SIL",), ";": (), "?": ("T",), "'": (),
    "p": ("P",), "b": ("B",), "m": ("M",), "f": ("F",), "v": ("V",), "T": ("TH",), "D": ("DH",),
    "t": ("T",), "t#": ("T",), "t2": ("T",), "t[": ("T",), "d": ("D",), "d#": ("D",), "n": ("N",),
    "n-": ("AX", "N"), "s": ("S",), "z": ("Z",), "l": ("L",), "@L": ("AX", "L"), "L": ("L",),
    "r": ("R",), "r-": ("R",), "k": ("K",), "g": ("G",), "N": ("NG",), "x": ("HH",), "h": ("HH",),
    "S": ("SH",), "Z": ("ZH",), "tS": ("CH",), "dZ": ("JH",), "w": ("W",), "w#": ("W",), "j": ("Y",),
    "a": ("AE",), "a#": ("AX",), "aa": ("AE",), "A:": ("AA",), "A@": ("AA", "R"), "A": ("AA",),
    "0": ("AA",), "V": ("AH",), "VR": ("AH", "R"), "@": ("AX",), "@2": ("AX",), "@5": ("AX",),
    "3": ("ER",), "3:": ("ER",), "E": ("EH",), "E2": ("EH",), "e": ("EH",), "e@": ("EH", "R"),
    "I": ("IH",), "I#": ("IH",), "I2": ("IH",), "IR": ("IH", "R"), "i": ("IY",), "i:": ("IY",),
    "i@": ("IY", "AX"), "i@3": ("IY", "ER"), "O": ("AO",), "O:": ("AO",), "O2": ("AO",), "O@": ("AO", "R"),
    "o@": ("AO", "R"), "U": ("UH",), "U@": ("UH", "R"), "u:": ("UW",), "u": ("UW",),
    "aI": ("AY",), "aI2": ("AY",), "aI3": ("AY",), "aI@": ("AY", "AX"), "aU": ("AW",), "aU@": ("AW", "AX"),
    "eI": ("EY",), "oU": ("OW",), "OI": ("OY",), "o": ("OW",), "@U": ("OW",), "Q": ("AA",),
}

# A mnemonic not in the table is reduced to its letters; the first letter decides.
_FIRST_LETTER = {
    "a": "AE", "e": "EH", "i": "IY", "o": "AO", "u": "UW", "@": "AX", "3": "ER", "0": "AA", "V": "AH",
    "I": "IH", "E": "EH", "O": "AO", "U": "UH", "A": "AA",
}


def espeak_to_arpabet(symbol: str) -> tuple[str, ...]:
    """ARPAbet phones for one espeak-ng mnemonic (empty for stress/boundary marks)."""
    if symbol in ESPEAK_ARPABET:
        return ESPEAK_ARPABET[symbol]
    core = symbol.rstrip("0123456789#-:;[")
    if core in ESPEAK_ARPABET:
        return ESPEAK_ARPABET[core]
    if core[:2] in ESPEAK_ARPABET:
        return ESPEAK_ARPABET[core[:2]]
    if core[:1] in ESPEAK_ARPABET:
        return ESPEAK_ARPABET[core[:1]]
    if core[:1] in _FIRST_LETTER:
        return (_FIRST_LETTER[core[:1]],)
    return ()


def arpabet_visemes(phone: str) -> tuple[str, ...]:
    """Viseme names of an ARPAbet phone (stress digits ignored; unknown → 'AX')."""
    base = phone.upper().rstrip("012")
    if base in ("SP", "SIL", "PAU", "<SIL>", "+NSN+", "+SPN+", "+BREATH+", "+COUGH+", "+UM+", "+UH+", ""):
        return ("sil",)
    return ARPABET_VISEMES.get(base, ("AX",))
