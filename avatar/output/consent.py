"""Consent records for avatars and the one gate every animation path calls.

An *avatar* is a consented face: who is depicted, who granted consent (the subject, a guardian,
an estate…), the statement shown, the scope (video / audio-driven / live; commercial or not),
expiry and revocation, the sha256 of the source file, a face descriptor (so a resized or
re-encoded copy is still recognised), optional evidence hashes, and a copy of the source image.

Records live in SQLite (WAL journal, ``synchronous=FULL``, one transaction per change), so a
process killed mid-write leaves either the whole record or none. The source copy is written
atomically *before* the row; an orphan copy from a killed clone is harmless. The store's folder
is created 0700 and every file in it 0600 (SQLite gives its -wal/-shm files the database's
mode); an existing store that others can read is named in a warning.

Each avatar records its ``owner`` (who created it: a demo user name, or ``local:<login>`` for
the command line) and the sha256 of a revocation token handed out once at clone time, so the
subject can withdraw consent without an account. Columns are only ever *added*
(:data:`_ADDED_COLUMNS`), so an older store opens and is migrated in place.

The gate, :func:`check_consent`, returns a :class:`ConsentGrant` that labels the output
(metadata, C2PA, watermark) or raises :class:`ConsentError` saying how to record consent.
``AVATAR_CONSENT_POLICY=research`` (or ``policy="research"``) is an explicit operator policy
under which no record is needed; outputs are still labelled, with ``policy="research"``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import getpass
import hashlib
import hmac
import json
import os
import secrets
import sqlite3
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, Literal

import numpy as np

from ..errors import ConfigError, ConsentError, InputError, NoFaceError
from ..paths import PRIVATE_FILE_MODE, avatar_home, private_dir, private_file, warn_if_exposed

POLICY_ENV = "AVATAR_CONSENT_POLICY"
POLICIES = ("consent", "research")
USES = ("video", "audio", "live")
GRANTORS = ("subject", "guardian", "estate", "agent", "other")
# The command that renders each use, so a refusal names the command that was run.
COMMAND_OF_USE = {"video": "animate", "audio": "talk", "live": "live"}


def how_to(use: str = "video") -> str:
    """How to record consent, naming the command of ``use`` for the one-step form."""
    command = COMMAND_OF_USE.get(use, "animate")
    return ('record consent first: `avatar clone PORTRAIT --subject NAME --consent "statement"` '
            f'(or one step: `avatar {command} ... --consent "statement" --subject NAME`)')


HOW_TO = how_to("video")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS avatars (
    avatar_id      TEXT PRIMARY KEY,
    consent_id     TEXT NOT NULL UNIQUE,
    subject        TEXT NOT NULL,
    granted_by     TEXT NOT NULL,
    statement      TEXT NOT NULL,
    scope_video    INTEGER NOT NULL,
    scope_audio    INTEGER NOT NULL,
    scope_live     INTEGER NOT NULL,
    commercial     INTEGER NOT NULL,
    created        TEXT NOT NULL,
    expires        TEXT,
    revoked        TEXT,
    revoke_reason  TEXT,
    source_sha256  TEXT NOT NULL,
    descriptor     BLOB NOT NULL,
    descriptor_version INTEGER NOT NULL,
    image_file     TEXT NOT NULL,
    evidence       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS avatars_sha ON avatars(source_sha256);
"""
# Columns added after the first release, in order: (name, SQL type). Never remove or reorder.
_ADDED_COLUMNS = (
    ("owner", "TEXT"),               # who created the avatar; NULL in stores made before owners existed
    ("revoke_token_sha256", "TEXT"),  # sha256 of the revocation token; the token itself is never stored
)


def local_owner() -> str:
    """The owner recorded for avatars made on the command line: ``local:<login name>``.

    The ``local:`` prefix cannot collide with a demo user name (those never contain ``:``).
    """
    try:
        return f"local:{getpass.getuser()}"
    except (KeyError, OSError):  # no login name (some containers)
        return f"local:uid{os.getuid()}" if hasattr(os, "getuid") else "local:user"


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.strip().encode()).hexdigest()


# Video clones (avatar/pack, avatar/output/spoken_consent): how consent was given and the evidence
# checked. A table of its own, so the avatars table keeps its schema.
_EVIDENCE_SCHEMA = """
CREATE TABLE IF NOT EXISTS consent_evidence (
    avatar_id      TEXT PRIMARY KEY,
    basis          TEXT NOT NULL,
    attested_by    TEXT,
    details        TEXT NOT NULL,
    created        TEXT NOT NULL
);
"""
BASES = ("spoken", "attested", "research")


