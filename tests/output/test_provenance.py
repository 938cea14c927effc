from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from avatar.output import watermark as wm
from avatar.output.consent import ConsentGrant, Scope
from avatar.output.provenance import add_visible_label, provenance_metadata, sign_c2pa
from avatar.output.verify import format_report, verify

GRANT = ConsentGrant("av_test", "0b7c1e1e-2f6a-4c77-9a55-3f1f3c3f3c3f", "Eileen", Scope(live=False), None, "consent")


def write_mp4(path: Path, frames, metadata: dict[str, str]) -> None:
    """Stand-in for the pipeline's VideoWriter: encode, tag, then the finalize hook signs."""
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w", options={"movflags": "+use_metadata_tags"}) as c:
        c.metadata.update(metadata)
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


@pytest.fixture
def signed_mp4(tmp_path, portrait):
    base = cv2.resize(portrait, (256, 256), interpolation=cv2.INTER_AREA)
    frames = [wm.embed(base, GRANT.payload32()) for _ in range(12)]
    path = tmp_path / "out.mp4"
    write_mp4(path, frames, provenance_metadata(GRANT))
    sign_c2pa(path, GRANT)
    return path


def test_mp4_all_three_layers(signed_mp4):
    r = verify(signed_mp4)
    print(format_report(r))
    assert r.metadata.get("ai_generated") == "true" and r.metadata.get("consent_id") == GRANT.consent_id
    assert r.c2pa_state == "Valid" and r.c2pa_trusted_state == "Trusted" and not r.c2pa_errors
    assert r.c2pa_consent["consent_id"] == GRANT.consent_id and r.c2pa_consent["scope"]["live"] is False
    assert r.watermark_payload == GRANT.payload32() and r.watermark_matches_c2pa


def test_mp4_tamper_detected(signed_mp4):
    data = bytearray(signed_mp4.read_bytes())
    i = data.find(b"mdat")
    data[i + 400] ^= 0x01
    signed_mp4.write_bytes(bytes(data))
    r = verify(signed_mp4)
    assert r.c2pa_state == "Invalid" and any("mismatch" in e for e in r.c2pa_errors)
    assert "modified after signing" in format_report(r)


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_still_signed_and_tamper(tmp_path, portrait, suffix):
    path = tmp_path / f"still{suffix}"
    img = add_visible_label(wm.embed(portrait, GRANT.payload32()))
    cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    sign_c2pa(path, GRANT)
    r = verify(path)
    assert r.c2pa_state == "Valid" and r.c2pa_trusted_state == "Trusted"
    assert r.watermark_payload == GRANT.payload32()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01     # inside the image data, not the manifest
    path.write_bytes(bytes(data))
    assert verify(path).c2pa_state == "Invalid"


def test_unsigned_file_reports_absent(tmp_path, portrait):
    path = tmp_path / "plain.png"
    cv2.imwrite(str(path), cv2.cvtColor(portrait, cv2.COLOR_RGB2BGR))
    r = verify(path)
    assert r.c2pa_state == "absent" and r.watermark_payload is None and not r.labelled_ai


def test_visible_label_changes_only_a_corner(portrait):
    out = add_visible_label(portrait)
    diff = np.abs(out.astype(int) - portrait).sum(axis=2) > 0
    ys, xs = np.nonzero(diff)
    assert diff.any() and ys.min() > portrait.shape[0] // 2 and xs.min() > portrait.shape[1] // 2


def test_cli_verify_exit_codes(signed_mp4, capsys):
    from avatar.cli import main

    assert main(["verify", str(signed_mp4)]) == 0
    assert "Trusted" in capsys.readouterr().out
