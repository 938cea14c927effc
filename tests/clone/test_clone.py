"""Video clones: spoken consent (words, code, face), the pack on disk, killed clones, bad footage."""

from __future__ import annotations

import json
import os
import runpy
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from avatar.errors import ConsentError, InputError, NoFaceError
from avatar.output import spoken_consent as sc
from avatar.output.consent import ConsentStore, check_consent
from avatar.pack.clone import cleanup, clone_video
from avatar.pack.store import load_pack, packs_dir, sha256_file

from .conftest import FPS, face_frames, speech, talking_clip, write_clip

STATEMENT = "I agree that my face and voice may be used to make an avatar"
CODE = "papa echo alpha india"


@pytest.fixture()
def store():
    with ConsentStore() as s:
        yield s


@pytest.fixture()
def issued(store, monkeypatch):
    """The store issues CODE (the session's clips say it), as `avatar clone --new-code` would."""
    words = iter(CODE.split())
    monkeypatch.setattr(sc, "secrets", SimpleNamespace(choice=lambda seq: next(words)))
    assert sc.issue_code(store) == CODE
    return CODE


@pytest.fixture(scope="session")
def consent_clip(tmp_path_factory, astronaut_face) -> Path:
    return talking_clip(tmp_path_factory.mktemp("consent") / "consent.mp4", astronaut_face,
                        sc.consent_script(STATEMENT, CODE) + " Thank you.")


def _nothing_written(store: ConsentStore) -> None:
    assert store.list() == []
    root = packs_dir(store.path)
    assert not root.exists() or [p.name for p in root.iterdir() if not p.name.startswith(".building-")] == []


def test_spoken_consent_clones_and_records_the_evidence(store, issued, consent_clip):
    res = clone_video(consent_clip, subject="Eileen", statement=STATEMENT, code=issued, store=store)
    ev = store.evidence_of(res.avatar_id)
    assert ev["basis"] == "spoken" and ev["attested_by"] is None
    d = ev["details"]
    assert [w for w, _ in d["word_scores"]][-5:] == ["is", "<code 1>", "<code 2>", "<code 3>", "<code 4>"]
    assert min(s for _, s in d["word_scores"][-4:]) >= sc.WORD_THRESHOLD
    assert d["face_distance"] < sc.FACE_THRESHOLD and d["code_hash"]
    assert CODE not in d["script"] and CODE not in json.dumps(d["word_scores"])
    assert d["footage_sha256"] == sha256_file(consent_clip) and d["transcript"]
    grant = check_consent(store, image=None, use="video", avatar_id=res.avatar_id)
    assert grant.basis == "spoken"
    with pytest.raises(ConsentError, match="already used"):  # one-time
        clone_video(consent_clip, subject="Eileen", statement=STATEMENT, code=issued, store=store)


def test_speech_without_the_statement_is_refused_and_nothing_is_written(store, issued, research_clip):
    with pytest.raises(ConsentError, match="not in the speech"):
        clone_video(research_clip, subject="Eileen", statement=STATEMENT, code=issued, store=store)
    _nothing_written(store)


@pytest.mark.slow
def test_speech_with_another_code_is_refused(store, issued, tmp_path, astronaut_face):
    clip = talking_clip(tmp_path / "wrong.mp4", astronaut_face, sc.consent_script(STATEMENT, "delta four echo two") + " Thank you.")
    with pytest.raises(ConsentError, match="code|not in the speech"):
        clone_video(clip, subject="Eileen", statement=STATEMENT, code=issued, store=store)
    _nothing_written(store)


def test_a_clip_reading_another_code_than_the_one_issued_is_refused(store, consent_clip, monkeypatch):
    other = "alpha bravo charlie delta"  # issued; the clip reads CODE
    words = iter(other.split())
    monkeypatch.setattr(sc, "secrets", SimpleNamespace(choice=lambda seq: next(words)))
    assert sc.issue_code(store) == other
    # forced alignment alone stretches these words over the spoken code with scores of 0.59-0.75
    with pytest.raises(ConsentError, match=r"'papa echo alpha india'\) is not the code given"):
        clone_video(consent_clip, subject="Eileen", statement=STATEMENT, code=other, store=store)
    _nothing_written(store)


