"""The consent store is private (0700 folders, 0600 files), warns when it is not, records owners
and revocation-token hashes, and migrates older stores in place."""

from __future__ import annotations

import logging
import os
import sqlite3
import stat

import numpy as np
import pytest

from avatar.errors import ConsentError
from avatar.output.consent import ConsentStore, Scope, local_owner

DESC = np.arange(16, dtype=np.float32)
IMG = np.full((64, 64, 3), 128, np.uint8)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _clone(store, i=0, **kw):
    return store.clone(IMG, source_sha256=f"{i:064x}", subject=f"s{i}", granted_by="subject", statement="ok",
                       scope=Scope(), expires=None, descriptor=DESC, **kw)


@pytest.fixture(autouse=True)
def _open_umask():
    """A typical umask (022) that would leave new files world-readable."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_new_store_folder_and_files_are_owner_only(tmp_path, monkeypatch):
    home = tmp_path / "not-yet" / "avatar"
    monkeypatch.setenv("AVATAR_HOME", str(home))
    with ConsentStore() as store:
        _clone(store)
        wal, shm = (store.path.with_name(store.path.name + s) for s in ("-wal", "-shm"))
        assert wal.exists() and shm.exists()  # while open, WAL mode keeps both
        assert _mode(home) == 0o700 and _mode(home.parent) == 0o700
        assert _mode(store.path) == 0o600 and _mode(wal) == 0o600 and _mode(shm) == 0o600
        assert _mode(store.sources_dir) == 0o700
        (copy,) = store.sources_dir.iterdir()
        assert _mode(copy) == 0o600


def test_signing_keys_and_certificates_are_owner_only(tmp_path, monkeypatch):
    from avatar.output.c2pa_keys import load_credentials, provenance_dir

    monkeypatch.setenv("AVATAR_HOME", str(tmp_path / "fresh"))
    load_credentials()
    folder = provenance_dir()
    assert _mode(folder) == 0o700 and _mode(folder.parent) == 0o700
    for name in ("signer.key", "chain.pem", "ca.pem"):
        assert _mode(folder / name) == 0o600, name


def test_an_exposed_existing_store_is_named_in_one_warning(tmp_path, caplog):
    folder = tmp_path / "shared"
    ConsentStore(folder / "avatars.sqlite3").close()
    os.chmod(folder, 0o755)
    os.chmod(folder / "avatars.sqlite3", 0o644)
    with caplog.at_level(logging.WARNING, logger="avatar.paths"):
        ConsentStore(folder / "avatars.sqlite3").close()
        ConsentStore(folder / "avatars.sqlite3").close()
    warned = [r.getMessage() for r in caplog.records if "other users can read" in r.getMessage()]
    assert len(warned) == 1, warned  # once per store and process
    assert f"{folder} (755)" in warned[0] and f"{folder / 'avatars.sqlite3'} (644)" in warned[0]
    assert f"chmod -R go-rwx {folder}" in warned[0]
    assert _mode(folder) == 0o755  # an existing store is reported, never silently changed


def test_owner_and_revocation_token(tmp_path):
    with ConsentStore(tmp_path / "a.sqlite3") as store:
        mine = _clone(store)
        theirs = _clone(store, 1, owner="alice")
        assert mine.owner == local_owner() and mine.owner.startswith("local:")
        assert theirs.owner == "alice"
        token = theirs.revocation_token
        assert token and len(token) >= 20
        assert store.get(theirs.avatar_id).revocation_token is None  # shown once, never stored
        assert token.encode() not in store.path.read_bytes() + (tmp_path / "a.sqlite3-wal").read_bytes()
        assert not store.token_matches(theirs.avatar_id, mine.revocation_token)
        with pytest.raises(ConsentError, match="does not belong"):
            store.revoke(theirs.avatar_id, "withdrawn", token=mine.revocation_token)
        assert store.get(theirs.avatar_id).status() == "active"
        assert store.revoke(theirs.avatar_id, "withdrawn", token=token).status() == "revoked"


_OLD_SCHEMA = """
CREATE TABLE avatars (
    avatar_id TEXT PRIMARY KEY, consent_id TEXT NOT NULL UNIQUE, subject TEXT NOT NULL, granted_by TEXT NOT NULL,
    statement TEXT NOT NULL, scope_video INTEGER NOT NULL, scope_audio INTEGER NOT NULL, scope_live INTEGER NOT NULL,
    commercial INTEGER NOT NULL, created TEXT NOT NULL, expires TEXT, revoked TEXT, revoke_reason TEXT,
    source_sha256 TEXT NOT NULL, descriptor BLOB NOT NULL, descriptor_version INTEGER NOT NULL,
    image_file TEXT NOT NULL, evidence TEXT NOT NULL);
"""


def test_a_store_from_before_owners_is_migrated_in_place(tmp_path):
    db = tmp_path / "old.sqlite3"
    with sqlite3.connect(db) as con:
        con.executescript(_OLD_SCHEMA)
        con.execute("INSERT INTO avatars VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    ("av_old", "c-old", "Old", "subject", "ok", 1, 1, 1, 0, "2026-01-01T00:00:00+00:00", None, None,
                     None, "0" * 64, DESC.tobytes(), 1, "av_old.png", "[]"))
    con.close()
    with ConsentStore(db) as store:
        (old,) = store.list()
        assert old.avatar_id == "av_old" and old.owner is None and old.status() == "active"
        new = _clone(store, 2, owner="bob")
        assert [r.owner for r in store.list()] == [None, "bob"] and new.revocation_token
        assert not store.token_matches("av_old", "anything")  # an old avatar has no token to match
    with sqlite3.connect(db) as con:
        cols = [r[1] for r in con.execute("PRAGMA table_info(avatars)")]
    con.close()
    assert cols[-2:] == ["owner", "revoke_token_sha256"]


def test_a_weights_download_into_a_new_home_creates_it_private(tmp_path, monkeypatch):
    """The first thing written to $AVATAR_HOME may be a checkpoint, not the store."""
    import hashlib

    from avatar import paths, weights_registry

    home = tmp_path / "new-home"
    monkeypatch.setenv("AVATAR_HOME", str(home))
    src = tmp_path / "w.bin"
    src.write_bytes(b"weights")
    dest = paths.cache_dir() / "w.bin"
    weights_registry.download(src.as_uri(), dest, sha256=hashlib.sha256(b"weights").hexdigest())
    assert dest.read_bytes() == b"weights"
    assert _mode(home) == 0o700 and _mode(dest.parent) == 0o700


def _credentials_in_a_process(home: str, queue) -> None:
    os.environ["AVATAR_HOME"] = home
    from avatar.output.c2pa_keys import load_credentials

    creds = load_credentials()
    queue.put((creds.chain_pem, creds.key_pem))


def test_processes_creating_the_signing_key_at_once_agree_on_one_key_and_chain(tmp_path):
    """Batch workers sign their first outputs at the same moment: each must read a key and a
    chain made together (interleaved, a key of one with the chain of another, no signature verified)."""
    import multiprocessing

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_credentials_in_a_process, args=(str(tmp_path / "fresh"), queue)) for _ in range(6)]
    for p in procs:
        p.start()
    got = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert len({chain for chain, _ in got}) == 1
    for chain, key in got:
        leaf = x509.load_pem_x509_certificates(chain)[0]
        public = serialization.load_pem_private_key(key, None).public_key()
        assert leaf.public_key().public_numbers() == public.public_numbers()
