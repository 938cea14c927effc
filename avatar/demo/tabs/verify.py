"""Verify tab: what `avatar verify` says about any uploaded file."""

import gradio as gr

from ..service import DemoService
from ..ui import refusing


def build(service: DemoService) -> None:
    gr.Markdown("Upload a video or image to see its provenance: container tags, the C2PA manifest and the "
                "invisible watermark, each checked separately.")
    with gr.Row():
        with gr.Column():
            upload = gr.File(label="File to verify", file_types=[".mp4", ".mov", ".m4v", ".png", ".jpg", ".jpeg",
                                                                 ".webp"])
            run = gr.Button("Verify", variant="primary")
        with gr.Column():
            report = gr.Textbox(label="Report", lines=14, interactive=False)
            facts = gr.JSON(label="Summary")

    run.click(refusing(service.verify), upload, [report, facts], api_name="verify", concurrency_id="verify",
              concurrency_limit=2)
