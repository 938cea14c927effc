"""export/trtexec_plans.py: trtexec command lines built from an export's sidecar."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import onnx

SCRIPT = Path(__file__).resolve().parents[3] / "export" / "trtexec_plans.py"


def test_commands_match_every_graph_input(small_export, tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), str(small_export), "--out", str(tmp_path / "plans"),
                           "--max-batch", "4", "--fp16", "--dry-run"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 3
    for line in lines:
        onnx_path = Path(line.split("--onnx=")[1].split()[0])
        graph = onnx.load(str(onnx_path), load_external_data=False).graph
        names = [i.name for i in graph.input]
        for flag, batch in (("--minShapes=", 1), ("--maxShapes=", 4)):
            spec = line.split(flag)[1].split()[0]
            given = dict(item.split(":") for item in spec.split(","))
            assert sorted(given) == sorted(names)
            assert all(v.startswith(f"{batch}x") for v in given.values())
        assert ("--fp16" in line) == ("kp_detector" not in onnx_path.name)
    assert not (tmp_path / "plans").exists()  # dry run writes nothing


def test_not_an_export_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path), "--dry-run"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.startswith("trtexec_plans: error:") and "Traceback" not in proc.stderr
