"""``avatar batch JOBS --out-dir DIR``: render many animate/talk jobs, locally or on Ray."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("batch", help="render many animate/talk jobs from a JSONL or CSV file (local pool or Ray)",
                       description="Render every job of JOBS (JSONL or CSV: kind, source, driving | audio | text, output, "
                                   "options) into --out-dir. Every job passes the consent gate and is labelled like a "
                                   "single run. Reruns skip finished jobs; see docs/batch.md.")
    p.add_argument("jobs", help="job file (.jsonl or .csv)")
    p.add_argument("--out-dir", required=True, help="output folder or fsspec URL (s3://…, gs://… with its backend installed)")
    p.add_argument("--workers", type=int, default=None, help="worker processes, or Ray actors (default: the CPU count)")
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="run on Ray: alone, a local Ray; with ADDRESS (HOST:PORT, ray://HOST:10001 or auto), that cluster")
    p.add_argument("--ray-timeout", type=float, default=30.0, help="seconds to wait for the Ray cluster to answer")
    p.add_argument("--ray-cpus", type=float, default=1.0, help="CPUs each Ray actor asks for (and the threads it uses)")
    p.add_argument("--ray-gpus", type=float, default=1.0, help="GPUs each Ray actor asks for when its jobs run fomm/onnx on CUDA")
    p.add_argument("--shared-inputs", action="store_true",
                   help="Ray: inputs are on storage every node sees at the same path (default: send them through the object store)")
    p.add_argument("--manifest", help="results JSONL (default: OUT_DIR/manifest.jsonl; JOBS.manifest.jsonl for URL outputs)")
    p.add_argument("--retry-failed", action="store_true", help="re-render jobs the manifest lists as failed")
    p.add_argument("--dry-run", action="store_true", help="validate and plan only: render and write nothing")
    p.add_argument("--consent-store", help="consent database the workers check (default: the user's; a shared path for a fleet)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--threads-per-worker", type=int, default=None,
                   help="CPU threads each worker renders with (default: its share of the cores; --ray-cpus on a cluster)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..batch import run as run_batch

    summary = run_batch(args.jobs, args.out_dir, workers=args.workers, ray=args.ray, manifest=args.manifest,
                        retry_failed=args.retry_failed, dry_run=args.dry_run, progress=not args.quiet,
                        consent_store=args.consent_store, ray_timeout=args.ray_timeout, ray_num_cpus=args.ray_cpus,
                        ray_num_gpus=args.ray_gpus, ray_ship_inputs=not args.shared_inputs,
                        threads_per_worker=args.threads_per_worker)
    print(summary.text())
    return 1 if summary.failed or summary.failed_before else 0
