"""The demo's UI-free logic: previews, the consent form, limits, engines, renders through the gate."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from demo_helpers import CONSENT

from avatar.config import AvatarConfig, RenderConfig
from avatar.errors import ConfigError, ConsentError, InputError, NoFaceError


def test_preview_draws_faces_and_crop_follows_the_scale(service, portrait_path):
    shown, tight, n = service.preview(portrait_path, 1.2, 0)
    _, loose, _ = service.preview(portrait_path, 3.0, 0)
    assert n == 1
    assert max(shown.shape[:2]) == 256 and tight.shape == loose.shape == (256, 256, 3)
    # a wider crop shows more background: the mean differs and the face occupies less of it
    assert np.abs(tight.astype(int) - loose.astype(int)).mean() > 10


def test_several_faces_are_offered_and_each_gets_its_own_crop(service, two_faces_path):
    _, crop0, n = service.preview(two_faces_path, 2.0, 0)
    _, crop1, _ = service.preview(two_faces_path, 2.0, 1)
    assert n == 2
    assert np.abs(crop0.astype(int) - crop1.astype(int)).mean() > 10
    with pytest.raises(NoFaceError, match="2 face"):
        service.preview(two_faces_path, 2.0, 2)


def test_no_face_is_refused(service, plain_image_path):
    with pytest.raises(NoFaceError, match="no face"):
        service.preview(plain_image_path, 2.0, 0)
    with pytest.raises(NoFaceError):
        service.create_avatar(plain_image_path, **CONSENT)


@pytest.mark.parametrize("field, value, named", [
    ("subject", "  ", "subject"),
    ("statement", "", "statement"),
    ("scopes", [], "scope"),
    ("confirmed", False, "confirmation"),
    ("granted_by", "someone", "who grants"),
])
def test_incomplete_consent_form_is_refused_naming_the_gap(service, portrait_path, field, value, named):
    with pytest.raises(ConsentError, match=named):
        service.create_avatar(portrait_path, **{**CONSENT, field: value})
    assert service.store.list() == []


def test_expiry_must_be_a_future_date(service, portrait_path):
    with pytest.raises(ConsentError, match="past"):
        service.create_avatar(portrait_path, **{**CONSENT, "expires": "2001-01-01"})
    with pytest.raises(ConfigError, match="date like"):
        service.create_avatar(portrait_path, **{**CONSENT, "expires": "next year"})
    rec = service.create_avatar(portrait_path, **{**CONSENT, "expires": "2999-01-01"})
    assert rec.expires.year == 2999


def test_created_avatar_is_listed_inspected_and_revocable(service, portrait_path):
    rec = service.create_avatar(portrait_path, **{**CONSENT, "scopes": ["video"]})
    rows = service.avatar_rows()
    assert rows[0][0] == rec.avatar_id and rows[0][4] == "active"
    assert [v for _, v in service.avatar_choices("video")] == [rec.avatar_id]
    assert service.avatar_choices("live") == []  # scope limits where it is offered
    assert CONSENT["statement"] in service.describe(rec.avatar_id)
    with pytest.raises(ConsentError, match="reason"):
        service.revoke(rec.avatar_id, " ")
    service.revoke(rec.avatar_id, "withdrawn")
    assert service.avatar_rows()[0][4] == "revoked"
    assert service.avatar_choices() == []


def test_animate_goes_through_the_consent_gate(service, portrait_path, driving_clip):
    with pytest.raises(ConsentError, match="choose an avatar"):
        service.animate(None, driving_clip)
    with pytest.raises(ConsentError, match="no avatar 'av_x'"):
        service.animate("av_x", driving_clip)
    rec = service.create_avatar(portrait_path, **{**CONSENT, "scopes": ["audio"]})
    with pytest.raises(ConsentError, match="not video use"):
        service.animate(rec.avatar_id, driving_clip, progress=False)
    ok = service.create_avatar(portrait_path, **CONSENT)
    out = service.animate(ok.avatar_id, driving_clip, progress=False, best_frame=True, mode="absolute")
    assert out.path.is_file() and out.path.parent == service.workdir
    assert out.summary["avatar_id"] == ok.avatar_id and out.summary["frames"] == 20
    facts = service.verify(out.path)[1]
    assert facts["labelled_ai"] and facts["consent_id"] == out.summary["consent_id"]
    service.revoke(ok.avatar_id, "withdrawn")
    with pytest.raises(ConsentError, match="revoked"):
        service.animate(ok.avatar_id, driving_clip, progress=False)


def test_second_face_is_animated_when_chosen(service, two_faces_path, driving_clip):
    rec = service.create_avatar(two_faces_path, **CONSENT, face_index=1, crop_scale=1.8)
    assert service.prefs(rec.avatar_id).face_index == 1
    cfg = service.render_config(rec.avatar_id)
    assert cfg.face.face_index == 1 and cfg.face.crop_scale == pytest.approx(1.8)
    out = service.animate(rec.avatar_id, driving_clip, progress=False)
    assert out.summary["frames"] == 20


def test_long_or_corrupt_driving_video_is_refused_before_work(service, driving_clip, tmp_path):
    import dataclasses

    service.settings = dataclasses.replace(service.settings, max_seconds=0.5)
    with pytest.raises(InputError, match=r"0\.8 s long.*up to 0\.5 s"):
        service.check_video(driving_clip)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(os.urandom(4096))
    with pytest.raises(InputError):
        service.check_video(bad)
    big = tmp_path / "big.mp4"
    big.write_bytes(b"\0" * (service.settings.max_upload_bytes + 1))
    with pytest.raises(InputError, match="accepts up to 2 MB"):
        service.check_video(big)


def test_audio_limits(service, driving_clip, tmp_path):
    import dataclasses

    assert service.check_audio(driving_clip) == pytest.approx(0.8, abs=0.1)
    service.settings = dataclasses.replace(service.settings, max_seconds=0.5)
    with pytest.raises(InputError, match="up to 0.5 s"):
        service.check_audio(driving_clip)
    with pytest.raises(InputError, match="either an audio file or text"):
        service.talk("av_x", driving_clip, "hello")
    with pytest.raises(InputError, match="upload audio or type"):
        service.talk("av_x", None, " ")


def test_engines_are_offered_only_with_their_weights(tmp_path, monkeypatch):
    from avatar.demo.settings import (
        FOMM_ENV,
        ONNX_ENV,
        available_engines,
        engine_render_config,
    )

    monkeypatch.delenv(FOMM_ENV, raising=False)
    monkeypatch.delenv(ONNX_ENV, raising=False)
    assert available_engines(AvatarConfig()) == ["warp"]
    ckpt = tmp_path / "vox.pth.tar"
    ckpt.write_bytes(b"x")
    cfg = AvatarConfig(render=RenderConfig(checkpoint=str(ckpt)))
    assert available_engines(cfg) == ["warp", "fomm"]
    assert engine_render_config(cfg, "fomm").checkpoint == str(ckpt)
    monkeypatch.setenv(ONNX_ENV, str(tmp_path))
    assert available_engines(AvatarConfig()) == ["warp", "onnx"]
    with pytest.raises(ConfigError, match="not available"):
        engine_render_config(AvatarConfig(), "fomm")


def test_outputs_are_swept_and_removed_on_close(service):
    old = service.workdir / "animate-old.mp4"
    new = service.workdir / "animate-new.mp4"
    old.write_bytes(b"x")
    new.write_bytes(b"x")
    past = time.time() - 3600 * 24
    os.utime(old, (past, past))
    assert service.sweep() == 1
    assert not old.exists() and new.exists()
    service.close()
    assert not service.workdir.exists()


def test_cli_registers_demo_with_its_limits():
    from avatar.cli import build_parser
    from avatar.cli.demo import settings_from_args

    args = build_parser().parse_args(["demo", "--port", "7999", "--max-upload-mb", "5", "--max-seconds", "12",
                                      "--concurrency", "2", "--size", "256"])
    s = settings_from_args(args)
    assert (args.host, args.port) == ("127.0.0.1", 7999)
    assert (s.max_upload_mb, s.max_seconds, s.concurrency, s.config.face.size) == (5, 12, 2, 256)
    assert 5.0 <= s.live_fps <= 30.0  # measured on this machine at start-up
    fixed = settings_from_args(build_parser().parse_args(["demo", "--live-fps", "12"]))
    assert fixed.live_fps == 12.0


def test_engines_are_reused_but_never_shared_by_concurrent_renders(service):
    cfg = service.render_config(None)
    with service.animator(cfg) as a, service.animator(cfg) as b:
        assert a.engine is not b.engine  # two renders at once: two engines
        first = a.engine
    with service.animator(cfg) as c:
        assert c.engine in (first, b.engine)  # later renders reuse them (weights load once)
    assert len(service._engines[cfg.render]) == 2


def test_a_photo_avatar_has_no_base_footage_to_preview(service, portrait_path):
    rec = service.create_avatar(portrait_path, **CONSENT)
    assert service.base_preview(rec.avatar_id) is None  # the Talk tab hides the preview
