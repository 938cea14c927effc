"""``avatar avatars list | show ID | revoke ID --reason TEXT [--token T]``: inspect and revoke consented avatars."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

STORE_HELP = ("consent database (default: $AVATAR_HOME/avatars.sqlite3; without $AVATAR_HOME, "
              "~/.local/share/avatar/avatars.sqlite3 on Linux)")
STORE_NOTE = ("The consent store lives in $AVATAR_HOME (default ~/.local/share/avatar on Linux, "
              "$XDG_DATA_HOME/avatar when that is set): avatars.sqlite3 and sources/ (the consented portraits), "
              "owner-only (0700 folder, 0600 files).")


def register(subparsers) -> None:
    p = subparsers.add_parser("avatars", help="list, show or revoke consented avatars",
                              description="List, show or revoke consented avatars. " + STORE_NOTE)
    p.add_argument("--store", type=Path, default=None, help=STORE_HELP)
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub.add_parser("list", help="all avatars: id, status, subject, owner, created, expires, scope")
    show = sub.add_parser("show", help="one avatar's consent record")
    show.add_argument("avatar_id")
    rev = sub.add_parser("revoke", help="revoke an avatar's consent (takes effect at the next check)",
                         description="Revoke an avatar's consent. With --token (the revocation token printed when "
                                     "the avatar was created) the token must match: the subject's own way to "
                                     "withdraw.")
    rev.add_argument("avatar_id")
    rev.add_argument("--reason", default=None, help="why consent is withdrawn (required without --token)")
    rev.add_argument("--token", default=None, help="the avatar's revocation token (printed at clone time)")
    p.set_defaults(func=run)


def _fmt(dt) -> str:
    return dt.isoformat(timespec="seconds") if dt else "-"


def _day(dt) -> str:
    return dt.date().isoformat() if dt else "-"


def list_table(records: list) -> list[str]:
    """Aligned lines: a header row, then one row per avatar."""
    rows = [("ID", "STATUS", "SUBJECT", "OWNER", "CREATED", "EXPIRES", "SCOPE")]
    rows += [(r.avatar_id, r.status(), r.subject, r.owner or "-", _day(r.created), _day(r.expires),
              r.scope.describe()) for r in records]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[-1] for row in rows]


def run(args: argparse.Namespace) -> int:
    from ..errors import ConsentError
    from ..output.consent import ConsentStore

    with ConsentStore(args.store) as store:
        if args.action == "list":
            records = store.list()
            if not records:
                print(f"no avatars in {store.path}")
                return 0
            print("\n".join(list_table(records)))
            return 0
        if args.action == "revoke":
            if args.token is None and not args.reason:
                raise ConsentError("revocation needs a reason (--reason TEXT) or the avatar's --token")
            reason = args.reason or "withdrawn with the revocation token"
            r = store.revoke(args.avatar_id, reason, token=args.token)
            print(f"revoked {r.avatar_id} ({r.subject}) at {_fmt(r.revoked)}")
            return 0
        r = store.get(args.avatar_id)
        print(f"avatar:      {r.avatar_id}\nconsent id:  {r.consent_id}\nsubject:     {r.subject}\n"
              f"granted by:  {r.granted_by}\nowner:       {r.owner or '-'}\nstatement:   {r.statement}\n"
              f"scope:       {r.scope.describe()}\n"
              f"created:     {_fmt(r.created)}\nexpires:     {_fmt(r.expires)}\nstatus:      {r.status()}"
              + (f" ({r.revoke_reason}, {_fmt(r.revoked)})" if r.revoked else "")
              + f"\nsource sha256: {r.source_sha256}\nsource copy: {store.sources_dir / r.image_file}")
        for name, sha in r.evidence:
            print(f"evidence:    {name} sha256 {sha}")
        _show_video_consent(store, r.avatar_id)
        return 0


def _show_video_consent(store, avatar_id: str) -> None:
    """A video clone's consent basis, evidence and pack."""
    ev = store.evidence_of(avatar_id)
    if ev is None:
        return
    d = ev["details"]
    basis = ev["basis"] + (f" (attested by {ev['attested_by']})" if ev["attested_by"] else "")
    print(f"consent basis: {basis}")
    if ev["basis"] == "spoken":
        weak = [w for w, s in d.get("word_scores", []) if s < 0.5]
        scores = [s for _, s in d.get("word_scores", [])]
        print(f"spoken:      {d.get('script')!r} in {d.get('consent_media')} {d.get('consent_span')} s; "
              f"word scores min {min(scores, default=0):.2f} mean {np.mean(scores) if scores else 0:.2f}"
              + (f", weak: {', '.join(weak)}" if weak else ""))
        print(f"heard:       {d.get('transcript')!r}\nface distance: {d.get('face_distance')}  code sha256: {d.get('code_hash')}")
    pack = store.pack_dir(avatar_id)
    print(f"footage:     {d.get('footage')} sha256 {d.get('footage_sha256')} ({d.get('duration', 0):.1f} s)")
    print(f"pack:        {pack if pack else '(deleted)'}")