@dataclass(frozen=True)
class Scope:
    """What a consent covers: offline video driving, audio (speech) driving, live sessions,
    and whether commercial use is allowed."""

    video: bool = True
    audio: bool = True
    live: bool = True
    commercial: bool = False

    def allows(self, use: str, commercial: bool = False) -> bool:
        return bool(getattr(self, use)) and (self.commercial or not commercial)

    def describe(self) -> str:
        uses = [u for u in USES if getattr(self, u)]
        return ",".join(uses) + (" (commercial)" if self.commercial else " (non-commercial)")

    @classmethod
    def parse(cls, text: str, commercial: bool = False) -> "Scope":
        """``"video,audio,live"`` (any subset) → Scope."""
        items = {t.strip().lower() for t in text.split(",") if t.strip()}
        unknown = items - set(USES)
        if unknown or not items:
            raise ConfigError(f"scope must be a comma list of {','.join(USES)}, got {text!r}")
        return cls(video="video" in items, audio="audio" in items, live="live" in items, commercial=commercial)


@dataclass(frozen=True)
class AvatarRecord:
    """One consented avatar (a row of the store). Times are timezone-aware UTC."""

    avatar_id: str
    consent_id: str
    subject: str
    granted_by: str
    statement: str
    scope: Scope
    created: datetime
    expires: datetime | None
    revoked: datetime | None
    revoke_reason: str | None
    source_sha256: str
    descriptor: np.ndarray = field(repr=False, compare=False)
    image_file: str = ""
    evidence: tuple[tuple[str, str], ...] = ()   # (file name, sha256)
    owner: str | None = None                     # who created it (None: a store older than owners)
    # only on the record clone() returns: the one-time revocation token for the subject
    revocation_token: str | None = field(default=None, repr=False, compare=False)
    revoke_token_sha256: str | None = field(default=None, repr=False, compare=False)

    def status(self, now: datetime | None = None) -> str:
        """"active", "revoked" or "expired"."""
        now = now or _now()
        if self.revoked is not None:
            return "revoked"
        if self.expires is not None and now >= self.expires:
            return "expired"
        return "active"


@dataclass(frozen=True)
class ConsentGrant:
    """What the gate hands to the output stage: it labels every output."""

    avatar_id: str | None
    consent_id: str
    subject: str | None
    scope: Scope | None
    expires: datetime | None
    policy: Literal["consent", "research"]
    basis: str | None = None          # video clones: "spoken", "attested" or "research"
    attested_by: str | None = None    # the operator who attested consent (basis "attested")

    def payload32(self) -> int:
        """32-bit watermark payload: the first 4 bytes of sha256(consent_id)."""
        return int.from_bytes(hashlib.sha256(self.consent_id.encode()).digest()[:4], "big")


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _utc(dt: datetime | None) -> datetime | None:
    if dt is None:
        return None
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def _iso(dt: datetime | None) -> str | None:
    return None if dt is None else _utc(dt).isoformat(timespec="seconds")


def _parse_dt(text: str | None) -> datetime | None:
    return None if text is None else _utc(datetime.fromisoformat(text))


def default_store_path() -> Path:
    """``avatar_home()/avatars.sqlite3`` (``$AVATAR_HOME`` overrides avatar_home)."""
    return avatar_home() / "avatars.sqlite3"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _describe(image: np.ndarray, face_index: int | None = None, where: str = "the image") -> np.ndarray:
    from ..face.descriptor import face_descriptor  # noqa: PLC0415
    from ..face.landmarks import detect_face  # noqa: PLC0415

    face = detect_face(image, where=where, face_index=face_index)
    return face_descriptor(image, face)


