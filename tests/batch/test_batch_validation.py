"""Job files are checked whole before anything runs: each bad line is named with its line number."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from avatar.batch import run
from avatar.batch.jobs import JobSource
from avatar.errors import InputError

TINY = {"size": 128, "max_frames": 6}  # tiny jobs keep the suite fast


def _animate(portrait_path, driving_clip, output, **options):
    return {"kind": "animate", "source": str(portrait_path), "driving": str(driving_clip), "output": output,
            "options": {**TINY, **options}}


def test_bad_line_rejected_before_anything_runs(write_jobs, portrait_path, driving_clip, tmp_path):
    jobs = write_jobs([_animate(portrait_path, driving_clip, "a.mp4"),
                       _animate(portrait_path, driving_clip, "b.mp4"),
                       {"kind": "animate", "source": str(portrait_path), "output": "c.mp4"}])  # no driving
    out = tmp_path / "out"
    with pytest.raises(InputError, match=r"jobs\.jsonl line 3: an animate job needs 'driving'"):
        run(jobs, out, workers=1, progress=False)
    assert not out.exists()  # nothing rendered, no manifest, not even the folder


@pytest.mark.parametrize("text, message", [
    ("", r"has no jobs"),
    ("\n# only a comment\n\n", r"has no jobs"),
    ('{"kind": "animate", "source": "p.png"\n', r"line 1: not valid JSON"),
    ('["kind", "animate"]\n', r"line 1: expected a JSON object per line"),
    ('{"kind": "dance", "source": "p.png", "output": "x.mp4"}\n', r"line 1: 'kind' must be 'animate' or 'talk'"),
    ('{"kind": "talk", "source": "PORTRAIT", "text": "hi", "output": "x.mp4", "colour": 1}\n', r"line 1: unknown field"),
    ('{"kind": "talk", "source": "PORTRAIT", "text": "hi", "output": "../x.mp4"}\n', r"line 1: 'output' must stay inside"),
    ('{"kind": "talk", "source": "PORTRAIT", "text": "hi", "output": "x.avi"}\n', r"line 1: 'output' must end in \.mp4"),
    ('{"kind": "talk", "source": "missing.png", "text": "hi", "output": "x.mp4"}\n', r"line 1: source portrait .*missing\.png not found"),
    ('{"kind": "talk", "source": "PORTRAIT", "audio": "nope.wav", "output": "x.mp4"}\n', r"line 1: audio file .*nope\.wav not found"),
    ('{"kind": "talk", "source": "PORTRAIT", "text": "hi", "output": "x.mp4", "options": {"sise": 128}}\n',
     r"line 1: unknown option 'sise' for talk jobs"),
    ('{"kind": "talk", "source": "PORTRAIT", "text": "hi", "output": "x.mp4", "options": {"size": "big"}}\n',
     r"line 1: option 'size' must be an int"),
    ('{"kind": "talk", "source": "PORTRAIT", "text": "hi", "output": "x.mp4", "options": {"size": 100}}\n',
     r"line 1: size must be a multiple of 8"),
    ('{"kind": "talk", "source": "PORTRAIT", "text": "hi", "output": "x.mp4", "options": {"consent": "yes"}}\n',
     r"line 1: option 'consent': record consent before the batch"),
    ('{"kind": "talk", "source": "PORTRAIT", "text": "hi", "output": "x.mp4"}\n'
     '{"kind": "talk", "source": "PORTRAIT", "text": "ho", "output": "./x.mp4"}\n',
     r"line 2: output 'x.mp4' is already written by line 1"),
])
def test_bad_job_files_name_file_and_line(write_jobs, portrait_path, tmp_path, text, message):
    jobs = write_jobs(text.replace("PORTRAIT", str(portrait_path)))
    with pytest.raises(InputError, match=message) as info:
        run(jobs, tmp_path / "out", workers=1, progress=False)
    assert str(jobs) in str(info.value)
    assert not (tmp_path / "out").exists()


def test_missing_job_file_and_not_utf8(tmp_path):
    with pytest.raises(InputError, match="job file .*nothing.jsonl not found"):
        run(tmp_path / "nothing.jsonl", tmp_path / "out", progress=False)
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"kind": "talk", "text": "\xff\xfe"}\n')
    with pytest.raises(InputError, match="not UTF-8"):
        run(bad, tmp_path / "out", progress=False)


def test_csv_jobs_with_option_columns(tmp_path, portrait_path, driving_clip):
    jobs = tmp_path / "jobs.csv"
    jobs.write_text("kind,source,driving,text,output,size,no_shading,options\n"
                    f"animate,{portrait_path},{driving_clip},,a.mp4,128,true,\"{{\"\"max_frames\"\": 4}}\"\n"
                    f"talk,{portrait_path},,\"Hello, there.\",t.mp4,256,,\n", encoding="utf-8")
    a, t = list(JobSource(jobs).jobs())
    assert (a.kind, a.line, dict(a.options)) == ("animate", 2, {"size": 128, "no_shading": True, "max_frames": 4})
    assert (t.kind, t.text, dict(t.options)) == ("talk", "Hello, there.", {"size": 256})
    jobs.write_text("kind,source\ntalk,x\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"jobs\.csv line 1: .*missing: output"):
        JobSource(jobs).validate()


def test_job_key_follows_spec_and_inputs(write_jobs, portrait_path, driving_clip, tmp_path):
    def key(**options):
        return next(JobSource(write_jobs([_animate(portrait_path, driving_clip, "a.mp4", **options)])).jobs()).key

    assert key() == key()
    assert key(max_frames=5) != key()
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(driving_clip.read_bytes())
    moved = next(JobSource(write_jobs([_animate(portrait_path, clip, "a.mp4")])).jobs()).key
    clip.write_bytes(driving_clip.read_bytes() + b"\0")  # same path, changed file
    assert next(JobSource(write_jobs([_animate(portrait_path, clip, "a.mp4")])).jobs()).key != moved


def test_unwritable_out_dir_is_named(write_jobs, portrait_path, driving_clip, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    jobs = write_jobs([_animate(portrait_path, driving_clip, "a.mp4")])
    with pytest.raises(InputError, match=r"the output folder .*a-file/out is not writable"):
        run(jobs, blocker / "out", manifest=tmp_path / "m.jsonl", workers=1, progress=False)
    assert not (tmp_path / "m.jsonl").exists()


def test_dry_run_plans_without_writing(write_jobs, portrait_path, driving_clip, tmp_path):
    jobs = write_jobs([_animate(portrait_path, driving_clip, f"a{i}.mp4") for i in range(5)])
    summary = run(jobs, tmp_path / "out", dry_run=True, progress=False)
    assert (summary.total, summary.to_run, summary.done) == (5, 5, 0)
    assert "would render 5" in summary.text()
    assert not (tmp_path / "out").exists()


def _cli(*args, timeout=120):
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", "import sys; from avatar.cli import main; sys.exit(main(sys.argv[1:]))",
                           *args], capture_output=True, text=True, timeout=timeout)
    return proc, time.monotonic() - t0


def test_unreachable_ray_address_fails_fast(write_jobs, portrait_path, driving_clip, tmp_path):
    pytest.importorskip("ray")
    import socket

    jobs = write_jobs([_animate(portrait_path, driving_clip, "a.mp4")])
    refused = socket.socket()
    refused.bind(("127.0.0.1", 0))
    port = refused.getsockname()[1]
    refused.close()  # nothing listens there now
    proc, seconds = _cli("batch", str(jobs), "--out-dir", str(tmp_path / "out"), "--ray", f"127.0.0.1:{port}", "--quiet")
    assert proc.returncode == 1, proc.stderr
    assert f"cannot reach a Ray cluster at 127.0.0.1:{port}" in proc.stderr
    with socket.socket() as silent:  # accepts connections, never speaks Ray
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        proc, seconds = _cli("batch", str(jobs), "--out-dir", str(tmp_path / "out"), "--ray", address,
                             "--ray-timeout", "4", "--quiet")
    assert proc.returncode == 1, proc.stderr
    assert f"Ray cluster at {address}" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert seconds < 60
    assert not (tmp_path / "out" / "a.mp4").exists()


def test_second_batch_on_the_same_manifest_is_refused(write_jobs, portrait_path, driving_clip, tmp_path):
    from avatar.batch.manifest import Manifest

    jobs = write_jobs([_animate(portrait_path, driving_clip, "a.mp4")])
    with Manifest(tmp_path / "out" / "manifest.jsonl"):  # another batch holds it
        with pytest.raises(InputError, match="another batch is running with the manifest"):
            run(jobs, tmp_path / "out", workers=1, progress=False)
    assert not (tmp_path / "out" / "a.mp4").exists()


def test_manifest_survives_a_torn_last_line(tmp_path):
    from avatar.batch.manifest import Manifest

    path = tmp_path / "manifest.jsonl"
    path.write_text('{"output": "a.mp4", "key": "k1", "status": "done", "size": 10}\n{"output": "b.mp4", "ke')
    index = Manifest(path).load()
    assert list(index) == ["a.mp4"] and index["a.mp4"].size == 10
    with Manifest(path) as book:
        book.append({"output": "c.mp4", "key": "k3", "status": "failed"})
    assert set(Manifest(path).load()) == {"a.mp4", "c.mp4"}


def test_file_options_resolve_like_job_paths_and_must_exist(tmp_path, portrait_path, driving_clip):
    from avatar.batch.jobs import parse_job

    (tmp_path / "drivers").mkdir()
    (tmp_path / "drivers" / "idle.mp4").write_bytes(driving_clip.read_bytes())
    (tmp_path / "words.txt").write_text("hello")
    (tmp_path / "speech.wav").write_bytes(b"RIFF")  # only its existence is checked up front
    job = parse_job({"kind": "talk", "source": str(portrait_path), "audio": "speech.wav", "output": "t.mp4",
                     "options": {"head-from": "drivers/idle.mp4", "transcript": "words.txt"}}, base_dir=tmp_path)
    assert dict(job.options) == {"head_from": str(tmp_path / "drivers" / "idle.mp4"),
                                 "transcript": str(tmp_path / "words.txt")}
    assert str(tmp_path / "drivers" / "idle.mp4") in job.input_paths
    with pytest.raises(InputError, match="a transcript describes an 'audio' file"):
        parse_job({"kind": "talk", "source": str(portrait_path), "text": "hi", "output": "t.mp4",
                   "options": {"transcript": "words.txt"}}, base_dir=tmp_path)
    with pytest.raises(InputError, match=r"head from file .*gone\.mp4 not found"):
        parse_job({"kind": "talk", "source": str(portrait_path), "text": "hi", "output": "t.mp4",
                   "options": {"head_from": "gone.mp4"}}, base_dir=tmp_path)
