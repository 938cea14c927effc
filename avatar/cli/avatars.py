"""``avatar avatars list | show ID | revoke ID --reason TEXT``: inspect and revoke consented avatars."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def register(subparsers) -> None:
    p = subparsers.add_parser("avatars", help="list, show or revoke consented avatars")
    p.add_argument("--store", type=Path, default=None, help="consent database (default $AVATAR_HOME/avatars.sqlite3)")
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub.add_parser("list", help="all avatars with their status")
    show = sub.add_parser("show", help="one avatar's consent record")
    show.add_argument("avatar_id")
    rev = sub.add_parser("revoke", help="revoke an avatar's consent (takes effect at the next check)")
    rev.add_argument("avatar_id")
    rev.add_argument("--reason", required=True, help="why consent is withdrawn")
    p.set_defaults(func=run)


def _fmt(dt) -> str:
    return dt.isoformat(timespec="seconds") if dt else "-"


def run(args: argparse.Namespace) -> int:
    from ..output.consent import ConsentStore

    with ConsentStore(args.store) as store:
        if args.action == "list":
            records = store.list()
            if not records:
                print(f"no avatars in {store.path}")
            for r in records:
                print(f"{r.avatar_id}  {r.status():8s} {r.subject!r:24s} scope={r.scope.describe()}  expires={_fmt(r.expires)}")
            return 0
        if args.action == "revoke":
            r = store.revoke(args.avatar_id, args.reason)
            print(f"revoked {r.avatar_id} ({r.subject}) at {_fmt(r.revoked)}")
            return 0
        r = store.get(args.avatar_id)
        print(f"avatar:      {r.avatar_id}\nconsent id:  {r.consent_id}\nsubject:     {r.subject}\n"
              f"granted by:  {r.granted_by}\nstatement:   {r.statement}\nscope:       {r.scope.describe()}\n"
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
