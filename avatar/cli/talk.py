"""``avatar talk PORTRAIT [AUDIO] -o OUT.mp4``: make a portrait speak audio or text."""

from __future__ import annotations

import argparse

from .animate import add_common_options, build_config, record_consent_if_asked, summary


def register(sub: argparse._SubParsersAction) -> None:
    from ..config import SpeechConfig

    s = SpeechConfig()
    p = sub.add_parser("talk", help="make a portrait speak audio or text",
                       description="Make PORTRAIT speak AUDIO (any audio/video file; no transcript needed) or --text "
                                   "(offline speech with espeak-ng), with blinks and idle head motion.")
    p.add_argument("source", help="portrait image")
    p.add_argument("audio", nargs="?", help="speech audio (wav, mp3, m4a, flac, a video with sound, …)")
    g = p.add_argument_group("speech")
    g.add_argument("--text", help="speak this text with espeak-ng instead of an audio file")
    g.add_argument("--transcript", help="what AUDIO says (text or a .txt file): enables forced alignment")
    g.add_argument("--voice", default=s.voice, help="espeak-ng voice for --text")
    g.add_argument("--rate", type=int, default=s.rate, help="words per minute for --text")
    g.add_argument("--fps", type=float, default=s.fps, help="output frame rate")
    g.add_argument("--seed", type=int, default=s.seed, help="seed for blinks and head motion")
    g.add_argument("--blink-rate", type=float, default=s.blink_rate, help="blinks per minute (0 = none)")
    g.add_argument("--head-motion", type=float, default=s.head_amplitude, help="idle head motion scale (0 = still)")
    g.add_argument("--expression-scale", type=float, default=1.0, help="scale mouth and blink movement")
    g.add_argument("--intensity", type=float, default=s.intensity,
                   help="mouth movement relative to the portrait's face (1 = a typical speaker, 0.5 = subdued, 1.5 = animated)")
    g.add_argument("--recognise", action="store_true",
                   help="no transcript: recognise the words (PocketSphinx) and align them; better lips on real "
                        "English speech, slower, falls back to the network when nothing fits")
    g.add_argument("--lip-lead", type=float, default=s.lead_s, metavar="SECONDS",
                   help="how far the lips run ahead of the sound (0..0.25 s)")
    g.add_argument("--weights", help="audio-to-mouth weights (default: the shipped ones)")
    g.add_argument("--head-from", metavar="VIDEO", help="take the head motion from this driving video (looped); lips follow the speech")
    add_common_options(p)
    p.set_defaults(func=run)


def read_transcript(value: str | None) -> str | None:
    from pathlib import Path

    from ..errors import InputError

    if value is None:
        return None
    if value.endswith(".txt"):
        path = Path(value)
        if not path.is_file():
            raise InputError(f"transcript file {path} not found")
        try:
            return path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise InputError(f"transcript file {path} is not UTF-8 text") from None
    return value


def talk_config(args: argparse.Namespace):
    """The AvatarConfig of a ``talk`` command line (also used by ``avatar batch`` jobs)."""
    import dataclasses

    from ..config import SpeechConfig

    config = build_config(args, expression_scale=args.expression_scale)
    return dataclasses.replace(config, speech=SpeechConfig(
        fps=args.fps, seed=args.seed, voice=args.voice, rate=args.rate, blink_rate=args.blink_rate,
        head_amplitude=args.head_motion, weights=args.weights, intensity=args.intensity, lead_s=args.lip_lead,
        recognise=args.recognise))


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..pipeline import Animator

    if (args.audio is None) == (args.text is None):
        raise ConfigError("talk needs AUDIO or --text (one of them)")
    config = talk_config(args)
    avatar_id = record_consent_if_asked(args, args.source, "audio")
    result = Animator(config).talk(args.source, args.output, audio=args.audio, text=args.text,
                                   transcript=read_transcript(args.transcript), head_video=args.head_from,
                                   avatar_id=avatar_id,
                                   progress=not args.quiet, overwrite=args.overwrite)
    print(summary(result))
    return 0
