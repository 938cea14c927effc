"""A process killed (SIGKILL) in the middle of writing leaves a consistent, openable store."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

_WRITER = textwrap.dedent("""
    import sys, numpy as np
    from avatar.output.consent import ConsentStore, Scope
    store = ConsentStore(sys.argv[1])
    img = np.full((64, 64, 3), 128, np.uint8)
    desc = np.arange(16, dtype=np.float32)
    i = 0
    while True:
        rec = store.clone(img, source_sha256=f"{i:064x}", subject=f"s{i}", granted_by="subject",
                          statement="ok " * 200, scope=Scope(), expires=None, descriptor=desc)
        if i % 3 == 0:
            store.revoke(rec.avatar_id, "test")
        i += 1
        if i == 5:
            print("writing", flush=True)
""")


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")
def test_sigkill_mid_write_leaves_consistent_store(tmp_path):
    db = tmp_path / "avatars.sqlite3"
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(db)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"
        time.sleep(0.4)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rows = con.execute("SELECT avatar_id, subject, statement, source_sha256, descriptor, image_file FROM avatars").fetchall()
    con.close()
    assert len(rows) >= 5
    for avatar_id, subject, statement, sha, desc, image_file in rows:   # every row complete
        assert subject.startswith("s") and statement.count("ok") == 200 and len(sha) == 64
        assert len(desc) == 16 * 4 and image_file == f"{avatar_id}.png"
    from avatar.output.consent import ConsentStore

    store = ConsentStore(db)   # reopens (WAL recovery) and reads every record
    recs = store.list()
    assert len(recs) >= len(rows)
    assert all(store.source_image(r.avatar_id).shape == (64, 64, 3) for r in recs)
