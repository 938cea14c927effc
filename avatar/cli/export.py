"""``avatar export onnx --checkpoint CKPT --out DIR`` and ``avatar export triton --model-dir DIR --out REPO``."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export", help="export the FOMM networks to ONNX, or an ONNX export to a Triton model repository",
        description="avatar export onnx --checkpoint CKPT --out DIR | avatar export triton --model-dir DIR --out REPO",
    )
    sub = p.add_subparsers(dest="export_command", metavar="TARGET")
    o = sub.add_parser("onnx", help="write kp_detector / source_encoder / generator ONNX graphs and avatar-onnx.json",
                       description="Export a FOMM checkpoint as ONNX graphs (dynamic batch) for `--engine onnx`.")
    o.add_argument("--checkpoint", required=True, help="FOMM checkpoint (.pth.tar / .safetensors) or a manifest name such as vox")
    o.add_argument("--out", required=True, help="output folder (created; must be empty unless --overwrite)")
    o.add_argument("--fp16", action="store_true", help="also write fp16 graphs (*.fp16.onnx; grid sampling and soft-argmax stay fp32)")
    o.add_argument("--int8", action="store_true",
                   help="also write generator.int8.onnx (int8 convolutions, calibrated on face crops; ~2x faster on CPUs with VNNI)")
    o.add_argument("--calibration", nargs="+", metavar="IMAGE",
                   help="face images to calibrate --int8 on (default: the bundled astronaut portrait)")
    o.add_argument("--opset", type=int, default=17, help="ONNX opset, 17..20 (default 17)")
    o.add_argument("--config", default=None, help="FOMM architecture name (default: the checkpoint's embedded config, else vox-256)")
    o.add_argument("--overwrite", action="store_true", help="replace a non-empty --out folder")
    t = sub.add_parser("triton", help="write a Triton model repository (config.pbtxt + 1/model.onnx per network) and validate it",
                       description="Turn an `avatar export onnx` folder into an NVIDIA Triton model repository.")
    t.add_argument("--model-dir", required=True, help="folder made by `avatar export onnx`")
    t.add_argument("--out", required=True, help="repository folder (created; must be empty unless --overwrite)")
    t.add_argument("--max-batch", type=int, default=8, help="max_batch_size of every model (default 8)")
    t.add_argument("--fp16", action="store_true", help="use the export's fp16 graphs")
    t.add_argument("--tensorrt", action="store_true", help="ask Triton's onnxruntime backend for the TensorRT accelerator (FP16)")
    t.add_argument("--cpu", action="store_true", help="instance_group kind KIND_CPU instead of KIND_GPU")
    t.add_argument("--overwrite", action="store_true", help="replace a non-empty --out folder")
    v = sub.add_parser("validate-triton", help="validate a Triton model repository offline")
    v.add_argument("repo", help="repository folder")
    p.set_defaults(func=run, _export_parser=p)


def run(args: argparse.Namespace) -> int:
    action = getattr(args, "export_command", None)
    if action == "onnx":
        return _onnx(args)
    if action == "triton":
        return _triton(args)
    if action == "validate-triton":
        return _validate(args)
    args._export_parser.print_help()
    return 2


def _onnx(args: argparse.Namespace) -> int:
    from ..export.onnx_export import export_onnx
    from ..export.sidecar import read_export

    images = None
    if args.calibration:
        from ..errors import ConfigError
        from ..export.quantize import face_crops

        if not args.int8:
            raise ConfigError("--calibration is for --int8; add --int8 or drop --calibration")
        images = face_crops(args.calibration)
    if args.int8:
        import sys

        print(f"exporting and calibrating the int8 generator on {len(images) if images else 'the bundled'} face crop(s); "
              "this takes a few seconds per image on a CPU", file=sys.stderr)
    out = export_onnx(args.checkpoint, args.out, fp16=args.fp16, int8=args.int8, calibration_images=images, opset=args.opset,
                      overwrite=args.overwrite, config=args.config)
    info = read_export(out, verify_hashes=False)
    for name, spec in info.graphs.items():
        extra = [v[name].file for v in (info.fp16, info.int8) if name in v and v[name].file != spec.file]
        print(f"{out / spec.file}{' (+ ' + ', '.join(extra) + ')' if extra else ''}")
    if info.int8:
        err = info.meta["int8"]["held_out_prediction_error"]
        print(f"int8 generator: prediction differs from float32 by {err['mean_abs']:.4f} mean, {err['max_abs']:.4f} max (held-out samples)")
    flag = " --int8" if info.int8 else ""
    print(f"wrote {out} (opset {info.opset}); render with: avatar animate SOURCE DRIVING --engine onnx --model-dir {out}{flag}")
    return 0


def _triton(args: argparse.Namespace) -> int:
    from ..export.triton import write_repository

    repo = write_repository(args.model_dir, args.out, max_batch=args.max_batch, overwrite=args.overwrite,
                            instance_kind="KIND_CPU" if args.cpu else "KIND_GPU", tensorrt=args.tensorrt, half=args.fp16)
    print(f"wrote and validated Triton model repository {repo}; serve with: tritonserver --model-repository {repo}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from ..export.triton import validate_repository

    for check in validate_repository(args.repo):
        print(f"{check.name}: OK (max_batch_size {check.max_batch_size}; inputs {', '.join(check.inputs)}; outputs {', '.join(check.outputs)})")
    return 0
