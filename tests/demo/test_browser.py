"""The demo in a real headless browser (Debian chromium driven by Playwright, no browser download).

Uploads a portrait through the UI, completes the consent form, runs an animation, drives the
Live tab from a fake webcam, verifies the result, and saves a screenshot of each tab to
``tmp_path`` (and to ``$AVATAR_DEMO_SCREENSHOTS`` when set: ``python demos/screenshots.py``
writes docs/img/ that way).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.browser

TABS = ("clone", "animate", "talk", "live", "verify")
TIMEOUT_MS = 60_000


def write_y4m(path: Path, frames: list[np.ndarray], fps: int = 10) -> Path:
    """A raw YUV4MPEG2 (I420) file, Chromium's fake-camera format, from (H, W, 3) uint8 RGB frames."""
    import cv2

    h, w = frames[0].shape[:2]
    with open(path, "wb") as fh:
        fh.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        fh.writelines(b"FRAME\n" + cv2.cvtColor(f, cv2.COLOR_RGB2YUV_I420).tobytes() for f in frames)
    return path


@pytest.fixture(scope="module")
def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("no system chromium on PATH (apt-get install chromium); the browser test needs it")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    return exe


@pytest.fixture(scope="module")
def fake_camera(tmp_path_factory) -> Path:
    from avatar.examples import synthetic_driving

    frames = synthetic_driving(frames=30, size=256)
    return write_y4m(tmp_path_factory.mktemp("cam") / "cam.y4m", frames + frames[::-1])


def _shoot(page, name: str, tmp_path: Path) -> Path:
    out = tmp_path / f"demo-{name}.png"
    page.screenshot(path=str(out), full_page=True, style=".toast-wrap {display: none !important}")
    extra = os.environ.get("AVATAR_DEMO_SCREENSHOTS")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out, Path(extra) / out.name)
    return out


def test_browser_clone_animate_live_verify(served, chromium, fake_camera, portrait_path, driving_clip, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)

    from avatar.demo.service import tts_available

    demo, url = served
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--disable-dev-shm-usage", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={fake_camera}"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(TIMEOUT_MS)
            # not "networkidle": the queue keeps a server-sent-events connection open
            page.goto(url, wait_until="domcontentloaded")
            create = page.get_by_role("button", name="Create avatar")
            create.wait_for()

            # Clone: upload, see the crop, fill the consent form, create.
            page.locator("input[type=file]").first.set_input_files(str(portrait_path))
            expect(page.locator("#crop-preview img")).to_be_visible()
            create.click()  # incomplete form → refused
            expect(page.get_by_text("the consent form is incomplete").first).to_be_visible()
            page.get_by_label("Subject (the person shown)").fill("Eileen Collins")
            page.get_by_label("Consent statement the grantor agreed to").fill("I agree to be animated in this demo.")
            page.get_by_label("I confirm the grantor agreed to this statement").check()
            create.click()
            created = page.locator("#created-id textarea, #created-id input").first
            expect(created).to_have_value(re.compile(r"^av_[0-9a-f]{12}$"))
            avatar_id = created.input_value()
            expect(page.locator("#avatars-table")).to_contain_text(avatar_id)
            _shoot(page, "clone", tmp_path)

            # Animate: the new avatar is preselected; upload a driving clip and run.
            page.get_by_role("tab", name="Animate").click()
            panel = page.locator("#tab-animate")
            panel.locator("input[type=file]").first.set_input_files(str(driving_clip))
            panel.get_by_role("button", name="Animate").click()
            expect(panel.get_by_text(avatar_id).first).to_be_visible()
            expect(panel.get_by_text("consent_id").first).to_be_visible()
            expect(panel.locator("video")).to_have_count(2)
            _shoot(page, "animate", tmp_path)

            page.get_by_role("tab", name="Talk").click()
            talk = page.locator("#tab-talk")
            expect(talk.get_by_role("button", name="Talk")).to_be_visible()
            if tts_available():  # typed text → offline voice → a talking result
                talk.get_by_label("…or text to speak").fill("Hello, I am a consented avatar.")
                talk.get_by_role("button", name="Talk").click()
                expect(talk.get_by_text("consent_id").first).to_be_visible()
            _shoot(page, "talk", tmp_path)

            # Live: the fake camera drives the avatar; the achieved fps is shown.
            page.get_by_role("tab", name="Live").click()
            live = page.locator("#tab-live")
            live.get_by_text("Click to Access Webcam").click()
            live.get_by_role("button", name="capture photo").click()  # the "Record" button: starts streaming
            expect(live.get_by_text("fps achieved")).to_be_visible()
            # frames keep streaming (not a single call): the counter passes 10
            expect(live).to_contain_text(re.compile(r"\b\d{2,} frames"))
            _shoot(page, "live", tmp_path)

            # Verify: the rendered file (from the server's output folder) is reported as labelled.
            page.get_by_role("tab", name="Verify").click()
            result = next(demo.service.workdir.glob("animate-*.mp4"))
            verify = page.locator("#tab-verify")
            verify.locator("input[type=file]").first.set_input_files(str(result))
            verify.get_by_role("button", name="Verify").click()
            expect(verify.get_by_label("Report")).to_have_value(re.compile(r"verdict: labelled as AI-generated"))
            _shoot(page, "verify", tmp_path)
        finally:
            browser.close()
    assert all((tmp_path / f"demo-{t}.png").stat().st_size > 10_000 for t in TABS)


