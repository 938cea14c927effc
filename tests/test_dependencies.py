"""What pyproject.toml declares matches what the code imports, and the onnxruntime builds are
exclusive choices."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _name(req: str) -> str:
    return re.split(r"[\s<>=!~;\[]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _expanded(extra: str) -> set[str]:
    """Distribution names an extra installs, self-references (avatar[x]) expanded."""
    out: set[str] = set()
    for req in PROJECT["optional-dependencies"][extra]:
        m = re.fullmatch(r"avatar\[([\w,-]+)\]", req.strip())
        if m:
            for sub in m.group(1).split(","):
                out |= _expanded(sub)
        else:
            out.add(_name(req))
    return out


def test_cpu_and_gpu_onnxruntime_are_exclusive_extras():
    core = {_name(r) for r in PROJECT["dependencies"]}
    assert not {"onnxruntime", "onnxruntime-gpu"} & core
    extras = PROJECT["optional-dependencies"]
    assert _expanded("cpu") == {"onnxruntime"} and "onnxruntime" in _expanded("dev")
    for name in extras:
        assert not {"onnxruntime", "onnxruntime-gpu"} <= _expanded(name), f"[{name}] installs both runtimes"
    gpu = [r for r in extras["gpu"] if _name(r) == "onnxruntime-gpu"]
    trt = [r for r in extras["tensorrt"] if _name(r) == "onnxruntime-gpu"]
    assert gpu == trt, "the gpu and tensorrt extras must ask for the same onnxruntime-gpu"


def test_both_runtimes_installed_is_refused_with_the_fix(monkeypatch):
    from avatar.errors import EngineUnavailable
    from avatar.render import ort_runtime

    monkeypatch.setattr(ort_runtime.metadata, "distribution", lambda name: object())
    with pytest.raises(EngineUnavailable, match="both onnxruntime and onnxruntime-gpu.*pip uninstall -y"):
        ort_runtime.import_onnxruntime()
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    monkeypatch.setattr(ort_runtime, "installed_runtimes", lambda: [])
    with pytest.raises(EngineUnavailable, match=r'avatar\[cpu\].*avatar\[gpu\]'):
        ort_runtime.import_onnxruntime()


def _imported_modules() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "avatar").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"avatar"}


def test_every_third_party_import_is_declared():
    declared = {_name(r) for r in PROJECT["dependencies"]}
    for extra in PROJECT["optional-dependencies"]:
        declared |= _expanded(extra)
    owners = metadata.packages_distributions()
    missing = {}
    for module in sorted(_imported_modules()):
        dists = {d.lower().replace("_", "-") for d in owners.get(module, [])}
        if dists and not dists & declared:
            missing[module] = sorted(dists)
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"
    # tomli only exists on 3.10, where the stdlib has no tomllib
    assert any(_name(r) == "tomli" and "python_version < '3.11'" in r for r in PROJECT["dependencies"])


def test_onnxscript_is_neither_needed_nor_declared(tmp_path):
    """The exporter avatar uses (TorchScript, dynamo=False) runs with onnxscript unimportable."""
    assert "onnxscript" not in _imported_modules()
    assert all(_name(r) != "onnxscript" for extra in PROJECT["optional-dependencies"].values() for r in extra)
    code = ("import sys; sys.modules['onnxscript'] = None\n"
            "import torch, onnx\n"
            "net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())\n"
            f"torch.onnx.export(net.eval(), (torch.zeros(1, 3, 16, 16),), {str(tmp_path / 'n.onnx')!r}, dynamo=False)\n"
            f"onnx.checker.check_model({str(tmp_path / 'n.onnx')!r})\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
