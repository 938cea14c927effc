"""CLI help and messages: defaults in --help, one boolean label option, refusals naming the command
run, the consent store's location, `avatars list` columns, native log chatter silenced."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from avatar.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]


def _help(*cmd: str) -> str:
    parser = build_parser()
    for action in parser._actions:
        if action.dest == "command":
            sub = action.choices[cmd[0]]
            for a in sub._actions:
                if len(cmd) > 1 and getattr(a, "choices", None) and cmd[1] in (a.choices or {}):
                    return a.choices[cmd[1]].format_help()
            return " ".join(sub.format_help().split())
    raise AssertionError(cmd)


def _defaults():
    from avatar.config import FaceConfig, OutputConfig

    return [("animate", "--size", FaceConfig().size), ("animate", "--crf", OutputConfig().crf),
            ("animate", "--smoothing", 1.0), ("animate", "--max-size", OutputConfig().max_size),
            ("animate", "--crop-scale", FaceConfig().crop_scale), ("talk", "--size", FaceConfig().size),
            ("live", "--smoothing", 1.0), ("live", "--consent-check", 5), ("demo", "--max-upload-mb", 50)]


@pytest.mark.parametrize("cmd, option, default", _defaults())
def test_help_shows_every_default(cmd, option, default):
    text = _help(cmd)
    default = re.escape(str(default))
    block = re.search(re.escape(option) + r" [A-Z_]+ (.*?)(?= --|$)", text).group(1)
    assert re.search(r"\(default:? " + default + r"\)", block), (option, block)


def test_live_visible_label_is_one_boolean_option():
    text = _help("live")
    assert text.count("--visible-label, --no-visible-label") == 1 and "(default: True)" in text
    parser = build_parser()
    assert parser.parse_args(["live", "p.png", "--preview"]).visible_label is True
    assert parser.parse_args(["live", "p.png", "--no-visible-label"]).visible_label is False
    assert parser.parse_args(["animate", "a", "b", "-o", "x.mp4"]).visible_label is False


@pytest.mark.parametrize("cmd", ["talk", "live"])
def test_consent_refusal_names_the_command_that_was_run(cmd, tmp_path, portrait_path, driving_clip, capsys):
    out = tmp_path / "out.mp4"
    args = {"talk": ["talk", str(portrait_path), str(driving_clip), "-o", str(out), "--quiet"],
            "live": ["live", str(portrait_path), "--camera", str(driving_clip), "--record", str(out), "--quiet"]}[cmd]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert f"`avatar {cmd} ... --consent" in err and "avatar animate" not in err, err
    assert not out.exists()


def test_store_location_is_documented_and_true(tmp_path, monkeypatch):
    from avatar.paths import avatar_home

    monkeypatch.delenv("AVATAR_HOME")
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    if sys.platform.startswith("linux"):
        assert avatar_home() == tmp_path / ".local" / "share" / "avatar"
    text = _help("avatars")
    assert "~/.local/share/avatar" in text and "$AVATAR_HOME" in text
    readme = (ROOT / "README.md").read_text()
    assert "~/.local/share/avatar" in readme


def test_avatars_list_has_a_header_and_dates(tmp_path, portrait_path, capsys):
    db = tmp_path / "a.sqlite3"
    assert main(["clone", str(portrait_path), "--subject", "Eileen", "--consent", "yes", "--expires", "2099-01-02",
                 "--store", str(db)]) == 0
    captured = capsys.readouterr()
    avatar_id = captured.out.strip()
    token = re.search(r"revocation token for \S+ .*: (\S+)$", captured.err.strip()).group(1)
    assert main(["avatars", "--store", str(db), "list"]) == 0
    header, row = capsys.readouterr().out.strip().splitlines()
    assert header.split() == ["ID", "STATUS", "SUBJECT", "OWNER", "CREATED", "EXPIRES", "SCOPE"]
    from datetime import date

    assert row.split()[:6] == [avatar_id, "active", "Eileen", row.split()[3], date.today().isoformat(), "2099-01-02"]
    # the subject withdraws with the token alone (no --reason needed); a wrong token is refused
    assert main(["avatars", "--store", str(db), "revoke", avatar_id, "--token", "wrong"]) == 1
    assert "does not belong" in capsys.readouterr().err
    assert main(["avatars", "--store", str(db), "revoke", avatar_id, "--token", token]) == 0
    assert "revoked" in capsys.readouterr().out


NOISE = re.compile(r"^(W0000|I0000|INFO: Created TensorFlow Lite|WARNING: All log messages before)", re.M)


def test_native_log_chatter_is_silenced_unless_verbose(tmp_path, portrait_path):
    """A real command that starts mediapipe's graphs, in a fresh process with mediapipe's own log
    variables unset: quiet by default, the chatter is back with --verbose."""
    env = {k: v for k, v in os.environ.items() if k not in ("GLOG_minloglevel", "TF_CPP_MIN_LOG_LEVEL",
                                                            "AVATAR_NATIVE_LOGS")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["AVATAR_HOME"] = str(tmp_path / "home")

    def run(*extra: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "avatar.cli", *extra, "clone", str(portrait_path), "--subject", "E",
               "--consent", "yes"]
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)

    quiet = run()
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout.startswith("av_") and "revocation token" in quiet.stderr
    assert not NOISE.search(quiet.stderr), quiet.stderr
    loud = run("--verbose")
    assert loud.returncode == 0, loud.stderr
    assert NOISE.search(loud.stderr), "mediapipe printed nothing natively: this test no longer shows the filter"
