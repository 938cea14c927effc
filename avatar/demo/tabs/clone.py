"""Clone tab: upload a portrait (or a consented video), see the faces and the crop, record consent; list,
inspect, revoke."""

from dataclasses import dataclass

import gradio as gr

from ...errors import ConsentError
from ...output.consent import GRANTORS, USES
from ..service import DemoService
from ..ui import picker_update, refusing, viewer_of

STATEMENT_HINT = ("e.g. “I, NAME, agree that this photo of me may be animated by avatar for the uses ticked below "
                  "until the expiry date, and know I can withdraw this consent at any time.”")


@dataclass
class CloneTab:
    portrait: gr.Image
    crop_scale: gr.Slider
    face: gr.Dropdown
    table: gr.Dataframe
    picker: gr.Dropdown
    created: gr.Textbox
    token: gr.Textbox


def build(service: DemoService) -> CloneTab:
    default_scale = service.config.face.crop_scale
    gr.Markdown("Upload a portrait, check the face and the crop that will be animated, then record the consent of "
                "the person shown. Nothing can be animated without a consent record.")
    with gr.Row():
        with gr.Column():
            portrait = gr.Image(type="filepath", sources=["upload"], label="Portrait", height=320, elem_id="portrait")
            crop_scale = gr.Slider(1.0, 4.0, value=default_scale, step=0.1, label="Crop scale",
                                   info="crop side / face size; below ~1.8 the crop cuts hair and chin")
            face = gr.Dropdown(choices=[("face 0 (largest)", 0)], value=0, label="Face", visible=False,
                               info="several faces found: pick the one to animate")
        with gr.Column():
            faces_img = gr.Image(label="Detected faces (numbered) and the crop square", interactive=False, height=320)
            crop_img = gr.Image(label="Crop that will be animated", interactive=False, height=256, width=256,
                                elem_id="crop-preview")
    with gr.Group():
        gr.Markdown("### Consent")
        with gr.Row():
            subject = gr.Textbox(label="Subject (the person shown)", placeholder="full name or pseudonym")
            granted_by = gr.Dropdown(choices=list(GRANTORS), value="subject", label="Consent granted by")
            expires = gr.Textbox(label="Expires (YYYY-MM-DD, optional)", placeholder="empty = no expiry")
        statement = gr.Textbox(label="Consent statement the grantor agreed to", lines=3, placeholder=STATEMENT_HINT)
        with gr.Row():
            scopes = gr.CheckboxGroup(choices=list(USES), value=list(USES), label="Scope",
                                      info="video = driving video, audio = speech, live = webcam")
            commercial = gr.Checkbox(label="Commercial use allowed", value=False)
            confirmed = gr.Checkbox(label="I confirm the grantor agreed to this statement", value=False)
        create = gr.Button("Create avatar", variant="primary")
        with gr.Row():
            created = gr.Textbox(label="Created avatar id", interactive=False, elem_id="created-id")
            token = gr.Textbox(label="Revocation token (shown once: give it to the subject, who can withdraw "
                                     "consent with it at any time)", interactive=False, elem_id="revocation-token",
                               buttons=["copy"])
    with gr.Accordion("Video avatar: clone from a consented video", open=False):
        gr.Markdown("A video of the person talking gives the avatar their real teeth, mouth shapes and poses. "
                    "Fill in the consent form above, get a one-time code, then upload or record a video (10 s or "
                    "more) that **starts with the person reading the statement and the code aloud**. Or, instead "
                    "of the spoken consent, an operator attests a written one.")
        with gr.Row():
            get_code = gr.Button("Get a one-time code", scale=1)
            code = gr.Textbox(label="One-time code", scale=2, elem_id="consent-code")
        script = gr.Markdown(elem_id="consent-script")
        video = gr.Video(sources=["upload", "webcam"], label="Video of the person (reading the statement first)",
                         height=320, elem_id="clone-video")
        attested_by = gr.Textbox(label="Attested by (operator's name, instead of the spoken consent)",
                                 placeholder="empty = spoken consent")
        create_video = gr.Button("Create video avatar", variant="primary")

    gr.Markdown("### Avatars")
    table = gr.Dataframe(headers=["avatar", "subject", "granted by", "scope", "status", "expires", "created by"],
                         datatype=["str"] * 7, interactive=False, wrap=True, label="Avatars",
                         elem_id="avatars-table")
    with gr.Row():
        picker = gr.Dropdown(choices=[], value=None, label="Avatar", allow_custom_value=True, scale=2)
        show = gr.Button("Inspect", scale=1)
        refresh = gr.Button("Refresh list", scale=1)
    record = gr.Markdown(label="Consent record")
    with gr.Row():
        reason = gr.Textbox(label="Reason for revoking", scale=3)
        revoke = gr.Button("Revoke consent", variant="stop", scale=1)
    with gr.Row():
        revoke_token = gr.Textbox(label="Revocation token (the subject's own way to withdraw, for an avatar you "
                                        "did not create)", scale=3, type="password")
        revoke_by_token = gr.Button("Revoke with token", variant="stop", scale=1)

    @refusing
    def on_portrait(path, scale):
        if not path:
            return None, None, gr.update(visible=False, choices=[("face 0 (largest)", 0)], value=0)
        shown, crop, n = service.preview(path, scale, 0)
        choices = [(f"face {i}" + (" (largest)" if i == 0 else ""), i) for i in range(n)]
        if n > 1:
            gr.Info(f"{n} faces found; choose the one to animate")
        return shown, crop, gr.update(visible=n > 1, choices=choices, value=0)

    @refusing
    def on_adjust(path, scale, index):
        if not path:
            return None, None
        shown, crop, _ = service.preview(path, scale, index or 0)
        return shown, crop

    def listing(current=None, request: gr.Request = None):
        rows = service.avatar_rows(viewer_of(service, request))
        return rows, picker_update([(f"{r[1]} ({r[0]}, {r[4]})", r[0]) for r in rows], current)

    @refusing
    def on_create(path, index, scale, subj, grantor, stmt, scope, comm, exp, ok, request: gr.Request):
        rec = service.create_avatar(path, subject=subj, granted_by=grantor, statement=stmt, scopes=scope,
                                    commercial=comm, expires=exp, confirmed=ok, face_index=index, crop_scale=scale,
                                    viewer=viewer_of(service, request))
        gr.Info(f"avatar {rec.avatar_id} created for {rec.subject}")
        rows, pick = listing(rec.avatar_id, request)
        return rec.avatar_id, rows, pick, rec.revocation_token

    @refusing
    def on_code(stmt):
        new, text = service.new_consent_code(stmt)
        return new, f"**The person reads this on camera** (the code works once, for 24 h):\n\n> {text}"

    @refusing
    def on_create_video(path, subj, grantor, stmt, scope, comm, exp, ok, code_text, attester, request: gr.Request):
        res = service.create_video_avatar(path, subject=subj, granted_by=grantor, statement=stmt, scopes=scope,
                                          commercial=comm, expires=exp, confirmed=ok, code=code_text,
                                          attested_by=attester, viewer=viewer_of(service, request))
        gr.Info(f"video avatar {res.avatar_id} created: {res.keyframes} keyframes, consent {res.basis}")
        rows, pick = listing(res.avatar_id, request)
        return res.avatar_id, rows, pick, res.revocation_token

    @refusing
    def on_revoke(avatar_id, why, request: gr.Request):
        return revoked(avatar_id, why, None, request)

    @refusing
    def on_revoke_by_token(avatar_id, why, token, request: gr.Request):
        if not (token or "").strip():
            raise ConsentError("enter the revocation token that was shown when the avatar was created")
        return revoked(avatar_id, why or "withdrawn with the revocation token", token, request)

    def revoked(avatar_id, why, token, request):
        viewer = viewer_of(service, request)
        rec = service.revoke(avatar_id, why, viewer=viewer, token=token)
        gr.Info(f"consent for {rec.avatar_id} revoked")
        rows, pick = listing(avatar_id, request)
        shown = service.describe(avatar_id, viewer) if viewer.sees(rec) else f"consent for `{rec.avatar_id}` revoked"
        return rows, pick, shown

    @refusing
    def on_inspect(avatar_id, request: gr.Request):
        return service.describe(avatar_id, viewer_of(service, request))

    portrait.change(on_portrait, [portrait, crop_scale], [faces_img, crop_img, face], api_name="detect_faces",
                    concurrency_id="preview", concurrency_limit=2)
    for ctl in (crop_scale, face):
        ctl.change(on_adjust, [portrait, crop_scale, face], [faces_img, crop_img], api_visibility="private",
                   concurrency_id="preview", trigger_mode="always_last", show_progress="hidden")
    create.click(on_create, [portrait, face, crop_scale, subject, granted_by, statement, scopes, commercial, expires,
                             confirmed], [created, table, picker, token], api_name="create_avatar")
    show.click(on_inspect, picker, record, api_name="inspect_avatar")
    refresh.click(refusing(listing), picker, [table, picker], api_name="list_avatars")
    get_code.click(on_code, statement, [code, script], api_name="new_consent_code")
    create_video.click(on_create_video, [video, subject, granted_by, statement, scopes, commercial, expires, confirmed,
                                         code, attested_by], [created, table, picker, token], api_name="create_video_avatar")
    revoke.click(on_revoke, [picker, reason], [table, picker, record], api_name="revoke_avatar")
    revoke_by_token.click(on_revoke_by_token, [picker, reason, revoke_token], [table, picker, record],
                          api_name="revoke_with_token")
    return CloneTab(portrait, crop_scale, face, table, picker, created, token)
