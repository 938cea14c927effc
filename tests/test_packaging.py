"""A wheel (non-editable install) carries everything the default path needs: weights, manifest, assets."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_ships_weights_and_assets(tmp_path):
    setuptools = pytest.importorskip("setuptools", reason="building a wheel offline needs setuptools installed")
    if tuple(int(x) for x in setuptools.__version__.split(".")[:2]) < (70, 1):
        pytest.importorskip("wheel", reason="setuptools < 70.1 builds wheels with the wheel package")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
                           "-q", "-w", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (wheel,) = tmp_path.glob("avatar-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {p.name for p in (ROOT / "weights").iterdir() if p.suffix in (".toml", ".safetensors", ".json")}
    assert "audio2mouth-v1.safetensors" in shipped and "manifest.toml" in shipped
    for name in shipped:
        assert any(n.endswith(f"data/share/avatar/weights/{name}") for n in names), name
    assert any(n.startswith("avatar/assets/") for n in names)
    assert "avatar/cli/__init__.py" in names and "avatar/render/warp.py" in names


def test_installed_weights_folder_is_found(tmp_path, monkeypatch):
    """Without a checkout's weights/, the data-files location under the prefix is used."""
    import avatar.paths as paths

    installed = tmp_path / "share" / "avatar" / "weights"
    installed.mkdir(parents=True)
    (installed / "manifest.toml").write_text("")
    monkeypatch.setattr(paths, "__file__", str(tmp_path / "site" / "avatar" / "paths.py"))
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    assert paths.shipped_weights_dir() == installed
