from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

import cv2
import pytest

from avatar.errors import ConsentError
from avatar.output import consent as C
from avatar.output.consent import ConsentStore, Scope, check_consent, grant_still_valid


def _sha(img) -> str:
    return hashlib.sha256(img.tobytes()).hexdigest()


@pytest.fixture
def store(tmp_path):
    with ConsentStore(tmp_path / "db" / "avatars.sqlite3") as s:
        yield s


def _clone(store, img, **kw):
    args = dict(source_sha256=_sha(img), subject="Eileen", granted_by="subject",
                statement="I agree to be animated", scope=Scope(), expires=None)
    args.update(kw)
    return store.clone(img, **args)


def test_no_record_is_refused_with_instructions(store, portrait):
    with pytest.raises(ConsentError, match="avatar clone PORTRAIT --subject"):
        check_consent(store, image=portrait, use="video", source_sha256=_sha(portrait))


def test_clone_then_gate_passes_by_hash_and_by_face(store, portrait):
    rec = _clone(store, portrait)
    g = check_consent(store, image=portrait, use="video", source_sha256=_sha(portrait))
    assert (g.avatar_id, g.consent_id, g.policy) == (rec.avatar_id, rec.consent_id, "consent")
    small = cv2.resize(portrait, (256, 256), interpolation=cv2.INTER_AREA)   # other file, same face
    g2 = check_consent(store, image=small, use="audio", source_sha256="0" * 64)
    assert g2.avatar_id == rec.avatar_id
    assert 0 <= g.payload32() < 2**32
    # persisted: a new connection sees it, and the source copy is kept
    again = ConsentStore(store.path)
    assert [r.avatar_id for r in again.list()] == [rec.avatar_id]
    assert (again.source_image(rec.avatar_id) == portrait).all()


def test_different_face_is_not_covered(store, portrait, other_face):
    _clone(store, portrait)
    with pytest.raises(ConsentError, match="no consent"):
        check_consent(store, image=other_face, use="video", source_sha256=_sha(other_face))
    rec = store.list()[0]
    with pytest.raises(ConsentError, match="not the consented face"):
        check_consent(store, image=other_face, use="video", avatar_id=rec.avatar_id)


def test_revoked_is_refused_and_live_session_notices(store, portrait):
    rec = _clone(store, portrait)
    g = check_consent(store, image=portrait, use="live", avatar_id=rec.avatar_id)
    assert grant_still_valid(store, g)
    store.revoke(rec.avatar_id, "subject withdrew")
    assert not grant_still_valid(store, g)
    with pytest.raises(ConsentError, match="revoked"):
        check_consent(store, image=portrait, use="video", source_sha256=_sha(portrait))


def test_expired_is_refused(store, portrait, monkeypatch):
    _clone(store, portrait, expires=datetime.now(timezone.utc) + timedelta(days=1))
    check_consent(store, image=portrait, use="video", source_sha256=_sha(portrait))
    later = datetime.now(timezone.utc) + timedelta(days=2)
    monkeypatch.setattr(C, "_now", lambda: later)
    with pytest.raises(ConsentError, match="expired"):
        check_consent(store, image=portrait, use="video", source_sha256=_sha(portrait))


def test_out_of_scope_is_refused(store, portrait):
    _clone(store, portrait, scope=Scope(video=True, audio=True, live=False))
    check_consent(store, image=portrait, use="video", source_sha256=_sha(portrait))
    with pytest.raises(ConsentError, match="not live use"):
        check_consent(store, image=portrait, use="live", source_sha256=_sha(portrait))
    with pytest.raises(ConsentError, match="commercial"):
        check_consent(store, image=portrait, use="video", source_sha256=_sha(portrait), commercial=True)


def test_research_policy_passes_and_is_labelled(store, portrait, monkeypatch):
    g = check_consent(store, image=portrait, use="live", policy="research")
    assert g.policy == "research" and g.consent_id.startswith("research-") and g.avatar_id is None
    monkeypatch.setenv("AVATAR_CONSENT_POLICY", "research")
    assert check_consent(None, image=portrait, use="video").policy == "research"
    from avatar.output.provenance import provenance_metadata

    meta = provenance_metadata(g)
    assert meta["ai_generated"] == "true" and meta["consent_policy"] == "research"
    monkeypatch.setenv("AVATAR_CONSENT_POLICY", "anything")
    with pytest.raises(Exception, match="consent policy"):
        check_consent(store, image=portrait, use="video")


def test_default_store_under_avatar_home(_isolated_home, portrait):
    s = ConsentStore()
    assert s.path == _isolated_home / "avatars.sqlite3"


def test_cli_clone_list_show_revoke(tmp_path, portrait, capsys):
    from avatar.cli import main

    img = tmp_path / "p.png"
    cv2.imwrite(str(img), cv2.cvtColor(portrait, cv2.COLOR_RGB2BGR))
    ev = tmp_path / "form.txt"
    ev.write_text("signed")
    db = tmp_path / "a.sqlite3"
    assert main(["clone", str(img), "--subject", "Eileen", "--consent", "yes", "--scope", "video",
                 "--expires", "2099-01-01", "--evidence", str(ev), "--store", str(db)]) == 0
    avatar_id = capsys.readouterr().out.strip()
    assert avatar_id.startswith("av_")
    assert main(["avatars", "--store", str(db), "show", avatar_id]) == 0
    out = capsys.readouterr().out
    assert "form.txt" in out and "video (non-commercial)" in out
    assert main(["avatars", "--store", str(db), "revoke", avatar_id, "--reason", "withdrawn"]) == 0
    assert main(["avatars", "--store", str(db), "list"]) == 0
    assert "revoked" in capsys.readouterr().out
    assert main(["avatars", "--store", str(db), "show", "av_nope"]) == 1


def test_a_revocation_token_never_starts_with_a_dash(monkeypatch):
    """One token in 64 from token_urlsafe starts with "-", which `avatar avatars revoke --token`
    would read as an option (a test failed on exactly that)."""
    import secrets

    from avatar.output import consent

    drawn = iter(["-EalefJTLT90uOSS6goYe1qj", "EalefJTLT90uOSS6goYe1qj"])
    monkeypatch.setattr(secrets, "token_urlsafe", lambda n: next(drawn))
    assert consent.revocation_token() == "EalefJTLT90uOSS6goYe1qj"
