"""``avatar weights list | fetch NAME [--url URL] | verify PATH``: manage downloaded checkpoints."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("weights", help="list, download and verify model checkpoints", description="Manage model checkpoints: avatar weights list | fetch NAME [--url URL] | verify PATH")
    sub = p.add_subparsers(dest="weights_command", metavar="ACTION")
    sub.add_parser("list", help="show the known checkpoints and whether they are downloaded")
    f = sub.add_parser("fetch", help="download a checkpoint into the cache (resumes, checks digests)")
    f.add_argument("name", help="checkpoint name from `avatar weights list` (e.g. vox)")
    f.add_argument("--url", help="download from this direct URL instead of the manifest's")
    f.add_argument("--force", action="store_true", help="download again even if a good copy is cached")
    f.add_argument("--quiet", action="store_true", help="no progress bar")
    v = sub.add_parser("verify", help="print a file's sha256 and check it against the manifest and the FOMM layout")
    v.add_argument("path", help="checkpoint file")
    v.add_argument("--name", help="manifest entry to compare with (default: matched by file name)")
    v.add_argument("--no-load", action="store_true", help="only digest the file; do not open it as a checkpoint")
    p.set_defaults(func=run, _weights_parser=p)


def run(args: argparse.Namespace) -> int:
    action = getattr(args, "weights_command", None)
    if action == "list":
        return _list()
    if action == "fetch":
        return _fetch(args)
    if action == "verify":
        return _verify(args)
    args._weights_parser.print_help()
    return 2


def _list() -> int:
    from .. import paths
    from ..weights_registry import load_manifest

    rows = [("NAME", "FILE", "SIZE", "SHA256", "CONFIG", "CACHED")]
    for e in load_manifest().values():
        rows.append(
            (
                e.name,
                e.file,
                f"{e.size / 2**20:.1f} MiB" if e.size else "unknown",
                e.sha256[:12] + "…" if e.sha256 else "unknown",
                e.config,
                "yes" if e.cached_path.is_file() else "no",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    print(f"\ncache: {paths.cache_dir()}  (set $AVATAR_HOME to move it)")
    for e in load_manifest().values():
        print(f"{e.name}: {e.description}; licence: {e.license}")
    return 0


def _fetch(args: argparse.Namespace) -> int:
    from ..weights_registry import fetch

    path = fetch(args.name, url=args.url, progress=not args.quiet, force=args.force)
    print(path)
    return 0


def _verify(args: argparse.Namespace) -> int:
    from ..weights_registry import verify

    res = verify(args.path, name=args.name)
    print(f"file:   {res.path}")
    print(f"size:   {res.size} bytes")
    print(f"sha256: {res.sha256}")
    print(f"md5:    {res.md5}")
    if res.entry is None:
        print("manifest: no entry with this file name (use --name NAME to compare)")
    elif res.problems:
        for problem in res.problems:
            print(f"MISMATCH with {res.entry.name}: {problem}")
    elif res.ok is None:
        print(f"manifest: {res.entry.name} pins no digest; pin sha256 = \"{res.sha256}\" after checking the source")
    else:
        print(f"manifest: matches {res.entry.name}")
    layout_ok = True
    if not args.no_load:
        layout_ok = _check_layout(res.path, res.entry.config if res.entry else "vox-256")
    return 0 if not res.problems and layout_ok else 1


def _check_layout(path, config_name: str) -> bool:
    import torch

    from ..errors import WeightsError
    from ..render.fomm.config import CONFIGS
    from ..render.fomm.generator import OcclusionAwareGenerator
    from ..render.fomm.keypoint_detector import KPDetector
    from ..render.fomm.weights import check_state_dict, read_checkpoint

    cfg = CONFIGS.get(config_name, CONFIGS["vox-256"])
    try:
        state = read_checkpoint(path)
        with torch.device("meta"):  # shapes only, no memory
            models = {"kp_detector": KPDetector(cfg), "generator": OcclusionAwareGenerator(cfg)}
        for part, model in models.items():
            check_state_dict(part, state[part], model, source=str(path))
    except WeightsError as exc:
        print(f"layout: FAILED: {exc}")
        return False
    n = {p: len(sd) for p, sd in state.items()}
    print(f"layout: OK for FOMM {config_name} ({n['kp_detector']} kp_detector + {n['generator']} generator tensors)")
    return True
