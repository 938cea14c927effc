"""`avatar live` from the command line: Ctrl-C ends cleanly with a complete recording; clear errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import av

from avatar.cli import main

CONSENT = ["--consent", "I agree to be animated live for tests", "--subject", "Test Subject"]
AVATAR = [sys.executable, "-c", "import sys; from avatar.cli import main; sys.exit(main())"]


def test_ctrl_c_closes_the_recording_cleanly(tmp_path, portrait_path, driving_clip):
    from avatar.media.video import probe_video
    from avatar.output.provenance import read_c2pa

    out = tmp_path / "session.mp4"
    cmd = [*AVATAR, "live", str(portrait_path), "--camera", str(driving_clip), "--loop", "--record", str(out),
           "--size", "256", *CONSENT]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    lines: list[str] = []
    running = threading.Event()

    def read_err() -> None:
        for line in proc.stderr:
            lines.append(line)
            if line.startswith("live:"):  # the first status line: frames are flowing
                running.set()

    reader = threading.Thread(target=read_err, daemon=True)
    reader.start()
    try:
        assert running.wait(90), "no status line from avatar live:\n" + "".join(lines[-20:])
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        stdout, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(5)
    assert proc.returncode == 0, "".join(lines[-20:])
    assert "stopped: interrupted" in stdout
    info = probe_video(out)  # complete and playable
    assert info.frame_count > 10
    with av.open(str(out)) as c:
        assert c.metadata.get("ai_generated") == "true"
        frames = sum(1 for _ in c.decode(video=0))
    assert frames == info.frame_count
    assert read_c2pa(out)["state"] != "absent"
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]  # no temp file left behind


def test_cli_errors_are_one_line(tmp_path, portrait_path, driving_clip, capsys):
    def run(*args):
        code = main(["live", *args])
        return code, capsys.readouterr().err.strip()

    code, err = run(str(portrait_path), "--camera", str(driving_clip), "--record", str(tmp_path / "o.mp4"))
    assert code == 1 and "consent" in err.lower()  # no consent recorded yet: refused before anything runs
    code, err = run(str(portrait_path), "--camera", str(driving_clip), "--size", "256", *CONSENT)
    assert code == 1 and "at least one output" in err
    code, err = run(str(portrait_path), "--camera", str(driving_clip), "--virtual-cam", *CONSENT)
    assert code == 1 and "v4l2loopback" in err and "OBS" in err
    code, err = run(str(portrait_path), "--camera", str(tmp_path / "none.mp4"), "--record", str(tmp_path / "o.mp4"),
                    "--size", "256", *CONSENT)
    assert code == 1 and "not found" in err and err.count("\n") == 0
    code, err = run("--camera", str(driving_clip), "--record", str(tmp_path / "o.mp4"))
    assert code == 1 and "PORTRAIT or --avatar" in err
    assert not (tmp_path / "o.mp4").exists()
