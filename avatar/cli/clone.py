"""``avatar clone PORTRAIT --subject NAME --consent "statement"``: record consent, print the avatar id."""

from __future__ import annotations

import argparse
from pathlib import Path

from .avatars import STORE_HELP

def register(subparsers) -> None:
    p = subparsers.add_parser("clone", help="record a consented avatar from a portrait",
                              description="Store a portrait as an avatar with its consent record; prints the avatar id (stdout) "
                                          "and, once, its revocation token (stderr): give the token to the subject, "
                                          "who can withdraw with `avatar avatars revoke ID --token TOKEN`.")
    p.add_argument("portrait", type=Path, help="portrait image (PNG/JPEG)")
    p.add_argument("--subject", required=True, help="display name of the person depicted")
    p.add_argument("--granted-by", default="subject", help="who granted consent: subject, guardian, estate, agent, … (default subject)")
    p.add_argument("--consent", required=True, metavar="STATEMENT", help="the consent statement the grantor agreed to")
    p.add_argument("--scope", default="video,audio,live", help="comma list of video,audio,live (default all three)")
    p.add_argument("--commercial", action="store_true", help="commercial use is allowed")
    p.add_argument("--expires", help="expiry date (YYYY-MM-DD or ISO date-time, UTC); default none")
    p.add_argument("--evidence", nargs="+", type=Path, default=[], metavar="FILE", help="evidence files to hash (signed form, consent video…)")
    p.add_argument("--face-index", type=int, default=None, help="which face when several (0 = largest)")
    p.add_argument("--store", type=Path, default=None, help=STORE_HELP)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..face.descriptor import face_descriptor
    from ..face.landmarks import detect_face
    from ..media.image import load_image, sha256_file
    from ..output.consent import ConsentStore, Scope

    scope = Scope.parse(args.scope, commercial=args.commercial)
    from ..output.consent import parse_expiry

    expires = parse_expiry(args.expires, "--expires")
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
