"""The Gradio app: ``build_demo(settings) -> gr.Blocks`` and ``launch(...)``.

Tabs: Clone (portrait → faces, crop, consent; list / inspect / revoke), Animate (driving
video), Talk (audio or text), Live (webcam) and Verify (provenance of any file). All renders
share one queue slot pool (``concurrency``); uploads are capped by ``launch(max_file_size=)``
and probed for duration before any work.
"""

import atexit
import logging
import os
from collections.abc import Sequence
from typing import Any

import gradio as gr

from ..config import AvatarConfig
from ..errors import ConfigError
from .live import LiveSessions
from .service import DemoService
from .settings import AuthCallback, Credentials, DemoSettings, check_exposure
from .tabs import animate, clone, live, talk, verify
from .ui import picker_update, viewer_of

log = logging.getLogger(__name__)

TITLE = "avatar: consented portrait animation"
CSS = ".avatar-note {font-size: 0.9em; opacity: 0.8}"


def build_demo(settings: DemoSettings | AvatarConfig | None = None, **overrides: Any) -> gr.Blocks:
    """Build the app (not launched).

    Args:
        settings: DemoSettings, or just an AvatarConfig (other settings default).
        overrides: DemoSettings fields, e.g. ``max_seconds=10``.
    Returns:
        the Blocks, with ``demo.service`` (DemoService) and ``demo.settings`` attached; the
        queue is configured.
    """
    import dataclasses

    if settings is None:
        settings = DemoSettings()
    elif isinstance(settings, AvatarConfig):
        settings = DemoSettings(config=settings)
    if overrides:
        settings = dataclasses.replace(settings, **overrides)
    service = DemoService(settings)
    sessions = LiveSessions(service)
    age = 60 * settings.cache_minutes
    with gr.Blocks(title=TITLE, delete_cache=(max(60, age // 4), age)) as demo:
        gr.Markdown(f"# {TITLE}\nEvery avatar needs a recorded consent; every output is labelled as AI-generated "
                    "(metadata, C2PA manifest, invisible watermark).")
        with gr.Tabs():
            with gr.Tab("Clone", id="clone", elem_id="tab-clone"):
                c = clone.build(service)
            with gr.Tab("Animate", id="animate", elem_id="tab-animate") as anim_tab:
                a = animate.build(service)
            with gr.Tab("Talk", id="talk", elem_id="tab-talk") as talk_tab:
                t = talk.build(service)
            with gr.Tab("Live", id="live", elem_id="tab-live") as live_tab:
                lv = live.build(service, sessions)
            with gr.Tab("Verify", id="verify", elem_id="tab-verify"):
                verify.build(service)

        # Pickers list the active avatars whose consent covers the tab's use.
        for tab, picker, use in ((anim_tab, a.picker, "video"), (talk_tab, t.picker, "audio"),
                                 (live_tab, lv.picker, "live")):
            def on_select(cur, request: gr.Request, _u=use):
                return picker_update(service.avatar_choices(_u, viewer_of(service, request)), cur)

            tab.select(on_select, picker, picker, api_visibility="private", show_progress="hidden")

        def on_load(request: gr.Request):
            viewer = viewer_of(service, request)
            rows = service.avatar_rows(viewer)
            return (rows, picker_update([(f"{r[1]} ({r[0]}, {r[4]})", r[0]) for r in rows]),
                    *(picker_update(service.avatar_choices(u, viewer)) for u in ("video", "audio", "live")))

        demo.load(on_load, None, [c.table, c.picker, a.picker, t.picker, lv.picker], api_visibility="private",
                  show_progress="hidden")
        # A new avatar becomes the current one everywhere it may be used.
        c.created.change(lambda aid: [gr.update(value=aid or None) if aid else gr.update()] * 3, c.created,
                         [a.picker, t.picker, lv.picker], api_visibility="private", show_progress="hidden")

        def on_unload(request: gr.Request):
            sessions.stop(request.session_hash or "anon")

        demo.unload(on_unload)
    demo.queue(max_size=settings.queue_size, default_concurrency_limit=settings.concurrency)
    demo.service = service  # type: ignore[attr-defined]
    demo.settings = settings  # type: ignore[attr-defined]
    demo.sessions = sessions  # type: ignore[attr-defined]
    return demo


def close_demo(demo: gr.Blocks) -> None:
    """Stop the server, end live sessions and remove the temp folder."""
    try:
        demo.close()
    finally:
        getattr(demo, "sessions", None) and demo.sessions.close_all()
        getattr(demo, "service", None) and demo.service.close()


def launch(settings: DemoSettings | AvatarConfig | None = None, *, host: str = "127.0.0.1", port: int | None = None,
           share: bool = False, block: bool = True, quiet: bool = False,
           auth: Credentials | AuthCallback | None = None, admins: Sequence[str] = (), insecure_no_auth: bool = False,
           **overrides: Any) -> gr.Blocks:
    """Build and serve the demo on ``host:port`` (a free port from 7860 when None).

    ``auth``: [(user, password), …] or a callback ``(user, password) -> bool`` (Gradio's ``auth``);
    with it every visitor signs in and sees only the avatars they created (``admins`` see all).
    Served beyond loopback (or ``share``), auth is required unless ``insecure_no_auth``.
    block=False returns at once (the server runs in a thread; stop it with :func:`close_demo`).

    Raises:
        ConfigError: exposed without auth, or ``admins`` without auth.
    """
    check_exposure(host, share, auth, insecure_no_auth)
    if admins and not auth:
        raise ConfigError("--admin needs sign-in (--auth or --auth-file): without it there are no users")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    if auth:
        overrides = {**overrides, "sign_in": True, "admins": frozenset(admins)}
    demo = build_demo(settings, **overrides)
    s = demo.settings
    atexit.register(demo.service.close)
    demo.launch(server_name=host, server_port=port, share=share, prevent_thread_lock=not block, quiet=quiet,
                max_file_size=s.max_upload_bytes, show_error=True, footer_links=["api", "settings"], css=CSS,
                auth=auth or None, auth_message="Sign in: you will see and use only the avatars you create.")
    return demo
