"""Who may see whose face: sign-in is required beyond loopback, and a signed-in user lists, uses
and revokes only their own avatars (an admin sees all; anyone holding the revocation token may
revoke), through the UI-free service, the live sessions and the served API (gradio_client)."""

from __future__ import annotations

import os

import pytest
from demo_helpers import CONSENT, FAST, MAX_UPLOAD_MB

from avatar.errors import ConfigError, ConsentError


@pytest.fixture
def signed_in(tmp_path):
    from avatar.demo.service import DemoService
    from avatar.demo.settings import DemoSettings

    svc = DemoService(DemoSettings(config=FAST, store_path=tmp_path / "store" / "avatars.sqlite3",
                                   max_upload_mb=MAX_UPLOAD_MB, max_seconds=10, sign_in=True,
                                   admins=frozenset({"carol"})))
    yield svc
    svc.close()


def test_second_user_can_neither_see_use_nor_revoke(signed_in, portrait_path, driving_clip):
    svc = signed_in
    alice, bob, carol = svc.viewer("alice"), svc.viewer("bob"), svc.viewer("carol")
    rec = svc.create_avatar(portrait_path, **CONSENT, viewer=alice)
    assert rec.owner == "alice"
    assert [r[0] for r in svc.avatar_rows(alice)] == [rec.avatar_id]
    assert svc.avatar_rows(bob) == [] and svc.avatar_choices("video", bob) == []
    hidden = f"no avatar '{rec.avatar_id}' has a consent record here"  # the same words as for an unknown id
    for attempt in (lambda: svc.describe(rec.avatar_id, bob),
                    lambda: svc.animate(rec.avatar_id, driving_clip, progress=False, viewer=bob),
                    lambda: svc.talk(rec.avatar_id, driving_clip, progress=False, viewer=bob),
                    lambda: svc.revoke(rec.avatar_id, "not mine", viewer=bob)):
        with pytest.raises(ConsentError, match=hidden):
            attempt()
    assert svc.store.get(rec.avatar_id).status() == "active"
    # the admin sees every avatar and who created it
    assert [r[0] for r in svc.avatar_rows(carol)] == [rec.avatar_id] and svc.avatar_rows(carol)[0][6] == "alice"
    assert "created by: alice" in svc.describe(rec.avatar_id, carol)
    # the owner may animate
    out = svc.animate(rec.avatar_id, driving_clip, progress=False, viewer=alice)
    assert out.summary["avatar_id"] == rec.avatar_id


def test_live_session_of_another_users_avatar_is_refused(signed_in, portrait_path):
    from avatar.demo.live import LiveSessions
    from avatar.examples import synthetic_driving

    frame = synthetic_driving(frames=1, size=256)[0]
    rec = signed_in.create_avatar(portrait_path, **CONSENT, viewer=signed_in.viewer("alice"))
    sessions = LiveSessions(signed_in)
    try:
        with pytest.raises(ConsentError, match="no avatar"):
            sessions.process("bob-tab", rec.avatar_id, frame, signed_in.viewer("bob"))
    finally:
        sessions.close_all()


def test_the_subject_revokes_with_the_token_without_being_the_owner(signed_in, portrait_path):
    svc = signed_in
    rec = svc.create_avatar(portrait_path, **CONSENT, viewer=svc.viewer("alice"))
    other = svc.create_avatar(portrait_path, **CONSENT, viewer=svc.viewer("alice"))
    bob = svc.viewer("bob")
    with pytest.raises(ConsentError, match="does not belong"):
        svc.revoke(rec.avatar_id, "withdrawn", viewer=bob, token=other.revocation_token)
    with pytest.raises(ConsentError, match="does not belong"):  # an unknown id reads the same
        svc.revoke("av_000000000000", "withdrawn", viewer=bob, token=rec.revocation_token)
    svc.revoke(rec.avatar_id, "withdrawn by the subject", viewer=bob, token=rec.revocation_token)
    assert svc.store.get(rec.avatar_id).status() == "revoked"
    assert svc.avatar_rows(bob) == []  # revoking did not make it visible


def test_signed_in_demo_refuses_requests_without_a_user(signed_in):
    with pytest.raises(ConsentError, match="sign in"):
        signed_in.viewer(None)
    with pytest.raises(ConsentError, match="may not contain ':'"):
        signed_in.viewer("local:root")  # the command line's owner names are not demo users


@pytest.mark.parametrize("host, share", [("0.0.0.0", False), ("192.168.1.20", False), ("::", False),
                                         ("127.0.0.1", True)])
