"""Live tab: the browser webcam (Gradio streaming image) drives the chosen avatar."""

from dataclasses import dataclass

import gradio as gr

from ..live import LiveSessions, format_stats
from ..service import DemoService
from ..ui import avatar_picker, refusing, viewer_of


@dataclass
class LiveTab:
    picker: gr.Dropdown


def build(service: DemoService, sessions: LiveSessions) -> LiveTab:
    s = service.settings
    gr.Markdown(f"Choose an avatar with live consent, allow the webcam and press Record. Frames are sent "
                f"{s.live_fps:g} times a second (the rate this machine sustained when the demo started); "
                "the achieved rate is shown under the avatar. "
                "Every output frame carries the visible 'AI-generated' badge and the invisible watermark.")
    with gr.Row():
        with gr.Column():
            picker = avatar_picker()
            cam = gr.Image(sources=["webcam"], streaming=True, type="numpy", label="Webcam", height=320)
            recapture = gr.Button("Recapture neutral pose", size="sm")
        with gr.Column():
            out = gr.Image(label="Avatar", interactive=False, height=320)
            stats = gr.Markdown("waiting for the webcam…")

    @refusing
    def on_frame(avatar_id, frame, request: gr.Request):
        img, st = sessions.process(request.session_hash or "anon", avatar_id, frame, viewer_of(service, request))
        return img, format_stats(st)

    def on_recapture(request: gr.Request):
        if sessions.recapture(request.session_hash or "anon"):
            gr.Info("the next frame with a face becomes the neutral pose")

    def on_pick(request: gr.Request):
        sessions.stop(request.session_hash or "anon")

    cam.stream(on_frame, [picker, cam], [out, stats], stream_every=1.0 / s.live_fps, time_limit=s.live_seconds,
               concurrency_limit=max(2, s.concurrency), concurrency_id="live", api_visibility="private",
               show_progress="hidden")
    recapture.click(on_recapture, None, None, api_visibility="private")
    picker.change(on_pick, None, None, api_visibility="private")
    return LiveTab(picker)
