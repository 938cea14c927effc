"""The served demo driven through its named API with gradio_client: clone → animate → verify, refusals."""

from __future__ import annotations

import os

import pytest
from demo_helpers import CONSENT, MAX_UPLOAD_MB

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError


def _form(portrait, **changes):
    c = {**CONSENT, **changes}
    return (portrait, 0, 2.0, c["subject"], c["granted_by"], c["statement"], c["scopes"], c["commercial"],
            c["expires"], c["confirmed"])


def _animate_args(avatar_id, video):
    return (avatar_id, handle_file(str(video)), "relative", False, 2.0, 1.0, "warp")


@pytest.fixture(scope="module")
def client(served):
    return Client(served[1], verbose=False)


def test_named_endpoints_are_stable(client):
    names = set(client.view_api(return_format="dict", print_info=False)["named_endpoints"])
    assert {"/detect_faces", "/create_avatar", "/list_avatars", "/inspect_avatar", "/revoke_avatar", "/revoke_with_token", "/animate",
            "/talk", "/verify"} <= names


def test_clone_with_consent_then_animate_then_verify(client, portrait_path, driving_clip):
    faces, crop, _picker = client.predict(handle_file(str(portrait_path)), 2.0, api_name="/detect_faces")
    assert os.path.isfile(faces) and os.path.isfile(crop)
    avatar_id, table, _, token = client.predict(*_form(handle_file(str(portrait_path))), api_name="/create_avatar")
    assert len(token) >= 20  # the revocation token, shown once
    assert avatar_id.startswith("av_")
    assert [avatar_id, CONSENT["subject"]] == table["data"][0][:2]
    assert CONSENT["statement"] in client.predict(avatar_id, api_name="/inspect_avatar")

    video, summary = client.predict(*_animate_args(avatar_id, driving_clip), api_name="/animate")
    path = video["video"] if isinstance(video, dict) else video
    assert os.path.getsize(path) > 0
    assert summary["avatar_id"] == avatar_id and summary["frames"] == 20 and summary["ai_generated"] == "true"

    report, facts = client.predict(handle_file(path), api_name="/verify")
    # the labels survive the trip through Gradio (no re-encode stripped them)
    assert facts["labelled_ai"] and facts["ai_generated_tag"] == "true"
    assert facts["consent_id"] == summary["consent_id"]
    assert facts["c2pa_state"] in ("Valid", "Trusted") and facts["watermark_matches_c2pa"] is True
    assert "labelled as AI-generated" in report


def test_refusals_reach_the_client_as_clear_errors(client, portrait_path, plain_image_path, driving_clip):
    with pytest.raises(AppError, match="consent form is incomplete.*subject.*statement"):
        client.predict(*_form(handle_file(str(portrait_path)), subject="", statement=""), api_name="/create_avatar")
    with pytest.raises(AppError, match="no face found"):
        client.predict(*_form(handle_file(str(plain_image_path))), api_name="/create_avatar")
    with pytest.raises(AppError, match="no avatar 'av_0000' has a consent record"):
        client.predict(*_animate_args("av_0000", driving_clip), api_name="/animate")
    avatar_id = client.predict(*_form(handle_file(str(portrait_path))), api_name="/create_avatar")[0]
    client.predict(avatar_id, "subject withdrew", api_name="/revoke_avatar")
    with pytest.raises(AppError, match="revoked"):
        client.predict(*_animate_args(avatar_id, driving_clip), api_name="/animate")


def test_corrupt_upload_is_refused(client, portrait_path, tmp_path):
    avatar_id = client.predict(*_form(handle_file(str(portrait_path))), api_name="/create_avatar")[0]
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(os.urandom(20_000))
    with pytest.raises(AppError, match="broken.mp4|decode|cannot|video"):
        client.predict(*_animate_args(avatar_id, bad), api_name="/animate")


def test_too_large_upload_is_refused_by_the_server(served, tmp_path):
    import httpx

    big = tmp_path / "big.mp4"
    big.write_bytes(os.urandom(int((MAX_UPLOAD_MB + 0.5) * 2**20)))
    # past the client's own size check: the server must refuse the bytes themselves
    with open(big, "rb") as fh:
        r = httpx.post(served[1] + "gradio_api/upload", files={"files": ("big.mp4", fh, "video/mp4")}, timeout=30)
    assert r.status_code == 413, r.text
    small = tmp_path / "small.mp4"
    small.write_bytes(b"\0" * 1000)
    with open(small, "rb") as fh:
        assert httpx.post(served[1] + "gradio_api/upload", files={"files": ("small.mp4", fh)}, timeout=30).is_success


def test_talk_speaks_typed_text(client, portrait_path):
    from avatar.demo.service import tts_available

    if not tts_available():
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    avatar_id = client.predict(*_form(handle_file(str(portrait_path))), api_name="/create_avatar")[0]
    video, summary = client.predict(avatar_id, None, "Hi.", "", api_name="/talk")
    path = video["video"] if isinstance(video, dict) else video
    import av

    with av.open(path) as c:
        assert c.streams.audio and c.streams.video
    assert summary["avatar_id"] == avatar_id and summary["frames"] > 0
