"""Median cost of the demo's two hot paths at the default settings (or --size/--max-size).

    python demos/bench_demo.py [--size 512] [--max-size 1920] [--frames 50] [--repeats 3]

Animate: one request of the Animate tab (probe, consent gate, render, label, encode) on the
bundled example clip. Live: the Live tab's per-frame function on webcam-sized frames.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--max-size", type=int, default=1920)
    ap.add_argument("--frames", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="avatar-bench-demo-"))
    os.environ["AVATAR_HOME"] = str(tmp / "home")
    import torch

    torch.set_num_threads(1)
    from avatar.config import AvatarConfig, FaceConfig, OutputConfig
    from avatar.demo.live import LiveSessions
    from avatar.demo.service import DemoService
    from avatar.demo.settings import DemoSettings
    from avatar.examples import example_portrait, synthetic_driving, write_example_driving
    from avatar.media.image import save_image

    cfg = AvatarConfig(face=FaceConfig(size=args.size), output=OutputConfig(max_size=args.max_size))
    svc = DemoService(DemoSettings(config=cfg, store_path=tmp / "avatars.sqlite3"))
    portrait = save_image(tmp / "portrait.png", example_portrait())
    driving = write_example_driving(tmp / "driving.mp4", frames=args.frames)
    rec = svc.create_avatar(portrait, subject="Bench", granted_by="subject", statement="benchmark",
                            scopes=["video", "live"], commercial=False, expires="", confirmed=True)
    anim = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        svc.animate(rec.avatar_id, driving, progress=False)
        anim.append(time.perf_counter() - t0)
    frames = synthetic_driving(frames=args.frames, size=480)
    sessions = LiveSessions(svc)
    sessions.process("bench", rec.avatar_id, frames[0])  # opens the session
    per = []
    for f in frames[1:]:
        t0 = time.perf_counter()
        sessions.process("bench", rec.avatar_id, f)
        per.append(time.perf_counter() - t0)
    sessions.close_all()
    svc.close()
    a = statistics.median(anim)
    print(f"animate request ({args.frames} frames, size {args.size}, max_size {args.max_size}): median {a:.2f} s "
          f"= {args.frames / a:.1f} frames/s over {args.repeats} runs")
    print(f"live frame (480x480 webcam): median {1000 * statistics.median(per):.1f} ms "
          f"= {1 / statistics.median(per):.1f} fps sustainable, over {len(per)} frames")
    return 0


if __name__ == "__main__":
    sys.exit(main())
