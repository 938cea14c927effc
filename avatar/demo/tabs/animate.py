"""Animate tab: a consented avatar moved by an uploaded driving video."""

from dataclasses import dataclass

import gradio as gr

from ..service import DemoService
from ..settings import available_engines
from ..ui import avatar_picker, refusing, viewer_of


@dataclass
class AnimateTab:
    picker: gr.Dropdown
    crop_scale: gr.Slider


def build(service: DemoService) -> AnimateTab:
    cfg = service.config
    engines = available_engines(cfg)
    s = service.settings
    gr.Markdown(f"Choose an avatar and upload a driving video (up to {s.max_seconds:g} s, {s.max_upload_mb:g} MB) "
                "whose face moves, talks and blinks. The result is labelled as AI-generated.")
    with gr.Row():
        with gr.Column():
            picker = avatar_picker()
            driving = gr.Video(sources=["upload"], label="Driving video", height=280)
            with gr.Accordion("Options", open=True):
                mode = gr.Radio(["relative", "absolute"], value=cfg.motion.mode, label="Motion",
                                info="relative keeps the portrait's face shape; absolute copies the driver's")
                best = gr.Checkbox(value=cfg.motion.best_frame, label="Best frame",
                                   info="start from the driving frame that looks most like the portrait")
                crop_scale = gr.Slider(1.0, 4.0, value=cfg.face.crop_scale, step=0.1, label="Crop scale")
                smoothing = gr.Slider(0.0, 3.0, value=1.0, step=0.1, label="Smoothing",
                                      info="0 = off, 1 = default, more = steadier but laggier")
                engine = gr.Dropdown(engines, value=engines[0], label="Engine",
                                     info="fomm / onnx appear when their weights are configured")
            run = gr.Button("Animate", variant="primary")
        with gr.Column():
            video = gr.Video(label="Result", interactive=False, height=360)
            summary = gr.JSON(label="Provenance")

    @refusing
    def on_run(avatar_id, drv, mode_, best_, scale, smooth, engine_, request: gr.Request,
               progress=gr.Progress(track_tqdm=True)):  # noqa: B008
        progress(0, desc="checking consent and the driving video")
        out = service.animate(avatar_id, drv, mode=mode_, best_frame=best_, crop_scale=scale, smoothing=smooth,
                              engine=engine_, progress=True, viewer=viewer_of(service, request))
        return str(out.path), out.summary

    def on_pick(avatar_id):
        return service.prefs(avatar_id).crop_scale

    picker.change(on_pick, picker, crop_scale, api_visibility="private", show_progress="hidden")
    run.click(on_run, [picker, driving, mode, best, crop_scale, smoothing, engine], [video, summary],
              api_name="animate", concurrency_id="render")
    return AnimateTab(picker, crop_scale)
