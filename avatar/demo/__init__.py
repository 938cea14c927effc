"""The Gradio demo (``avatar demo``): clone with consent, animate, talk, live webcam, verify.

``build_demo`` / ``launch`` import gradio; :class:`DemoSettings` and :class:`DemoService`
(the UI-free logic) do not.
"""

from .settings import DemoSettings, available_engines

__all__ = ["DemoSettings", "available_engines", "build_demo", "close_demo", "launch"]


def __getattr__(name: str):
    if name in ("build_demo", "launch", "close_demo"):
        from . import app

        return getattr(app, name)
    raise AttributeError(name)
