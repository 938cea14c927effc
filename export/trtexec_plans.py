"""Build TensorRT plan files for an `avatar export onnx` folder with NVIDIA's `trtexec`.

    python export/trtexec_plans.py models/vox-onnx --out plans [--max-batch 8] [--fp16] [--dry-run]

Shapes and input names come from the export's ``avatar-onnx.json``, so the profiles always
match the graphs (batch 1 … --max-batch, optimised for the maximum). Plans are specific to the
GPU model and TensorRT version: build them on the machine that serves. ``--dry-run`` (or a
machine without trtexec) prints the commands instead of running them.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # usable from a source checkout

from avatar.export.sidecar import GRAPHS, read_export  # noqa: E402


def _shapes(inputs, batch: int) -> str:
    return ",".join(f"{t.name}:{'x'.join(str(d) for d in t.concrete(batch))}" for t in inputs)


def commands(model_dir: Path, out: Path, max_batch: int = 8, fp16: bool = False) -> list[list[str]]:
    """One trtexec command line per graph of the export (fp32 ONNX in; ``--fp16`` lets TensorRT pick)."""
    info = read_export(model_dir)
    cmds = []
    for name in GRAPHS:
        path, spec = info.graph(name)
        cmd = ["trtexec", f"--onnx={path}", f"--saveEngine={out / (name + '.plan')}",
               f"--minShapes={_shapes(spec.inputs, 1)}", f"--optShapes={_shapes(spec.inputs, max_batch)}",
               f"--maxShapes={_shapes(spec.inputs, max_batch)}"]
        if fp16 and name != "kp_detector":  # the keypoint soft-argmax needs fp32 (export/README.md)
            cmd.append("--fp16")
        cmds.append(cmd)
    return cmds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_dir", type=Path, help="folder made by `avatar export onnx`")
    ap.add_argument("--out", type=Path, default=Path("plans"), help="where the .plan files go")
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--fp16", action="store_true", help="allow fp16 layers (not in the keypoint detector)")
    ap.add_argument("--dry-run", action="store_true", help="print the commands only")
    args = ap.parse_args(argv)
    if not 1 <= args.max_batch <= 256:
        ap.error(f"--max-batch must be in [1, 256], got {args.max_batch}")
    try:
        cmds = commands(args.model_dir, args.out, args.max_batch, args.fp16)
    except Exception as exc:  # noqa: BLE001  (one line for the user, whatever went wrong)
        print(f"trtexec_plans: error: {exc}", file=sys.stderr)
        return 1
    run = not args.dry_run and shutil.which("trtexec") is not None
    if not args.dry_run and not run:
        print("trtexec not found (it ships with TensorRT: /usr/src/tensorrt/bin/trtexec); commands:", file=sys.stderr)
    if run:
        args.out.mkdir(parents=True, exist_ok=True)
    for cmd in cmds:
        print(shlex.join(cmd))
        if run:
            done = subprocess.run(cmd, check=False)
            if done.returncode:
                print(f"trtexec_plans: error: trtexec failed for {cmd[1]} (exit {done.returncode})", file=sys.stderr)
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
