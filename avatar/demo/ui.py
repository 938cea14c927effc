"""Small UI helpers shared by the tabs: refusals as ``gr.Error``, avatar pickers."""

import functools
import logging
from collections.abc import Callable
from typing import Any

import gradio as gr

from ..errors import AvatarError

log = logging.getLogger(__name__)


def refusing(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn avatar errors into ``gr.Error`` (shown in the UI, raised in API clients).

    Anything else is a bug: it is logged with its traceback and reported in one line, so the
    page never shows a raw traceback.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except AvatarError as exc:
            raise gr.Error(str(exc), title=type(exc).__name__, print_exception=False) from None
        except Exception as exc:
            log.exception("demo handler %s failed", fn.__name__)
            raise gr.Error(f"unexpected {type(exc).__name__}: {exc}; see the server log",
                           title="Internal error", print_exception=False) from None

    return wrapper


def viewer_of(service: Any, request: gr.Request | None) -> Any:
    """The signed-in user of a Gradio request (UI or API) as the service's Viewer."""
    return service.viewer(getattr(request, "username", None) if request is not None else None)


def avatar_picker(label: str = "Avatar") -> gr.Dropdown:
    """A dropdown of avatar ids; filled on page load and when avatars change.

    ``allow_custom_value`` because API clients pass ids directly; the service checks them
    against the consent store, so an id is only ever a lookup key.
    """
    return gr.Dropdown(choices=[], value=None, label=label, allow_custom_value=True,
                       info="only avatars with a consent record; create one in the Clone tab")


def picker_update(choices: list[tuple[str, str]], current: str | None = None) -> dict:
    """Refresh a picker, keeping the current avatar when it is still offered."""
    ids = [v for _, v in choices]
    value = current if current in ids else (ids[0] if ids else None)
    return gr.update(choices=choices, value=value)