def test_an_unissued_code_is_refused(store, consent_clip):
    with pytest.raises(ConsentError, match="not issued"):
        clone_video(consent_clip, subject="Eileen", statement=STATEMENT, code=CODE, store=store)


def test_a_different_face_reading_the_consent_is_refused(store, issued, tmp_path, astronaut_face, research_clip):
    from avatar.face.landmarks import detect_face

    different_face = runpy.run_path(str(Path(__file__).parents[1] / "output" / "faces.py"))["different_face"]
    other = different_face(astronaut_face, detect_face(astronaut_face).landmarks)
    consent = talking_clip(tmp_path / "other.mp4", other, sc.consent_script(STATEMENT, CODE) + " Thank you.", seconds=7)
    with pytest.raises(ConsentError, match="not the face in the footage"):
        clone_video(research_clip, subject="Eileen", statement=STATEMENT, code=issued, consent_video=consent, store=store)
    _nothing_written(store)


def test_the_pack_round_trips_privately_and_revoking_deletes_it(store, research, research_clip):
    res = clone_video(research_clip, subject="Eileen", statement="evaluation", store=store)
    assert res.basis == "research" and store.evidence_of(res.avatar_id)["basis"] == "research"
    pack = load_pack(res.pack)  # verifies every sha256
    assert 1 <= len(pack) <= 300 and pack.features.shape[0] == len(pack)
    m = pack.manifest
    assert set(m["files"]) >= {"anchor.png", "keyframes.npz", "track.npz", m["footage"]}
    assert m["files"][m["footage"]] == sha256_file(research_clip)
    assert pack.keyframe_image(0).shape == (m["crop_size"], m["crop_size"], 3)
    assert (os.stat(res.pack).st_mode & 0o777) == 0o700
    assert all((os.stat(p).st_mode & 0o777) == 0o600 for p in res.pack.rglob("*") if p.is_file())
    track = pack.track()
    assert len(track["times"]) >= 50 and track["audio"].shape[1] == 20
    # tampering is caught
    (res.pack / "keyframes.npz").chmod(0o600)
    with open(res.pack / "keyframes.npz", "ab") as fh:
        fh.write(b"x")
    with pytest.raises(InputError, match="altered"):
        load_pack(res.pack)
    store.revoke(res.avatar_id, "withdrawn")
    assert not res.pack.exists() and store.pack_dir(res.avatar_id) is None


def test_deleting_an_avatar_deletes_its_pack(store, research, research_clip):
    res = clone_video(research_clip, subject="Eileen", statement="evaluation", store=store)
    store.delete(res.avatar_id)
    assert not res.pack.exists() and store.list() == [] and store.evidence_of(res.avatar_id) is None


_SLOW_BUILD = """
import sys, time
from avatar.pack import store
orig = store.PackWriter.write_image
def slow(self, name, image):
    print("building", flush=True)
    time.sleep(0.5)
    orig(self, name, image)
store.PackWriter.write_image = slow
from avatar.pack.clone import clone_video
clone_video(sys.argv[1], subject="Eileen", statement="evaluation")
"""


def test_a_killed_clone_leaves_nothing(research, research_clip, tmp_path):
    home = Path(os.environ["AVATAR_HOME"])
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_BUILD, str(research_clip)], stdout=subprocess.PIPE,
                            env=dict(os.environ, PYTHONPATH=str(Path(__file__).parents[2])))
    try:
        assert proc.stdout.readline().strip() == b"building"  # mid-build: keyframes being written
        building = [p for p in packs_dir(home / "avatars.sqlite3").iterdir()]
        assert building and all(p.name.startswith(".building-") for p in building)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    with ConsentStore() as store:
        assert store.list() == []
        cleanup(store)
        assert list(packs_dir(store.path).iterdir()) == []


