"""Batch throughput: ``python -m avatar.bench batch [--jobs 20] [--workers 1,2] [--repeat 2] [--no-ray] [--manifest-jobs 10000]``.

Renders the same short mixed jobs (animate and talk, generated inputs) with each worker
count on the local process pool and on a local Ray, and reports jobs/s, frames/s, the
scaling from 1 to N workers and Ray's overhead against the pool. Ray is started once,
before the timed runs (its start-up is reported separately); worker / actor start-up and
engine loading are inside the timings. Then the peak memory of a dry run over a
generated job file (``--manifest-jobs`` lines, with a manifest of as many finished jobs).
Outputs are labelled with the "research" consent policy, like the other benchmarks.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_TEXTS = ("Hello, and welcome.", "Today we learn something new.", "Thank you for watching.", "See you next time.")


def _inputs(tmp: Path) -> tuple[Path, Path]:
    from ..examples import example_portrait, write_example_driving
    from ..media.image import save_image

    return save_image(tmp / "portrait.png", example_portrait()), write_example_driving(tmp / "driving.mp4", frames=50, size=256)


def _jobs(n: int, portrait: Path, driving: Path, size: int, frames: int) -> list[dict]:
    jobs = []
    for i in range(n):
        if i % 2 == 0:
            jobs.append({"kind": "animate", "source": str(portrait), "driving": str(driving), "output": f"a{i:03d}.mp4",
                         "options": {"size": size, "max_frames": frames}})
        else:
            jobs.append({"kind": "talk", "source": str(portrait), "text": _TEXTS[i % len(_TEXTS)], "output": f"t{i:03d}.mp4",
                         "options": {"size": size}})
    return jobs


def _timed(jobs: list[dict], out: Path, workers: int, ray: bool, threads: int | None = None) -> dict:
    from ..batch import run

    t0 = time.perf_counter()
    s = run(jobs, out, workers=workers, ray=ray or None, progress=False, threads_per_worker=threads)
    wall = time.perf_counter() - t0
    if s.failed:
        raise SystemExit(f"benchmark jobs failed:\n{s.text()}")
    from datetime import datetime

    recs = [json.loads(line) for line in Path(s.manifest).read_text().splitlines()]
    span = (max(datetime.fromisoformat(r["finished"]) for r in recs)
            - min(datetime.fromisoformat(r["started"]) for r in recs)).total_seconds()
    return {"wall": wall, "span": span, "jobs": s.done, "frames": s.frames, "jobs_s": s.done / wall,
            "frames_s": s.frames / wall, "span_jobs_s": s.done / span}


# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork + exec.
_DRY_RUN = """
import json, re, sys, time
from avatar.batch import run
def hwm():
    return int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1))
before = hwm()
t0 = time.perf_counter()
s = run(sys.argv[1], sys.argv[2], dry_run=True, progress=False)
print(json.dumps({"seconds": time.perf_counter() - t0, "total": s.total, "skipped": s.skipped, "to_run": s.to_run,
                  "rss_before_kib": before, "rss_peak_kib": hwm()}))
