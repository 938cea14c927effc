"""Clone an avatar from a consented video: check consent, build the pack, record the avatar.

Consent for a video clone is one of
- *spoken*: the subject reads :func:`avatar.output.spoken_consent.consent_script` (statement +
  one-time code) in ``consent_video`` or at the start of the footage; words and face are checked;
- *attested*: an operator (``attested_by``) vouches for a written consent; recorded and shown in
  every output's labels;
- *research*: under ``AVATAR_CONSENT_POLICY=research``, without a statement; labelled as research.

Order of writes (so that a killed clone leaves nothing usable half-made): the pack is built in a
temp folder and renamed into place, then the evidence, then the avatar row; :func:`cleanup`
(run at every clone) removes what a killed clone left.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable

import numpy as np

from ..config import CloneConfig
from ..errors import ConsentError
from ..face.landmarks import Face, LandmarkDetector
from ..media.video import has_audio, probe_video, read_audio, read_frames
from ..output.consent import ConsentStore, Scope, new_avatar_id, resolve_policy
from .build import build_pack
from .store import load_pack, sha256_file, sweep

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CloneResult:
    avatar_id: str
    pack: Path
    basis: str
    keyframes: int
    evidence: dict
    revocation_token: str = ""  # shown once: the subject's own way to withdraw (only its hash is stored)
    subject: str = ""  # the person shown, as recorded


def cleanup(store: ConsentStore) -> list[Path]:
    """Remove temp pack folders of killed clones and packs that never got an avatar record."""
    return sweep(store.path, {r.avatar_id for r in store.list()})


def _sample_descriptors(video: Path, start: float, end: float | None, count: int = 8) -> list[np.ndarray]:
    """Face descriptors of up to ``count`` frames spread over [start, end) of ``video``."""
    from ..face.descriptor import face_descriptor

    info = probe_video(video)
    stop = min(end if end is not None else info.duration, info.duration)
    times = set(np.round(np.linspace(start, max(stop - 0.05, start), count), 2).tolist())
    out: list[np.ndarray] = []
    with LandmarkDetector(video=False, max_faces=2) as det, read_frames(video) as reader:
        pending = sorted(times)
        for frame in reader:
            if not pending:
                break
            if reader.time + 1e-3 < pending[0]:
                continue
            pending.pop(0)
            faces = det.detect(frame)
            if faces:
                out.append(face_descriptor(frame, faces[0]))
    return out


def _pack_descriptors(pack_dir: Path, after: float = 0.0, count: int = 8) -> list[np.ndarray]:
    """Descriptors of the pack's most frontal keyframes (those after ``after`` s when there are some)."""
    from ..face.descriptor import face_descriptor

    pack = load_pack(pack_dir, verify=False)
    times = np.array([k["time"] for k in pack.manifest["keyframes"]])
    ids = np.flatnonzero(times >= after) if (times >= after).any() else np.arange(len(times))
    yaw_pitch = np.abs(pack.features[ids, :2]).sum(1)
    ids = ids[np.argsort(yaw_pitch)][:count]
    return [face_descriptor(pack.keyframe_image(int(k)), Face(pack.landmarks[k])) for k in ids]