def test_exposed_demo_without_auth_refuses_to_start(host, share, capsys):
    from avatar.cli import main
    from avatar.demo import launch

    args = ["demo", "--host", host] + (["--share"] if share else [])
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "refusing to serve the demo" in err and "--auth USER:PASS" in err and "--insecure-no-auth" in err
    with pytest.raises(ConfigError, match="refusing to serve"):
        launch(FAST, host=host, share=share, block=False, quiet=True)


def test_demo_without_gradio_says_what_to_install(monkeypatch, capsys):
    import sys

    from avatar.cli import main

    monkeypatch.setitem(sys.modules, "gradio", None)
    assert main(["demo"]) == 1
    assert 'pip install "gradio>=6,<7"' in capsys.readouterr().err


def test_loopback_and_explicit_choices_pass_the_exposure_check(tmp_path):
    from avatar.demo.settings import check_exposure, collect_auth

    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        check_exposure(host, False, None)
    check_exposure("0.0.0.0", False, [("a", "b")])
    check_exposure("0.0.0.0", True, None, insecure_no_auth=True)
    check_exposure("0.0.0.0", False, lambda u, p: u == "a")  # a callback is auth too
    good = tmp_path / "users.txt"
    good.write_text("# users\nalice:s3cret:with:colons\n\nbob:pw\n")
    os.chmod(good, 0o600)
    assert collect_auth(["carol:x"], good) == [("carol", "x"), ("alice", "s3cret:with:colons"), ("bob", "pw")]
    os.chmod(good, 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        collect_auth([], good)
    with pytest.raises(ConfigError, match="USER:PASSWORD"):
        collect_auth(["nopassword"])
    assert collect_auth([], None) is None


# -- the same rules through the served API -------------------------------------------------

gradio_client = pytest.importorskip("gradio_client")

USERS = [("alice", "alice-pw"), ("bob", "bob-pw"), ("carol", "carol-pw")]


@pytest.fixture(scope="module")
def served_auth(tmp_path_factory):
    from demo_helpers import free_port

    from avatar.demo import close_demo, launch

    store = tmp_path_factory.mktemp("auth-store") / "avatars.sqlite3"
    port = free_port()
    demo = launch(FAST, port=port, block=False, quiet=True, store_path=store, max_upload_mb=MAX_UPLOAD_MB,
                  max_seconds=10, auth=USERS, admins=["carol"])
    yield f"http://127.0.0.1:{port}/"
    close_demo(demo)


def _client(url, user):
    from gradio_client import Client

    return Client(url, auth=(user, dict(USERS)[user]), verbose=False)


def test_api_applies_the_same_rules(served_auth, portrait_path, driving_clip):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    alice, bob, carol = (_client(served_auth, u) for u in ("alice", "bob", "carol"))
    c = CONSENT
    avatar_id, table, _, token = alice.predict(
        handle_file(str(portrait_path)), 0, 2.0, c["subject"], c["granted_by"], c["statement"], c["scopes"],
        c["commercial"], c["expires"], c["confirmed"], api_name="/create_avatar")
    assert [row[0] for row in table["data"]] == [avatar_id] and table["data"][0][6] == "alice"

    bob_table, _ = bob.predict(None, api_name="/list_avatars")
    assert avatar_id not in str(bob_table)
    with pytest.raises(AppError, match="no avatar"):
        bob.predict(avatar_id, api_name="/inspect_avatar")
    with pytest.raises(AppError, match="no avatar"):
        bob.predict(avatar_id, handle_file(str(driving_clip)), "relative", False, 2.0, 1.0, "warp",
                    api_name="/animate")
    with pytest.raises(AppError, match="no avatar"):
        bob.predict(avatar_id, "not mine", api_name="/revoke_avatar")
    assert "status: **active**" in alice.predict(avatar_id, api_name="/inspect_avatar")

    carol_table, _ = carol.predict(None, api_name="/list_avatars")  # the admin sees it
    assert avatar_id in str(carol_table)
    # the subject, holding the token, withdraws through bob's account
    with pytest.raises(AppError, match="does not belong"):
        bob.predict(avatar_id, "guess", "not-the-token", api_name="/revoke_with_token")
    bob.predict(avatar_id, "withdrawn by the subject", token, api_name="/revoke_with_token")
    assert "revoked" in alice.predict(avatar_id, api_name="/inspect_avatar")


def test_api_needs_a_sign_in(served_auth):
    from gradio_client import Client

    with pytest.raises(Exception):  # noqa: B017 - gradio_client raises different errors across versions
        Client(served_auth, verbose=False).predict(None, api_name="/list_avatars")
    with pytest.raises(Exception):  # noqa: B017
        Client(served_auth, auth=("alice", "wrong"), verbose=False)