"""


def _dry_run_memory(n: int, portrait: Path, driving: Path, tmp: Path) -> dict:
    """Peak RSS of ``avatar batch --dry-run`` over n jobs, half of them already in the manifest."""
    folder = tmp / f"dry{n}"
    out = folder / "out"
    out.mkdir(parents=True)
    with open(folder / "jobs.jsonl", "w") as jf, open(out / "manifest.jsonl", "w") as mf:
        for i, job in enumerate(_jobs(n, portrait, driving, 256, 25)):
            jf.write(json.dumps(job) + "\n")
            if i % 2 == 0:  # "done" entries whose outputs are gone: planned again, after a look at each
                mf.write(json.dumps({"output": job["output"], "key": "0" * 64, "status": "done", "size": 1}) + "\n")
    proc = subprocess.run([sys.executable, "-c", _DRY_RUN, str(folder / "jobs.jsonl"), str(out)],
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m avatar.bench batch")
    ap.add_argument("--jobs", type=int, default=20, help="jobs per run (half animate, half talk)")
    ap.add_argument("--workers", default="1,2", help="worker counts to compare")
    ap.add_argument("--size", type=int, default=256, help="crop size of every job")
    ap.add_argument("--frames", type=int, default=25, help="driving frames per animate job")
    ap.add_argument("--no-ray", action="store_true", help="local pool only")
    ap.add_argument("--repeat", type=int, default=1, help="rounds; the fastest run of each setting is kept")
    ap.add_argument("--threads-per-worker", type=int, default=None,
                    help="threads each worker renders with (default: the cores shared out; 1 = each worker one "
                         "core, as Ray actors with num_cpus=1 get on a cluster)")
    ap.add_argument("--manifest-jobs", default="1000,10000", help="job counts for the dry-run memory figure (0 = skip)")
    args = ap.parse_args(argv)
    os.environ.setdefault("AVATAR_CONSENT_POLICY", "research")
    tmp = Path(tempfile.mkdtemp(prefix="avatar-bench-batch-"))
    portrait, driving = _inputs(tmp)
    jobs = _jobs(args.jobs, portrait, driving, args.size, args.frames)
    counts = [int(w) for w in args.workers.split(",")]
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU(s); {args.jobs} jobs (animate {args.frames} frames / "
          f"talk one sentence, size {args.size}); threads per worker: {args.threads_per_worker or 'cores / workers'}")
    results: dict[tuple[str, int], dict] = {}
    executors = ["pool"] + ([] if args.no_ray else ["ray"])
    if not args.no_ray:
        import ray

        t0 = time.perf_counter()
        ray.init(num_cpus=max(counts), include_dashboard=False, log_to_driver=False)
        print(f"ray.init (local, {max(counts)} CPUs): {time.perf_counter() - t0:.1f} s (not in the timings below)")
    # Interleaved (pool, ray per worker count) and repeated, best run kept: on a shared machine
    # the load drifts, and a fixed order would charge the drift to one executor.
    for rep in range(args.repeat):
        for w in counts:
            for ex in executors:
                r = _timed(jobs, tmp / f"out-{ex}-{w}-{rep}", w, ex == "ray", args.threads_per_worker)
                if (ex, w) not in results or r["wall"] < results[ex, w]["wall"]:
                    results[ex, w] = r
    if not args.no_ray:
        ray.shutdown()
    print("| executor | workers | jobs | frames | wall s | jobs/s | frames/s | rendering s | jobs/s rendering |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (ex, w), r in results.items():
        print(f"| {ex} | {w} | {r['jobs']} | {r['frames']} | {r['wall']:.1f} | {r['jobs_s']:.3f} | {r['frames_s']:.1f} "
              f"| {r['span']:.1f} | {r['span_jobs_s']:.3f} |")
    print("(wall: the whole batch.run call, worker start-up and engine loading included; rendering: first job start "
          "to last job end, from the manifest)")
    lo, hi = min(counts), max(counts)
    for ex in executors:
        if hi > lo:
            a, b = results[ex, lo], results[ex, hi]
            print(f"{ex}: scaling {lo}→{hi} workers: {b['jobs_s'] / a['jobs_s']:.2f}× wall, "
                  f"{b['span_jobs_s'] / a['span_jobs_s']:.2f}× rendering (goal ≥ 1.7×)")
    if "ray" in executors:
        for w in counts:
            over = results["ray", w]["wall"] / results["pool", w]["wall"] - 1
            span = results["ray", w]["span"] / results["pool", w]["span"] - 1
            print(f"ray overhead vs pool, {w} worker(s): {100 * over:+.1f} % wall, {100 * span:+.1f} % rendering (goal ≤ 10 %)")
    for n in (int(x) for x in args.manifest_jobs.split(",") if int(x) > 0):
        m = _dry_run_memory(n, portrait, driving, tmp)
        print(f"dry run over {m['total']} jobs ({m['to_run']} to render, manifest of {n // 2 + n % 2}): "
              f"{m['seconds']:.1f} s, peak RSS {m['rss_peak_kib'] / 1024:.0f} MiB "
              f"(+{(m['rss_peak_kib'] - m['rss_before_kib']) / 1024:.1f} MiB over the process after imports)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
