"""The worker's consent snapshot (cluster nodes): a revocation reaches the next job."""

from __future__ import annotations

from avatar.batch.jobs import parse_job
from avatar.batch.worker import Renderer, WorkerContext
from avatar.output.consent import ConsentStore, default_store_path
from avatar.output.verify import verify


def test_snapshot_of_shared_consent_store_follows_revocation(avatars, driving_clip, tmp_path):
    active, _ = avatars
    shared = default_store_path()
    out = tmp_path / "out"
    renderer = Renderer(WorkerContext(out_dir=str(out), consent_store=str(shared), consent_snapshot=True,
                                      tmp_root=str(tmp_path)))

    def job(name):
        return parse_job({"kind": "animate", "source": active, "driving": str(driving_clip), "output": name,
                          "options": {"size": 128, "max_frames": 2}})

    first = renderer.render(job("one.mp4"))
    assert first["status"] == "done", first
    assert verify(out / "one.mp4").c2pa_consent["avatar_id"] == active
    snapshot = renderer._store.path
    assert snapshot != shared and snapshot.is_file()
    with ConsentStore(shared) as store:
        store.revoke(active, "withdrawn mid-batch")
    second = renderer.render(job("two.mp4"))
    assert second["status"] == "failed" and "revoked" in second["error"], second
    assert not (out / "two.mp4").exists()


def test_worker_uploads_remote_outputs_itself(avatars, driving_clip, tmp_path):
    fsspec = __import__("pytest").importorskip("fsspec")
    active, _ = avatars
    url = f"memory://worker-upload-{tmp_path.name}/out"
    renderer = Renderer(WorkerContext(out_dir=url, local_out=False, upload_in_worker=True, tmp_root=str(tmp_path)))
    rec = renderer.render(parse_job({"kind": "animate", "source": active, "driving": str(driving_clip),
                                     "output": "sub/a.mp4", "options": {"size": 128, "max_frames": 2}}))
    assert rec["status"] == "done" and rec["path"].endswith("/out/sub/a.mp4") and "local_tmp" not in rec, rec
    fs = fsspec.filesystem("memory")
    assert fs.size(rec["path"]) == rec["size"]
    assert not list(renderer._tmp.glob("*.mp4"))  # the local render was removed after the upload
    fs.rm(url.split("://", 1)[1], recursive=True)


def test_a_worker_renders_with_its_share_of_threads(tmp_path, monkeypatch):
    import pytest

    from avatar.batch import run
    from avatar.config import AvatarConfig, RenderConfig
    from avatar.errors import ConfigError

    monkeypatch.setattr(Renderer, "_limit_threads", staticmethod(lambda n: None))  # process-wide: not in a test
    renderer = Renderer(WorkerContext(out_dir=str(tmp_path / "out"), tmp_root=str(tmp_path), threads=3))
    assert renderer.animator(AvatarConfig()).config.render.threads == 3  # frames rendered at once
    chosen = AvatarConfig(render=RenderConfig(threads=1))
    assert renderer.animator(chosen).config.render.threads == 1  # a job's own choice stays
    with pytest.raises(ConfigError, match="threads_per_worker"):
        run([], tmp_path / "out", threads_per_worker=0)


def test_a_worker_limits_threads_without_importing_torch(tmp_path):
    """Importing torch only to set its thread count cost each worker ~0.9 s of start-up."""
    import subprocess
    import sys

    code = (
        "import sys, cv2\n"
        "from avatar.batch.worker import Renderer, WorkerContext\n"
        f"Renderer(WorkerContext(out_dir={str(tmp_path)!r}, tmp_root={str(tmp_path)!r}, threads=1))\n"
        "import os\n"
        "print('torch' in sys.modules, os.environ['OMP_NUM_THREADS'], cv2.getNumThreads())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "1", "1"]