class ConsentStore:
    """SQLite store of avatars and their consent, with copies of the consented source images.

    Args:
        path: the database file; default :func:`default_store_path`. Source copies go to
            ``<path's folder>/sources/``.
    """

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else default_store_path()
        self.sources_dir = self.path.parent / "sources"
        self._lock = threading.Lock()
        try:
            private_dir(self.path.parent)
            private_file(self.path)  # SQLite creates -wal/-shm with the database file's mode
            self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            self._migrate()
            self._db.executescript(_EVIDENCE_SCHEMA)
        except (OSError, sqlite3.DatabaseError) as exc:
            raise InputError(f"cannot open the consent store {self.path} ({exc}); "
                             "pass another path or set $AVATAR_HOME to a writable folder") from exc
        warn_if_exposed(f"the consent store {self.path}",
                        [self.path.parent, self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm"),
                         self.sources_dir])

    def _migrate(self) -> None:
        """Add the columns an older store lacks (additive only, safe when two processes race)."""
        have = {row[1] for row in self._db.execute("PRAGMA table_info(avatars)")}
        for name, kind in _ADDED_COLUMNS:
            if name not in have:
                try:
                    self._db.execute(f"ALTER TABLE avatars ADD COLUMN {name} {kind}")
                except sqlite3.OperationalError as exc:
                    if "duplicate column" not in str(exc):
                        raise

    def close(self) -> None:
        self._db.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction on the store (for modules that keep their own tables here)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def __enter__(self) -> "ConsentStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing -------------------------------------------------------------------------

    def clone(self, image: np.ndarray, *, source_sha256: str, subject: str, granted_by: str, statement: str,
              scope: Scope = Scope(), expires: datetime | None = None, evidence: list[Path] | tuple = (),
              source_path: Path | None = None, face_index: int | None = None,
              descriptor: np.ndarray | None = None, owner: str | None = None,
              avatar_id: str | None = None) -> AvatarRecord:
        """Record consent for the face in ``image`` ((H, W, 3) uint8 RGB) and return the avatar.

        ``descriptor`` may be given when the caller already computed it (skips face detection);
        ``avatar_id`` when the caller already wrote files under it (a video clone's pack).
        ``owner`` is who creates it (default :func:`local_owner`). The returned record carries
        ``revocation_token``: hand it to the subject; only its hash is stored, so it is shown once.
        """
        from ..face.descriptor import DESCRIPTOR_VERSION  # noqa: PLC0415

        if not subject.strip():
            raise ConsentError("consent needs the subject's name (--subject NAME), got an empty name")
        if not statement.strip():
            raise ConsentError('consent needs the statement the subject agreed to (--consent "..."), got nothing')
        if not granted_by.strip():
            raise ConsentError("consent needs who granted it (--granted-by subject|guardian|estate|…)")
        expires = _utc(expires)
        created = _now()
        if expires is not None and expires <= created:
            raise ConsentError(f"consent expiry {_iso(expires)} is in the past; give a future date or none")
        ev = []
        for p in evidence:
            p = Path(p)
            if not p.is_file():
                raise InputError(f"evidence file {p} does not exist; pass existing files to --evidence")
            ev.append((p.name, _sha256_file(p)))
        desc = _describe(image, face_index) if descriptor is None else np.asarray(descriptor, np.float32)
        avatar_id = avatar_id or new_avatar_id()
        consent_id = str(uuid.uuid4())
        image_file = self._store_source(avatar_id, image, source_path, source_sha256)
        token = revocation_token()
        row = {"avatar_id": avatar_id, "consent_id": consent_id, "subject": subject.strip(),
               "granted_by": granted_by.strip(), "statement": statement.strip(), "scope_video": int(scope.video),
               "scope_audio": int(scope.audio), "scope_live": int(scope.live), "commercial": int(scope.commercial),
               "created": _iso(created), "expires": _iso(expires), "revoked": None, "revoke_reason": None,
               "source_sha256": source_sha256, "descriptor": desc.astype(np.float32).tobytes(),
               "descriptor_version": DESCRIPTOR_VERSION, "image_file": image_file, "evidence": json.dumps(ev),
               "owner": owner or local_owner(), "revoke_token_sha256": _token_hash(token)}
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(f"INSERT INTO avatars ({','.join(row)}) VALUES ({','.join('?' * len(row))})",
                                 tuple(row.values()))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return dataclasses.replace(self.get(avatar_id), revocation_token=token)

    def _store_source(self, avatar_id: str, image: np.ndarray, source_path: Path | None, sha: str) -> str:
        from ..media.atomic import atomic_write_bytes  # noqa: PLC0415

        private_dir(self.sources_dir)
        if source_path is not None and Path(source_path).is_file():
            data = Path(source_path).read_bytes()
            if sha256_bytes(data) == sha:  # keep the exact consented bytes
                name = f"{avatar_id}{Path(source_path).suffix.lower() or '.img'}"
                atomic_write_bytes(self.sources_dir / name, data, mode=PRIVATE_FILE_MODE)
                return name
        import cv2  # noqa: PLC0415

        ok, buf = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR))
        if not ok:  # pragma: no cover
            raise InputError("could not encode the source image as PNG for the consent store")
        name = f"{avatar_id}.png"
        atomic_write_bytes(self.sources_dir / name, buf.tobytes(), mode=PRIVATE_FILE_MODE)
        return name

    def token_matches(self, avatar_id: str, token: str | None) -> bool:
        """``token`` is the revocation token handed out when ``avatar_id`` was cloned."""
        if not token or not token.strip():
            return False
        rec = self.get(avatar_id)
        return bool(rec.revoke_token_sha256) and hmac.compare_digest(rec.revoke_token_sha256, _token_hash(token))

    def revoke(self, avatar_id: str, reason: str, *, token: str | None = None) -> AvatarRecord:
        """Revoke an avatar's consent (takes effect at the next gate check).

        With ``token``, the revocation token must match (ConsentError otherwise): the subject's
        own way to withdraw, whoever created the avatar.
        """
        if not reason or not reason.strip():
            raise ConsentError("revocation needs a reason (--reason TEXT)")
        self.get(avatar_id)  # raises for an unknown id
        if token is not None and not self.token_matches(avatar_id, token):
            raise ConsentError(f"that revocation token does not belong to avatar {avatar_id}; "
                               "use the token printed when the avatar was created")
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("UPDATE avatars SET revoked=?, revoke_reason=? WHERE avatar_id=? AND revoked IS NULL",
                                 (_iso(_now()), reason.strip(), avatar_id))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        self._delete_pack(avatar_id)  # a revoked avatar's footage and keyframes are not kept
        return self.get(avatar_id)

    def delete(self, avatar_id: str) -> None:
        """Delete an avatar: its record, evidence, source copy and pack."""
        rec = self.get(avatar_id)
        with self.transaction() as db:
            db.execute("DELETE FROM consent_evidence WHERE avatar_id=?", (avatar_id,))
            db.execute("DELETE FROM avatars WHERE avatar_id=?", (avatar_id,))
        (self.sources_dir / rec.image_file).unlink(missing_ok=True)
        self._delete_pack(avatar_id)

    def _delete_pack(self, avatar_id: str) -> None:
        from ..pack.store import delete_pack  # noqa: PLC0415

        delete_pack(self.path, avatar_id)

    def pack_dir(self, avatar_id: str) -> Path | None:
        """The folder of the avatar's pack (video clones), or None for a photo avatar."""
        from ..pack.store import pack_path  # noqa: PLC0415

        path = pack_path(self.path, avatar_id)
        return path if (path / "manifest.json").is_file() else None

    def record_evidence(self, avatar_id: str, basis: str, details: dict, attested_by: str | None = None) -> None:
        """Store how a video clone's consent was given (``basis``) and the evidence checked."""
        if basis not in BASES:
            raise ConfigError(f"consent basis must be one of {', '.join(BASES)}, got {basis!r}")
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO consent_evidence VALUES (?, ?, ?, ?, ?)",
                       (avatar_id, basis, attested_by, json.dumps(details, sort_keys=True), _iso(_now())))

    def evidence_of(self, avatar_id: str) -> dict | None:
        """{"basis", "attested_by", "details", "created"} of a video clone, None for other avatars."""
        with self._lock:
            row = self._db.execute("SELECT basis, attested_by, details, created FROM consent_evidence WHERE avatar_id=?",
                                   (avatar_id,)).fetchone()
        if row is None:
            return None
        return {"basis": row[0], "attested_by": row[1], "details": json.loads(row[2]), "created": row[3]}

    # -- reading -------------------------------------------------------------------------

    def _rows(self, where: str = "", args: tuple = ()) -> list[AvatarRecord]:
        with self._lock:
            cur = self._db.execute(f"SELECT * FROM avatars {where} ORDER BY created, avatar_id", args)
            names = [d[0] for d in cur.description]
            rows = [dict(zip(names, r)) for r in cur.fetchall()]
        return [self._record(r) for r in rows]

    @staticmethod
    def _record(r: dict) -> AvatarRecord:
        return AvatarRecord(
            avatar_id=r["avatar_id"], consent_id=r["consent_id"], subject=r["subject"], granted_by=r["granted_by"],
            statement=r["statement"],
            scope=Scope(bool(r["scope_video"]), bool(r["scope_audio"]), bool(r["scope_live"]), bool(r["commercial"])),
            created=_parse_dt(r["created"]), expires=_parse_dt(r["expires"]), revoked=_parse_dt(r["revoked"]),
            revoke_reason=r["revoke_reason"], source_sha256=r["source_sha256"],
            descriptor=np.frombuffer(r["descriptor"], dtype=np.float32).copy(), image_file=r["image_file"],
            evidence=tuple(tuple(e) for e in json.loads(r["evidence"])), owner=r.get("owner"),
            revoke_token_sha256=r.get("revoke_token_sha256"))

    def list(self) -> list[AvatarRecord]:
        """All avatars, oldest first (revoked and expired included)."""
        return self._rows()

    def get(self, avatar_id: str) -> AvatarRecord:
        """The avatar ``avatar_id``; raises ConsentError for an unknown id."""
        rows = self._rows("WHERE avatar_id=?", (avatar_id,))
        if not rows:
            raise ConsentError(f"no avatar {avatar_id!r} in {self.path}; see `avatar avatars list`")
        return rows[0]

    def find(self, image: np.ndarray | None, source_sha256: str | None = None,
             descriptor: np.ndarray | None = None) -> AvatarRecord | None:
        """The avatar of this image: by exact file hash first, else by face descriptor.

        Prefers an active record when several match. Returns None when nothing matches or no
        face is found.
        """
        from ..face.descriptor import MATCH_THRESHOLD, descriptor_distance  # noqa: PLC0415

        def best(records: list[AvatarRecord]) -> AvatarRecord | None:
            if not records:
                return None
            active = [r for r in records if r.status() == "active"]
            return (active or records)[-1]

        if source_sha256:
            hit = best(self._rows("WHERE source_sha256=?", (source_sha256,)))
            if hit is not None:
                return hit
        records = self.list()
        if not records or (image is None and descriptor is None):
            return None
        if descriptor is None:
            try:
                descriptor = _describe(image)
            except NoFaceError:
                return None
        scored = [(descriptor_distance(descriptor, r.descriptor), r) for r in records
                  if r.descriptor.shape == np.asarray(descriptor).reshape(-1).shape]
        close = [r for d, r in sorted(scored, key=lambda t: t[0]) if d < MATCH_THRESHOLD]
        if not close:
            return None
        active = [r for r in close if r.status() == "active"]
        return (active or close)[0]

    def source_image(self, avatar_id: str) -> np.ndarray:
        """(H, W, 3) uint8 RGB copy of the consented source image."""
        rec = self.get(avatar_id)
        path = self.sources_dir / rec.image_file
        if not path.is_file():
            raise InputError(f"the stored source image of {avatar_id} ({path}) is missing; clone the portrait again")
        try:
            from ..media.image import load_image  # noqa: PLC0415

            return load_image(path)
        except ImportError:  # pragma: no cover - media.image is part of the package
            from PIL import Image  # noqa: PLC0415

            with Image.open(path) as im:
                return np.asarray(im.convert("RGB"))


