"""Batches that render: local pool and Ray, consent per job, resume, a killed worker, fsspec outputs."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from avatar.batch import run
from avatar.media.image import sha256_file
from avatar.output.verify import verify

TINY = {"size": 128, "max_frames": 6}  # tiny jobs keep the suite fast


def _mixed_jobs(portrait_path, driving_clip, avatars):
    active, revoked = avatars
    return [
        {"kind": "animate", "source": str(portrait_path), "driving": str(driving_clip), "output": "anim/path.mp4",
         "options": TINY},
        {"kind": "talk", "source": active, "text": "Hi there.", "output": "talk/id.mp4", "options": {"size": 128}},
        {"kind": "talk", "source": revoked, "text": "Hi there.", "output": "talk/revoked.mp4", "options": {"size": 128}},
        {"kind": "animate", "source": active, "driving": str(driving_clip), "output": "anim/id.mp4",
         "options": {**TINY, "max_frames": 4, "no_shading": True}},
    ]


def _manifest(path: Path) -> dict[str, dict]:
    return {r["output"]: r for r in map(json.loads, path.read_text().splitlines())}


def _check_mixed(out: Path, summary, avatars) -> None:
    active, revoked = avatars
    assert (summary.total, summary.done, summary.failed) == (4, 3, 1), summary.text()
    records = _manifest(out / "manifest.jsonl")
    bad = records["talk/revoked.mp4"]
    assert bad["status"] == "failed" and bad["error_type"] == "ConsentError"
    assert f"consent for avatar {revoked}" in bad["error"] and "revoked" in bad["error"]
    assert not (out / "talk/revoked.mp4").exists()
    for name, frames in (("anim/path.mp4", 6), ("anim/id.mp4", 4), ("talk/id.mp4", None)):
        rec = records[name]
        assert rec["status"] == "done", rec
        path = out / name
        assert rec["sha256"] == sha256_file(path) and rec["size"] == path.stat().st_size
        if frames is not None:
            assert rec["frames"] == frames
        report = verify(path)
        assert report.labelled_ai and report.metadata.get("ai_generated") == "true"
        assert report.c2pa_state == "Valid" and report.watermark_matches_c2pa
        assert (report.c2pa_consent or {}).get("avatar_id") == active
    assert not [p for p in out.rglob(".*tmp-*")]


def test_mixed_batch_local_pool(portrait_path, driving_clip, avatars, write_jobs, tmp_path):
    jobs = write_jobs(_mixed_jobs(portrait_path, driving_clip, avatars))
    out = tmp_path / "out"
    summary = run(jobs, out, workers=2, progress=False)
    _check_mixed(out, summary, avatars)
    # a batch job renders exactly what the same command line renders
    from avatar.cli import main
    from avatar.media.video import read_frames

    single = tmp_path / "single.mp4"
    assert main(["animate", str(portrait_path), str(driving_clip), "-o", str(single), "--size", "128",
                 "--max-frames", "6", "--quiet"]) == 0
    pairs = list(zip(read_frames(out / "anim/path.mp4"), read_frames(single), strict=True))
    assert len(pairs) == 6 and all((a == b).all() for a, b in pairs)


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_mixed_batch_on_local_ray(local_ray, portrait_path, driving_clip, avatars, write_jobs, tmp_path):
    jobs = write_jobs(_mixed_jobs(portrait_path, driving_clip, avatars))
    out = tmp_path / "out"
    summary = run(jobs, out, workers=2, ray=True, progress=False)
    _check_mixed(out, summary, avatars)
    records = _manifest(out / "manifest.jsonl")
    workers = {r["worker"] for r in records.values()}
    assert all(w.split(":")[1] != str(os.getpid()) for w in workers)  # rendered by actors, not this process
    assert local_ray.is_initialized()  # a Ray the caller started is left running


def test_ray_puts_each_shared_input_once(local_ray, portrait_path, driving_clip, tmp_path):
    from avatar.batch.jobs import parse_job
    from avatar.batch.ray_pool import RayPool
    from avatar.batch.worker import WorkerContext

    pool = RayPool(1, WorkerContext(out_dir=str(tmp_path)))
    jobs = [parse_job({"kind": "animate", "source": str(portrait_path), "driving": str(driving_clip),
                       "output": f"{i}.mp4"}) for i in range(5)]
    shipped = [pool._shipped(job) for job in jobs]
    refs = {ident: ref for s in shipped for ident, (_, _, ref) in s.items()}
    assert len(refs) == 2 and all(s == shipped[0] for s in shipped)  # one object per file, reused by every job
    by_path = {path: ref for path, _, ref in shipped[0].values()}
    assert local_ray.get(by_path[str(driving_clip)]) == driving_clip.read_bytes()


def test_gpu_job_on_a_ray_without_gpus_fails_alone(local_ray, portrait_path, driving_clip, avatars, write_jobs,
                                                  tmp_path):
    active, _ = avatars
    checkpoint = tmp_path / "vox.safetensors"
    checkpoint.write_bytes(b"not read: the job never reaches an actor")
    jobs = write_jobs([
        {"kind": "animate", "source": active, "driving": str(driving_clip), "output": "gpu.mp4",
         "options": {**TINY, "engine": "fomm", "checkpoint": str(checkpoint), "device": "cuda"}},
        {"kind": "animate", "source": active, "driving": str(driving_clip), "output": "cpu.mp4", "options": TINY},
    ])
    summary = run(jobs, tmp_path / "out", workers=1, ray=True, progress=False)
    assert (summary.done, summary.failed) == (1, 1), summary.text()
    rec = _manifest(tmp_path / "out" / "manifest.jsonl")["gpu.mp4"]
    assert "Ray cluster has fewer GPUs" in rec["error"]


def test_rerun_skips_done_jobs_and_rerenders_changed_ones(portrait_path, driving_clip, avatars, write_jobs, tmp_path):
    records = [{"kind": "animate", "source": str(portrait_path), "driving": str(driving_clip), "output": f"{n}.mp4",
                "options": {**TINY, "max_frames": 3}} for n in ("a", "b", "c")]
    out = tmp_path / "out"
    first = run(write_jobs(records), out, workers=1, progress=False)
    assert (first.done, first.skipped) == (3, 0)
    assert (out / "manifest.jsonl").stat().st_mode & 0o077 == 0  # it names people's files: private
    before = {n: sha256_file(out / f"{n}.mp4") for n in "abc"}
    again = run(write_jobs(records), out, workers=1, progress=False)
    assert (again.done, again.skipped, again.to_run) == (0, 3, 0)
    records[1]["options"] = {**TINY, "max_frames": 4}  # a changed job
    (out / "c.mp4").unlink()  # an output that went missing
    third = run(write_jobs(records), out, workers=1, progress=False)
    assert (third.done, third.skipped) == (2, 1)
    assert sha256_file(out / "a.mp4") == before["a"]
    assert sha256_file(out / "b.mp4") != before["b"]
    assert _manifest(out / "manifest.jsonl")["b.mp4"]["frames"] == 4


def test_failed_jobs_rerun_only_with_retry_failed(portrait_path, driving_clip, write_jobs, tmp_path, monkeypatch):
    jobs = write_jobs([{"kind": "animate", "source": str(portrait_path), "driving": str(driving_clip),
                        "output": "a.mp4", "options": {**TINY, "max_frames": 2}}])
    out = tmp_path / "out"
    assert run(jobs, out, workers=1, progress=False).failed == 1  # no consent recorded yet
    monkeypatch.setenv("AVATAR_CONSENT_POLICY", "research")  # the operator's research policy: no record needed
    skipped = run(jobs, out, workers=1, progress=False)
    assert (skipped.failed_before, skipped.done) == (1, 0)
    retried = run(jobs, out, workers=1, retry_failed=True, progress=False)
    assert (retried.done, retried.failed) == (1, 0)
    assert verify(out / "a.mp4").metadata.get("ai_generated") == "true"


def test_worker_killed_mid_job_leaves_no_partial_output(portrait_path, avatars, write_jobs, tmp_path):
    active, _ = avatars
    speech = "This sentence is long enough that the worker is still writing the video when it gets killed. " * 2
    jobs = write_jobs([{"kind": "talk", "source": active, "text": speech, "output": "long.mp4", "options": {"size": 128}}])
    out = tmp_path / "out"
    result: dict = {}
    batch = threading.Thread(target=lambda: result.setdefault("summary", run(jobs, out, workers=1, progress=False)))
    batch.start()
    killed = None
    deadline = time.monotonic() + 240
    while killed is None and time.monotonic() < deadline and batch.is_alive():
        if list(out.glob(".long.mp4.tmp-*")):  # the worker is mid-write
            (worker,) = multiprocessing.active_children()
            os.kill(worker.pid, signal.SIGKILL)
            killed = worker.pid
        time.sleep(0.02)
    batch.join(300)
    assert killed is not None, "the job finished before it could be killed"
    summary = result["summary"]
    rec = _manifest(out / "manifest.jsonl")["long.mp4"]
    assert rec["attempt"] == 2 and rec["worker"] != f"vm:{killed}"  # retried on a fresh worker
    assert rec["status"] == "done" and summary.done == 1, rec
    assert verify(out / "long.mp4").labelled_ai
    assert not list(out.glob(".*tmp-*"))  # the killed write's temp file is gone


def test_outputs_through_fsspec_memory_filesystem(portrait_path, driving_clip, avatars, write_jobs, tmp_path):
    fsspec = pytest.importorskip("fsspec")
    active, _ = avatars
    jobs = write_jobs([
        {"kind": "animate", "source": active, "driving": str(driving_clip), "output": "x/a.mp4", "options": TINY},
        {"kind": "talk", "source": active, "text": "Hi.", "output": "b.mp4", "options": {"size": 128}},
    ])
    url = f"memory://batch-{os.getpid()}-{time.time_ns()}/out"
    summary = run(jobs, url, workers=1, manifest=tmp_path / "manifest.jsonl", progress=False)
    assert (summary.done, summary.failed) == (2, 0), summary.text()
    fs = fsspec.filesystem("memory")
    records = _manifest(tmp_path / "manifest.jsonl")
    for name in ("x/a.mp4", "b.mp4"):
        rec = records[name]
        assert rec["path"].startswith("memory://") and rec["path"].endswith(f"/out/{name}")
        local = tmp_path / Path(name).name
        local.write_bytes(fs.cat_file(rec["path"]))
        assert sha256_file(local) == rec["sha256"]
        assert verify(local).labelled_ai
    assert run(jobs, url, workers=1, manifest=tmp_path / "manifest.jsonl", progress=False).skipped == 2
    fs.rm(url.split("://", 1)[1], recursive=True)


@pytest.mark.slow
def test_batch_killed_with_sigkill_resumes(portrait_path, driving_clip, avatars, write_jobs, tmp_path):
    import subprocess
    import sys

    active, _ = avatars
    jobs = write_jobs([{"kind": "animate", "source": active, "driving": str(driving_clip), "output": f"j{i}.mp4",
                        "options": {"size": 128, "max_frames": 15}} for i in range(4)])
    out = tmp_path / "out"
    cmd = [sys.executable, "-c", "import sys; from avatar.cli import main; sys.exit(main(sys.argv[1:]))",
           "batch", str(jobs), "--out-dir", str(out), "--workers", "1", "--quiet"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    manifest = out / "manifest.jsonl"
    while time.monotonic() < deadline and proc.poll() is None:
        done = manifest.read_text().count("\n") if manifest.exists() else 0
        if done >= 1 and list(out.glob(".j*.mp4.tmp-*")):  # one recorded, the next one mid-write
            os.killpg(proc.pid, signal.SIGKILL)  # the batch and its workers, at once
            break
        time.sleep(0.02)
    proc.wait(60)
    assert proc.returncode == -signal.SIGKILL, "the batch finished before it could be killed"
    recorded = _manifest(manifest)
    assert 1 <= len(recorded) < 4
    for path in out.glob("j*.mp4"):  # every file with a final name is a whole, labelled video
        assert verify(path).labelled_ai
    summary = run(jobs, out, workers=1, progress=False)
    assert summary.skipped == len(recorded) and summary.done == 4 - len(recorded) and summary.failed == 0
    assert not list(out.glob(".*tmp-*"))
    assert all(r["status"] == "done" for r in _manifest(manifest).values())
