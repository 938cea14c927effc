"""Live animation: a webcam (or a microphone) drives a consented portrait in real time.

``LiveAnimator`` turns one webcam frame into one labelled output frame (``process``), or
renders frames two at once on two cores while the next is tracked (``side_by_side``);
``run_live`` adds a capture thread that keeps only the newest frame, several sinks
(preview window, virtual camera, network stream, file), per-stage timing, latency
figures, periodic consent re-checks and a clean shutdown on Ctrl-C.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AudioFileMic",
    "CallbackSink",
    "Capture",
    "CapturedFrame",
    "FileCamera",
    "LiveAnimator",
    "LiveOptions",
    "LiveReport",
    "Microphone",
    "PreviewSink",
    "RecordSink",
    "Sink",
    "SinkError",
    "StreamSink",
    "VirtualCamSink",
    "open_camera",
    "run_live",
]

_WHERE = {
    "AudioFileMic": "capture", "Capture": "capture", "CapturedFrame": "capture", "FileCamera": "capture",
    "Microphone": "capture", "open_camera": "capture",
    "LiveAnimator": "session", "LiveOptions": "session",
    "LiveReport": "loop", "run_live": "loop",
    "CallbackSink": "sinks", "PreviewSink": "sinks", "RecordSink": "sinks", "Sink": "sinks", "SinkError": "sinks",
    "StreamSink": "sinks", "VirtualCamSink": "sinks",
}


def __getattr__(name: str) -> Any:  # lazy: importing avatar.live stays cheap
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