def test_attested_consent_is_recorded_and_labels_outputs(store, research_clip):
    from avatar.output.provenance import provenance_metadata

    res = clone_video(research_clip, subject="Eileen", statement="signed form 42", attested_by="Operator Olga", store=store)
    grant = check_consent(store, image=None, use="audio", avatar_id=res.avatar_id)
    meta = provenance_metadata(grant)
    assert meta["consent_basis"] == "attested" and meta["consent_attested_by"] == "Operator Olga"
    assert "attested by Operator Olga" in meta["comment"]


def test_without_a_code_or_attestation_a_video_clone_is_refused(store, research_clip):
    with pytest.raises(ConsentError, match="--new-code"):
        clone_video(research_clip, subject="Eileen", statement=STATEMENT, store=store)


@pytest.mark.slow
def test_a_silent_video_needs_an_attestation(store, issued, tmp_path, astronaut_face):
    audio = speech("Hello there, this is a silent clip now.", 11.0)
    clip = write_clip(tmp_path / "silent.mp4", face_frames(astronaut_face, audio, 11.0), None)
    with pytest.raises(ConsentError, match="no audio.*attested-by"):
        clone_video(clip, subject="Eileen", statement=STATEMENT, code=issued, store=store)
    res = clone_video(clip, subject="Eileen", statement=STATEMENT, attested_by="Operator Olga", store=store)
    assert load_pack(res.pack).track().get("audio") is None


@pytest.mark.slow
def test_footage_that_cannot_serve_is_refused(store, research, tmp_path, astronaut_face, research_clip):
    from avatar.config import CloneConfig

    short = write_clip(tmp_path / "short.mp4", face_frames(astronaut_face, speech("Hi.", 4.0), 4.0), None)
    with pytest.raises(InputError, match="at least 10 s"):
        clone_video(short, subject="E", statement="s", store=store)
    with pytest.raises(InputError, match="too small"):
        clone_video(research_clip, subject="E", statement="s", store=store, config=CloneConfig(min_face=400))
    two = [np.concatenate([f, f[:, ::-1]], axis=1) for f in face_frames(astronaut_face, speech("Hello.", 11.0), 11.0)]
    with pytest.raises(NoFaceError, match="several people"):
        clone_video(write_clip(tmp_path / "two.mp4", two, None), subject="E", statement="s", store=store)
    blank = [np.full((256, 256, 3), 128, np.uint8)] * 88
    with pytest.raises(NoFaceError, match="lost in most"):
        clone_video(write_clip(tmp_path / "blank.mp4", blank, None), subject="E", statement="s", store=store)
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(research_clip.read_bytes()[:3000])
    with pytest.raises(InputError):
        clone_video(corrupt, subject="E", statement="s", store=store)
    _nothing_written(store)


def test_the_demo_clones_a_video_avatar(research_clip, tmp_path):
    from avatar.demo.service import DemoService
    from avatar.demo.settings import DemoSettings

    service = DemoService(DemoSettings(store_path=tmp_path / "avatars.sqlite3"))
    try:
        code, script = service.new_consent_code(STATEMENT)
        assert len(code.split()) == 4 and script.endswith(f"My code is {code}.")
        form = dict(subject="Eileen", granted_by="subject", statement="signed form 42", scopes=["video", "audio"],
                    commercial=False, expires="", confirmed=True)
        with pytest.raises(ConsentError, match="one-time code"):
            service.create_video_avatar(research_clip, **form)
        res = service.create_video_avatar(research_clip, attested_by="Operator Olga", **form)
        assert "attested by Operator Olga" in service.describe(res.avatar_id)
        assert service.store.pack_dir(res.avatar_id) is not None
        # the Talk tab's preview of the base footage: short, small, and only for who may see the avatar
        from avatar.demo.service import Viewer
        from avatar.media.video import probe_video, read_frames

        preview = service.base_preview(res.avatar_id, seconds=2.0, max_side=128)
        info = probe_video(preview)
        assert max(info.width, info.height) <= 128 and info.duration <= 2.3
        first = next(iter(read_frames(preview)))
        assert first.std() > 5  # the person's footage, not a blank clip
        with pytest.raises(ConsentError):
            service.base_preview(res.avatar_id, viewer=Viewer("someone else"))
        service.revoke(res.avatar_id, "withdrawn")
        assert service.base_preview(res.avatar_id) is None  # revoking deleted the pack and its footage
    finally:
        service.close()


