"""Batch fixtures: a consented portrait (one active avatar, one revoked), a job-file writer, tiny job options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest



@pytest.fixture
def avatars(portrait, portrait_path):
    """(active avatar id, revoked avatar id) for the test portrait, in this test's consent store."""
    from avatar.output.consent import ConsentStore

    with ConsentStore() as store:
        sha = __import__("avatar.media.image", fromlist=["sha256_file"]).sha256_file(portrait_path)
        active = store.clone(portrait, source_sha256=sha, subject="Eileen Collins", granted_by="subject",
                             statement="test consent", source_path=portrait_path)
        revoked = store.clone(portrait, source_sha256=sha, subject="Eileen Collins", granted_by="subject",
                              statement="test consent, later withdrawn", source_path=portrait_path)
        store.revoke(revoked.avatar_id, "withdrawn for the test")
    return active.avatar_id, revoked.avatar_id


@pytest.fixture
def write_jobs(tmp_path):
    def write(records: list[dict] | str, name: str = "jobs.jsonl") -> Path:
        path = tmp_path / name
        text = records if isinstance(records, str) else "".join(json.dumps(r) + "\n" for r in records)
        path.write_text(text, encoding="utf-8")
        return path

    return write
