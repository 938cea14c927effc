"""Talk tab: a consented avatar speaking uploaded audio or typed text (offline TTS)."""

from dataclasses import dataclass

import gradio as gr

from ...pipeline import Animator
from ..service import DemoService, tts_available
from ..ui import avatar_picker, refusing, viewer_of


@dataclass
class TalkTab:
    picker: gr.Dropdown


def build(service: DemoService) -> TalkTab:
    s = service.settings
    tts = tts_available()
    ready = hasattr(Animator, "talk")
    note = "" if ready else " **Talking is not part of this build yet (Animator.talk is missing).**"
    gr.Markdown(f"Choose an avatar, then upload speech (up to {s.max_seconds:g} s) "
                + ("or type text to speak (offline espeak-ng voice)." if tts else
                   "(typed text needs espeak-ng, which is not installed here).") + note)
    with gr.Row():
        with gr.Column():
            picker = avatar_picker()
            audio = gr.Audio(type="filepath", sources=["upload", "microphone"], label="Speech")
            text = gr.Textbox(label="…or text to speak", lines=3, interactive=tts,
                              placeholder="Hello! I am a consented avatar." if tts else "espeak-ng is not installed")
            transcript = gr.Textbox(label="Transcript of the audio (optional, improves the mouth shapes)", lines=2)
            run = gr.Button("Talk", variant="primary", interactive=ready)
        with gr.Column():
            base = gr.Video(label="Base footage: a video avatar talks over the person's own clip (first seconds)",
                            interactive=False, height=240, visible=False, elem_id="talk-base")
            video = gr.Video(label="Result (with audio)", interactive=False, height=360)
            summary = gr.JSON(label="Provenance")

    @refusing
    def on_pick(avatar_id, request: gr.Request):
        if not avatar_id:
            return gr.update(value=None, visible=False)
        path = service.base_preview(avatar_id, viewer=viewer_of(service, request))
        return gr.update(value=None if path is None else str(path), visible=path is not None)

    picker.change(on_pick, [picker], [base], api_visibility="private", show_progress="hidden")

    @refusing
    def on_run(avatar_id, audio_, text_, transcript_, request: gr.Request,
               progress=gr.Progress(track_tqdm=True)):  # noqa: B008
        progress(0, desc="checking consent and the audio")
        out = service.talk(avatar_id, audio_, text_, transcript_, viewer=viewer_of(service, request))
        return str(out.path), out.summary

    run.click(on_run, [picker, audio, text, transcript], [video, summary], api_name="talk", concurrency_id="render")
    return TalkTab(picker)