def test_a_rotated_phone_video_is_cloned_upright(store, research, research_clip, tmp_path):
    """Frames stored sideways with rotation metadata (as phones record portrait video) are turned
    upright before tracking: the anchor frame comes out in the displayed orientation."""
    import shutil

    from avatar.media.video import read_frames

    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.skip("needs the ffmpeg binary to write rotation metadata")
    frames = [np.pad(f, ((32, 32), (0, 0), (0, 0)), mode="edge") for f in read_frames(research_clip)]  # 320 × 256
    sideways = write_clip(tmp_path / "sideways.mp4", [np.ascontiguousarray(np.rot90(f, -1)) for f in frames], None)
    rotated = tmp_path / "rotated.mp4"
    subprocess.run([ffmpeg, "-v", "error", "-y", "-i", str(sideways), "-c", "copy", "-metadata:s:v:0", "rotate=90",
                    str(rotated)], check=True)
    res = clone_video(rotated, subject="Eileen", statement="evaluation", store=store)
    pack = load_pack(res.pack)
    assert pack.manifest["source"]["rotation"] == 90
    assert pack.anchor_frame().shape == (320, 256, 3)


def test_a_variable_frame_rate_video_keeps_its_frame_times(store, research, research_clip, tmp_path):
    """Phones record variable frame rate: frames are tracked at their presentation times, not at
    index / fps, so the pack's keyframes (and the audio features beside them) stay in sync."""
    from fractions import Fraction

    import av

    from avatar.media.video import read_frames

    frames = list(read_frames(research_clip))
    vfr = tmp_path / "vfr.mp4"
    step = 1000.0 / FPS  # the clip's own frame duration (ms); frames now last half and 1.5 times that in turn
    times = np.round(np.cumsum([0] + [0.5 * step if i % 2 == 0 else 1.5 * step for i in range(len(frames) - 1)]))
    with av.open(str(vfr), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        s.codec_context.time_base = Fraction(1, 1000)
        for f, t in zip(frames, times):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24")
            vf.pts, vf.time_base = int(t), Fraction(1, 1000)
            c.mux(s.encode(vf))
        c.mux(s.encode())
    res = clone_video(vfr, subject="Eileen", statement="evaluation", store=store)
    track = load_pack(res.pack).track()
    got = track["times"]
    want = times[track["frame_index"]] / 1000.0
    assert len(got) > 20 and np.abs(got - want).max() < 2e-3
    assert np.abs(got - track["frame_index"] / FPS).max() > 0.01  # index / fps would be off


def test_the_clone_command_prints_the_id_and_the_token_once(research, research_clip, capsys):
    """`avatar clone VIDEO`: the avatar id on stdout (for scripts), the revocation token on stderr."""
    import re

    from avatar.cli import main

    code = main(["clone", str(research_clip), "--subject", "Eileen", "--consent", "evaluation"])
    out, err = capsys.readouterr()
    assert code == 0, err
    avatar_id = out.strip().splitlines()[-1]
    assert re.fullmatch(r"av_[0-9a-f]{12}", avatar_id)
    token = re.search(rf"revocation token for {avatar_id} \(shown once; give it to Eileen, .*\): (\S+)", err)
    assert token and len(token.group(1)) >= 16
    assert f"video avatar {avatar_id}" in err