def clone_video(video: str | Path, *, subject: str, statement: str, store: ConsentStore | None = None,
                granted_by: str = "subject", scope: Scope = Scope(), expires: datetime | None = None,
                code: str | None = None, consent_video: str | Path | None = None, attested_by: str | None = None,
                policy: str | None = None, config: CloneConfig = CloneConfig(), owner: str | None = None,
                on_progress: Callable[[str, int], None] | None = None) -> CloneResult:
    """Clone ``video`` into a consented avatar with a pack; returns its id.

    Raises:
        ConsentError: no spoken statement, code or attestation where one is needed, or a check failed.
        InputError / NoFaceError: footage that cannot serve (too short, face too small or lost,
            several people, corrupt file).
    """
    from ..face.descriptor import face_descriptor
    from ..output import spoken_consent as sc

    video = Path(video)
    own_store = store is None
    store = store if store is not None else ConsentStore()
    try:
        cleanup(store)
        info = probe_video(video)  # corrupt / missing files fail here, before anything is written
        research = resolve_policy(policy) == "research"
        if attested_by is not None and not attested_by.strip():
            raise ConsentError("--attested-by needs the name of the operator who attests the consent")
        if attested_by:
            basis = "attested"
        elif code is None and consent_video is None and research:
            basis = "research"
        else:
            basis = "spoken"
        if not subject.strip() or not statement.strip():
            raise ConsentError('a video clone needs the subject\'s name and the consent statement (--subject, --consent)')
        spoken_from = Path(consent_video) if consent_video is not None else video
        if basis == "spoken":
            if code is None:
                raise ConsentError("a video clone needs the subject to read the consent statement with a one-time code: "
                                   "issue one with `avatar clone --new-code`, film the subject reading it, and pass "
                                   "--code; or record an operator's attestation with --attested-by NAME")
            sc.check_code(store, code)
            if not has_audio(spoken_from):
                raise ConsentError(f"{spoken_from} has no audio, so the spoken consent cannot be checked; pass a "
                                   "--consent-video with sound, or record an operator's attestation with --attested-by NAME")
        evidence: dict = {"footage_sha256": sha256_file(video), "footage": video.name,
                          "duration": info.duration, "policy": "research" if research else "consent"}
        span_end = 0.0
        if basis == "spoken":
            script = sc.consent_script(statement, code)
            audio = read_audio(spoken_from, 16000)
            check = sc.check_words(audio, script, whole=consent_video is not None, code_words=len(code.split()))
            n_code = len(code.split())
            # the code itself is kept only as a hash (redeem_code): its words are masked here
            words = check.words[:-n_code] + [(f"<code {i + 1}>", s) for i, (_, s) in enumerate(check.words[-n_code:])]
            evidence.update(script=sc.consent_script(statement, "<code>"), transcript=check.transcript, word_scores=words,
                            code_read=check.heard_code == " ".join(code.lower().split()),
                            consent_span=check.span, consent_media=spoken_from.name,
                            consent_media_sha256=sha256_file(spoken_from))
            sc.judge_words(check, statement, code)
            span_end = check.span[1] if consent_video is None else 0.0
        built = build_pack(video, store.path, config, on_progress=on_progress)
        avatar_id = new_avatar_id()
        with built.writer:
            pack_dir = built.writer.commit(avatar_id, dict(built.manifest, subject_basis=basis))
        try:
            if basis == "spoken":
                consent_faces = _sample_descriptors(spoken_from, 0.0, check.span[1] if consent_video is None else None)
                distance = sc.face_distance(consent_faces, _pack_descriptors(pack_dir, after=span_end))
                evidence["face_distance"] = round(distance, 4)
                sc.judge_face(distance, "the consent video" if consent_video is not None else "the consent part of the footage")
                evidence["code_hash"] = sc.redeem_code(store, code)
            evidence["pack_manifest_sha256"] = sha256_file(pack_dir / "manifest.json")
            store.record_evidence(avatar_id, basis, evidence, attested_by=attested_by.strip() if attested_by else None)
            face = Face(built.anchor_landmarks)
            ev_files = [video] + ([Path(consent_video)] if consent_video is not None else [])
            rec = store.clone(built.anchor_frame, source_sha256=evidence["footage_sha256"], subject=subject,
                              granted_by=granted_by, statement=statement, scope=scope, expires=expires, evidence=ev_files,
                              descriptor=face_descriptor(built.anchor_frame, face), avatar_id=avatar_id, owner=owner)
        except BaseException:
            from .store import delete_pack

            delete_pack(store.path, avatar_id)
            with store.transaction() as db:
                db.execute("DELETE FROM consent_evidence WHERE avatar_id=?", (avatar_id,))
            raise
        return CloneResult(avatar_id, pack_dir, basis, len(built.manifest["keyframes"]), evidence,
                           rec.revocation_token, rec.subject)
    finally:
        if own_store:
            store.close()