def _moving_face_clip(path: Path, seconds: float = 11.25, fps: float = 8.0) -> Path:
    """The bundled portrait's head, gently turning and swaying (one face, large enough to clone), silent."""
    import cv2

    from avatar.examples import example_portrait
    from avatar.media.video import VideoWriter

    head = cv2.resize(example_portrait()[0:256, 98:354], (256, 256), interpolation=cv2.INTER_AREA)
    with VideoWriter(path, fps) as w:
        for i in range(int(seconds * fps)):
            m = cv2.getRotationMatrix2D((128, 128), 4 * np.sin(i / 7), 1.0 + 0.03 * np.sin(i / 5))
            m[:, 2] += (3 * np.sin(i / 9), 2 * np.cos(i / 6))
            w.write(cv2.warpAffine(head, m, (256, 256), borderMode=cv2.BORDER_REFLECT))
    return path


def test_browser_video_avatar_section(served, chromium, tmp_path):
    """The Clone tab's video section: a one-time code and its script, an uploaded clip with an
    operator's attestation, a video avatar created and listed."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    clip = _moving_face_clip(tmp_path / "talking.mp4")
    demo, url = served
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(url, wait_until="domcontentloaded")
            page.get_by_role("button", name="Create avatar").wait_for()
            page.get_by_text("Video avatar: clone from a consented video").click()  # open the section
            page.get_by_label("Subject (the person shown)").fill("Vera Video")
            page.get_by_label("Consent statement the grantor agreed to").fill("I agree to be cloned from my video.")
            page.get_by_label("I confirm the grantor agreed to this statement").check()
            page.get_by_role("button", name="Get a one-time code").click()
            code = page.locator("#consent-code textarea, #consent-code input").first
            expect(code).to_have_value(re.compile(r"^\S+ \S+ \S+ \S+$"))
            expect(page.locator("#consent-script")).to_contain_text(f"My code is {code.input_value()}")
            page.locator("#clone-video input[type=file]").first.set_input_files(str(clip))
            page.get_by_label("Attested by (operator's name, instead of the spoken consent)").fill("Operator Olga")
            page.get_by_role("button", name="Create video avatar").click()
            created = page.locator("#created-id textarea, #created-id input").first
            expect(created).to_have_value(re.compile(r"^av_[0-9a-f]{12}$"), timeout=3 * TIMEOUT_MS)
            avatar_id = created.input_value()
            expect(page.locator("#avatars-table")).to_contain_text(avatar_id)
            _shoot(page, "clone-video", tmp_path)
            # the Talk tab offers it and previews its base footage
            page.get_by_role("tab", name="Talk").click()
            talk = page.locator("#tab-talk")
            talk.get_by_role("combobox", name="Avatar").click()
            page.get_by_role("option", name=re.compile(avatar_id)).click()
            expect(talk.locator("#talk-base video")).to_be_visible()
            _shoot(page, "talk-video-avatar", tmp_path)
        finally:
            browser.close()
    assert demo.service.store.pack_dir(avatar_id) is not None  # rendered from its own frames from now on
