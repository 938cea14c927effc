"""Jobs are handed out longest first within a bounded look-ahead, so a batch does not end on one long job."""

from __future__ import annotations

import json

import numpy as np
import pytest

from avatar.batch.jobs import JobSource
from avatar.batch.schedule import job_cost, longest_first


def _jobs(write_jobs, portrait_path, driving_clip, records):
    base = {"source": str(portrait_path)}
    return list(JobSource(write_jobs([{**base, **r} for r in records])).jobs())


def test_costs_follow_what_each_job_renders(write_jobs, portrait_path, driving_clip, tmp_path):
    import soundfile as sf

    long_wav, short_wav = tmp_path / "long.wav", tmp_path / "short.wav"
    sf.write(long_wav, np.zeros(16000 * 4, np.float32), 16000)
    sf.write(short_wav, np.zeros(16000, np.float32), 16000)
    jobs = _jobs(write_jobs, portrait_path, driving_clip, [
        {"kind": "talk", "text": "Hi.", "output": "short_text.mp4"},
        {"kind": "talk", "text": "A much longer sentence than the other one, spoken slowly.", "output": "long_text.mp4"},
        {"kind": "talk", "audio": str(short_wav), "output": "short_audio.mp4"},
        {"kind": "talk", "audio": str(long_wav), "output": "long_audio.mp4"},
        {"kind": "animate", "driving": str(driving_clip), "output": "all.mp4"},
        {"kind": "animate", "driving": str(driving_clip), "output": "capped.mp4", "options": {"max_frames": 2}},
    ])
    cost = {job.output: job_cost(job) for job in jobs}
    assert cost["long_text.mp4"] > 3 * cost["short_text.mp4"] > 0
    assert cost["long_audio.mp4"] == pytest.approx(4 * cost["short_audio.mp4"], rel=0.05)
    assert cost["all.mp4"] > cost["capped.mp4"] > 0


def test_longest_first_within_the_window(write_jobs, portrait_path, driving_clip):
    lengths = [3, 40, 7, 25, 1, 60, 12]
    jobs = _jobs(write_jobs, portrait_path, driving_clip,
                 [{"kind": "talk", "text": "x" * n, "output": f"t{i}.mp4"} for i, n in enumerate(lengths)])
    whole = [len(j.text) for j in longest_first(jobs, window=100)]
    assert whole == sorted(lengths, reverse=True)  # the whole file in view: plain LPT order
    pulled = []

    def stream():
        for job in jobs:
            pulled.append(job)
            yield job

    seen = []
    for job in longest_first(stream(), window=3):
        assert len(pulled) - len(seen) <= 3  # never more than the window held back
        seen.append(len(job.text))
    assert sorted(seen) == sorted(lengths)  # every job exactly once
    assert seen == [40, 25, 7, 60, 12, 3, 1]  # the costliest in view each time; the tail drains longest first


def test_batch_hands_out_the_longest_job_first(write_jobs, portrait_path, driving_clip, tmp_path, monkeypatch):
    """One worker renders in hand-out order: a long job at the end of the file is rendered first."""
    from avatar.batch import run

    monkeypatch.setenv("AVATAR_CONSENT_POLICY", "research")
    jobs = write_jobs([
        {"kind": "animate", "source": str(portrait_path), "driving": str(driving_clip), "output": "short.mp4",
         "options": {"size": 128, "max_frames": 2}},
        {"kind": "animate", "source": str(portrait_path), "driving": str(driving_clip), "output": "long.mp4",
         "options": {"size": 128, "max_frames": 6}},
    ])
    summary = run(jobs, tmp_path / "out", workers=1, progress=False)
    assert summary.done == 2, summary.text()
    lines = (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()
    assert [json.loads(line)["output"] for line in lines] == ["long.mp4", "short.mp4"]
