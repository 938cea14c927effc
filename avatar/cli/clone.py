"""``avatar clone PORTRAIT|VIDEO --subject NAME --consent "statement"``: record consent, print the avatar id.

A video becomes a video avatar with a pack (see docs/clone.md): the subject reads the statement
and a one-time code (``avatar clone --new-code``) on camera, or an operator attests consent.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .avatars import STORE_HELP

VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".webm", ".mkv", ".avi")


def register(subparsers) -> None:
    p = subparsers.add_parser("clone", help="record a consented avatar from a portrait or a video",
                              description="Store a portrait, or a video of the person talking, as an avatar with its "
                                          "consent record; prints the avatar id (stdout) and, once, its revocation token (stderr): give the token "
                                          "to the subject, who can withdraw with `avatar avatars revoke ID --token TOKEN`.")
    p.add_argument("portrait", type=Path, nargs="?", help="portrait image (PNG/JPEG) or video (MP4/MOV/WebM…)")
    p.add_argument("--subject", help="display name of the person depicted")
    p.add_argument("--granted-by", default="subject", help="who granted consent: subject, guardian, estate, agent, … (default subject)")
    p.add_argument("--consent", metavar="STATEMENT", help="the consent statement the grantor agreed to")
    p.add_argument("--scope", default="video,audio,live", help="comma list of video,audio,live (default all three)")
    p.add_argument("--commercial", action="store_true", help="commercial use is allowed")
    p.add_argument("--expires", help="expiry date (YYYY-MM-DD or ISO date-time, UTC); default none")
    p.add_argument("--evidence", nargs="+", type=Path, default=[], metavar="FILE", help="evidence files to hash (signed form, consent video…)")
    p.add_argument("--face-index", type=int, default=None, help="which face when several (0 = largest)")
    p.add_argument("--store", type=Path, default=None, help=STORE_HELP)
    g = p.add_argument_group("video clones")
    g.add_argument("--new-code", action="store_true",
                   help="issue a one-time consent code (valid 24 h) and print what the subject reads on camera")
    g.add_argument("--code", help="the one-time code the subject read in the video")
    g.add_argument("--consent-video", type=Path, help="a separate video of the subject reading the statement and code "
                                                       "(default: the start of the footage)")
    g.add_argument("--attested-by", metavar="NAME", help="an operator attests a written consent instead of a spoken one "
                                                          "(recorded, shown in `avatar avatars show` and in every output's labels)")
    g.add_argument("--max-keyframes", type=int, default=None, help="cap on keyframes kept (default 300)")
    p.set_defaults(func=run)


def _new_code(args: argparse.Namespace) -> int:
    from ..output.consent import ConsentStore
    from ..output.spoken_consent import CODE_TTL, consent_script, issue_code

    with ConsentStore(args.store) as store:
        code = issue_code(store)
    print(code)
    statement = args.consent or "I agree that my face and voice may be used to make an AI avatar of me."
    hours = int(CODE_TTL.total_seconds() // 3600)
    print(f"the subject reads on camera (code valid {hours} h, once):\n  {consent_script(statement, code)}", file=sys.stderr)
    return 0


def _clone_video(args: argparse.Namespace, scope, expires) -> int:
    import dataclasses

    from ..config import CloneConfig
    from ..output.consent import ConsentStore
    from ..pack.clone import clone_video

    cfg = CloneConfig()
    if args.max_keyframes is not None:
        cfg = dataclasses.replace(cfg, max_keyframes=args.max_keyframes)
    with ConsentStore(args.store) as store:
        res = clone_video(args.portrait, subject=args.subject, statement=args.consent, store=store,
                          granted_by=args.granted_by, scope=scope, expires=expires, code=args.code,
                          consent_video=args.consent_video, attested_by=args.attested_by, config=cfg)
    print(res.avatar_id)
    print_revocation_token(res)
    print(f"video avatar {res.avatar_id}: {res.keyframes} keyframes, consent {res.basis}, pack {res.pack}", file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..output.consent import Scope, parse_expiry

    if args.new_code:
        return _new_code(args)
    if args.portrait is None or not args.subject or not args.consent:
        raise ConfigError('clone needs PORTRAIT or VIDEO, --subject NAME and --consent "statement" (or --new-code)')
    scope = Scope.parse(args.scope, commercial=args.commercial)
    expires = parse_expiry(args.expires, "--expires")
    if args.portrait.suffix.lower() in VIDEO_SUFFIXES:
        return _clone_video(args, scope, expires)
    if args.code or args.consent_video or args.attested_by:
        raise ConfigError("--code, --consent-video and --attested-by are for video clones; a portrait needs none")

    from ..face.descriptor import face_descriptor
    from ..face.landmarks import detect_face
    from ..media.image import load_image, sha256_file
    from ..output.consent import ConsentStore

    image = load_image(args.portrait)
    face = detect_face(image, where=str(args.portrait), face_index=args.face_index, require_single=True)
    with ConsentStore(args.store) as store:
        rec = store.clone(image, source_sha256=sha256_file(args.portrait), subject=args.subject,
                          granted_by=args.granted_by, statement=args.consent, scope=scope, expires=expires,
                          evidence=args.evidence, source_path=args.portrait,
                          descriptor=face_descriptor(image, face))
    print(rec.avatar_id)
    print_revocation_token(rec)
    return 0


def print_revocation_token(rec) -> None:
    """The one-time revocation token, on stderr (stdout stays the bare avatar id for scripts)."""
    import sys

    print(f"revocation token for {rec.avatar_id} (shown once; give it to {rec.subject}, who can withdraw with "
          f"`avatar avatars revoke {rec.avatar_id} --token TOKEN`): {rec.revocation_token}", file=sys.stderr)