def revocation_token() -> str:
    """A fresh revocation token (144 random bits, URL-safe) that never starts with "-": one that
    did (1 in 64) could not be passed as ``--token -…`` on the command line (argparse reads it as
    an option)."""
    while (token := secrets.token_urlsafe(18)).startswith("-"):
        pass
    return token


def new_avatar_id() -> str:
    """A fresh avatar id, ``av_`` + 12 hex digits."""
    return "av_" + uuid.uuid4().hex[:12]


def parse_expiry(text: str | None, what: str = "expiry") -> datetime | None:
    """"" or None → no expiry; "2027-01-01" or an ISO date-time (UTC when no zone) → aware datetime."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{what} must be a date like 2027-01-01 (or empty for none), got {text!r}") from None
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt


def resolve_policy(policy: str | None = None) -> str:
    """The consent policy in force: the argument, else ``$AVATAR_CONSENT_POLICY``, else "consent"."""
    value = (policy or os.environ.get(POLICY_ENV) or "consent").strip().lower()
    if value not in POLICIES:
        raise ConfigError(f"consent policy must be one of {', '.join(POLICIES)} "
                          f"(argument or ${POLICY_ENV}), got {value!r}")
    return value


def _grant(rec: AvatarRecord) -> ConsentGrant:
    return ConsentGrant(rec.avatar_id, rec.consent_id, rec.subject, rec.scope, rec.expires, "consent")


def _check_record(rec: AvatarRecord, use: str, commercial: bool) -> None:
    status = rec.status()
    if status == "revoked":
        raise ConsentError(f"consent for avatar {rec.avatar_id} ({rec.subject}) was revoked on "
                           f"{_iso(rec.revoked)} ({rec.revoke_reason}); it can no longer be animated")
    if status == "expired":
        raise ConsentError(f"consent for avatar {rec.avatar_id} ({rec.subject}) expired on {_iso(rec.expires)}; "
                           "record a new consent with `avatar clone`")
    if not rec.scope.allows(use, commercial):
        what = f"{'commercial ' if commercial else ''}{use} use"
        raise ConsentError(f"consent for avatar {rec.avatar_id} ({rec.subject}) covers {rec.scope.describe()}, "
                           f"not {what}; record a consent with that scope (`avatar clone --scope ... "
                           f"{'--commercial' if commercial else ''}`)")


def check_consent(store: ConsentStore | None, *, image: np.ndarray | None, use: Literal["video", "audio", "live"],
                  source_sha256: str | None = None, avatar_id: str | None = None, commercial: bool = False,
                  policy: str | None = None) -> ConsentGrant:
    """The gate: a valid, unexpired, unrevoked avatar whose scope covers ``use``.

    Args:
        store: the consent store (None opens the default one when a record is needed).
        image: (H, W, 3) uint8 RGB portrait about to be animated.
        use: "video" (driving video), "audio" (speech-driven) or "live" (webcam session).
        source_sha256: sha256 of the portrait file, when it came from a file.
        avatar_id: the avatar the caller claims this is (``--avatar ID``); the image must match it.
        commercial: the output is for commercial use.
        policy: "consent" (default) or "research"; None reads ``$AVATAR_CONSENT_POLICY``.
    Returns:
        the grant that labels the output.
    Raises:
        ConsentError: no record, revoked, expired, out of scope, or the image is not avatar ID.
    """
    if use not in USES:
        raise ConfigError(f"use must be one of {', '.join(USES)}, got {use!r}")
    if resolve_policy(policy) == "research":
        # Explicit operator policy: no record needed, but the output is labelled as such.
        seed = f"research:{source_sha256 or ''}:{uuid.uuid4()}"
        return ConsentGrant(avatar_id, "research-" + hashlib.sha256(seed.encode()).hexdigest()[:24], None, None, None,
                            "research")
    store = store if store is not None else ConsentStore()
    if avatar_id is not None:
        rec = store.get(avatar_id)
        if image is not None and not _matches(store, rec, image, source_sha256):
            raise ConsentError(f"the portrait given is not the consented face of avatar {avatar_id} "
                               f"({rec.subject}); animate the stored image with `--avatar {avatar_id}` alone, "
                               f"or {how_to(use)}")
    else:
        if image is None and source_sha256 is None:
            raise ConsentError(f"no portrait and no avatar id given; {how_to(use)}")
        rec = store.find(image, source_sha256)
        if rec is None:
            raise ConsentError(f"no consent is recorded for this portrait; {how_to(use)}. Operators doing research "
                               f"may set {POLICY_ENV}=research (outputs are still labelled)")
    _check_record(rec, use, commercial)
    grant = _grant(rec)
    ev = store.evidence_of(rec.avatar_id)
    if ev is not None:  # a video clone: its outputs say how consent was given
        grant = dataclasses.replace(grant, basis=ev["basis"], attested_by=ev["attested_by"])
    return grant


def _matches(store: ConsentStore, rec: AvatarRecord, image: np.ndarray, sha: str | None) -> bool:
    from ..face.descriptor import MATCH_THRESHOLD, descriptor_distance  # noqa: PLC0415

    if sha is not None and sha == rec.source_sha256:
        return True
    try:
        desc = _describe(image)
    except NoFaceError:
        return False
    return descriptor_distance(desc, rec.descriptor) < MATCH_THRESHOLD


def grant_still_valid(store: ConsentStore | None, grant: ConsentGrant) -> bool:
    """Re-check a grant (live sessions call this periodically): False once revoked or expired.

    Research-policy grants were an explicit operator decision for the session and stay valid.
    """
    if grant.policy == "research":
        return True
    store = store if store is not None else ConsentStore()
    try:
        rec = store.get(grant.avatar_id)
    except ConsentError:
        return False
    return rec.consent_id == grant.consent_id and rec.status() == "active"
