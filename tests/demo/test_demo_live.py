"""The Live tab's per-frame function (gradio_client cannot call a streaming endpoint)."""

from __future__ import annotations

import numpy as np
import pytest
from demo_helpers import CONSENT

from avatar.errors import ConsentError


@pytest.fixture(scope="module")
def webcam_frames():
    from avatar.examples import synthetic_driving

    return synthetic_driving(frames=6, size=256)


def test_frames_drive_the_avatar_and_report_fps(service, portrait_path, webcam_frames):
    from avatar.demo.live import LiveSessions, format_stats

    rec = service.create_avatar(portrait_path, **CONSENT)
    sessions = LiveSessions(service)
    try:
        assert sessions.process("tab1", rec.avatar_id, None) == (None, {})
        outs = [sessions.process("tab1", rec.avatar_id, f) for f in webcam_frames]
        img, stats = outs[-1]
        assert img.dtype == np.uint8 and img.shape == (256, 256, 3)
        assert stats["frames"] == len(webcam_frames) and stats["fps"] > 0
        assert "fps achieved" in format_stats(stats)
        # the avatar moves with the driver: outputs differ between frames
        assert np.abs(outs[0][0].astype(int) - outs[3][0].astype(int)).mean() > 0.2
        assert sessions.recapture("tab1") and not sessions.recapture("other-tab")
    finally:
        sessions.close_all()


def test_live_needs_live_consent_and_stops_on_revocation(service, portrait_path, webcam_frames, monkeypatch):
    from avatar.demo import live

    no_live = service.create_avatar(portrait_path, **{**CONSENT, "scopes": ["video"]})
    sessions = live.LiveSessions(service)
    try:
        with pytest.raises(ConsentError, match="live"):
            sessions.process("tab", no_live.avatar_id, webcam_frames[0])
        rec = service.create_avatar(portrait_path, **CONSENT)
        sessions.process("tab", rec.avatar_id, webcam_frames[0])
        service.revoke(rec.avatar_id, "withdrawn during the session")
        monkeypatch.setattr(live, "RECHECK_S", 0.0)
        with pytest.raises(ConsentError, match="revoked"):
            sessions.process("tab", rec.avatar_id, webcam_frames[1])
    finally:
        sessions.close_all()
