"""End-to-end live speed: ``python -m avatar.bench live [--seconds 15] [--engine warp] [--size 512]``.

A fake camera (the generated driving clip framed at 640×480, looped, released in real time at
``--camera-fps``, default 30) drives the example portrait at 512 output through the whole live loop: capture thread,
landmarks, motion, render, paste-back, badge + watermark, then each sink set. Prints achieved
fps, capture → output latency (median / p95), stale frames dropped and ms per stage.
``--clone CLIP`` drives a video avatar instead: CLIP's first 60 % (at most 30 s) is cloned into
a temporary store under the research policy, and the live loop renders from its pack.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import tempfile
import threading
from pathlib import Path

import numpy as np


def _fake_camera_clip(path: Path, frames: int = 100, fps: float = 25.0) -> Path:
    """The generated driving clip, 480 px high, centred on a 640×480 canvas."""
    import cv2

    from ..examples import synthetic_driving
    from ..media.video import VideoWriter

    with VideoWriter(path, fps) as w:
        for f in synthetic_driving(frames, fps, 384):
            face = cv2.resize(f, (480, 480), interpolation=cv2.INTER_LINEAR)
            canvas = np.empty((480, 640, 3), np.uint8)
            canvas[:] = face[:, :1].mean(axis=(0, 1)).astype(np.uint8)
            canvas[:, 80:560] = face
            w.write(canvas)
    return path


def _tcp_drain() -> tuple[str, threading.Thread, socket.socket]:
    """A local receiver that reads and discards an MPEG-TS stream."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def run() -> None:
        conn, _ = srv.accept()
        with conn:
            while conn.recv(1 << 16):
                pass

    th = threading.Thread(target=run, daemon=True)
    th.start()
    return f"tcp://127.0.0.1:{srv.getsockname()[1]}", th, srv


def _clone(video: Path, tmp: Path) -> tuple[str, float]:
    """Clone the first 60 % (at most 30 s) of ``video`` into a store under ``tmp``; (avatar id, seconds)."""
    import time

    from ..media.video import probe_video
    from ..pack.clone import clone_video
    from .clone import cut, research_home

    research_home("home-", tmp)  # a throwaway store, not the user's
    part = cut(video, tmp / "clone-part.mp4", 0.0, min(0.6 * probe_video(video).duration, 30.0))
    t0 = time.perf_counter()
    res = clone_video(part, subject=video.stem, statement="evaluation")
    return res.avatar_id, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m avatar.bench live")
    ap.add_argument("--seconds", type=float, default=15.0, help="length of each run")
    ap.add_argument("--size", type=int, default=512, help="internal crop size")
    ap.add_argument("--engine", default="warp")
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--model-dir", default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--sinks", default="none,record+stream", help="comma list of runs: none, record, stream, record+stream")
    ap.add_argument("--clone", type=Path, default=None,
                    help="a talking video: clone it (research policy, temporary store) and drive that video avatar")
    ap.add_argument("--voice", type=Path, default=None,
                    help="voice mode: this media file's sound, paced in real time as a microphone, drives the avatar "
                         "(no camera); with --clone, the clip's own last 40 %% is a natural choice")
    ap.add_argument("--camera-fps", type=float, default=30.0,
                    help="rate of the fake camera (30, as most webcams: above the 25 fps target, so the loop is the limit)")
    args = ap.parse_args(argv)
    os.environ.setdefault("AVATAR_CONSENT_POLICY", "research")  # benchmark outputs are labelled "research"

    from ..config import AvatarConfig, FaceConfig, RenderConfig
    from ..examples import example_portrait
    from ..live import CallbackSink, RecordSink, StreamSink, run_live
    from ..pipeline import Animator

    tmp = Path(tempfile.mkdtemp(prefix="avatar-bench-live-"))
    # voice mode: the file's sound, paced in real time, is the microphone (no camera)
    drive = (dict(audio=str(args.voice)) if args.voice is not None else
             dict(camera=_fake_camera_clip(tmp / "camera.mp4", frames=int(4 * args.camera_fps), fps=args.camera_fps),
                  loop_camera=True))
    avatar_id, source, label = None, example_portrait(), "portrait 512x512"
    if args.clone is not None:
        avatar_id, build_s = _clone(args.clone, tmp)
        source, label = None, f"video avatar of {args.clone.name} (cloned in {build_s:.1f} s)"
    config = AvatarConfig(face=FaceConfig(size=args.size),
                          render=RenderConfig(engine=args.engine, device=args.device, checkpoint=args.checkpoint,
                                              model_dir=args.model_dir))
    animator = Animator(config)
    driver = (f"voice: {args.voice.name} as a real-time microphone" if args.voice is not None
              else f"camera 640x480 @ {args.camera_fps:g} fps (file, looped, real-time)")
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU(s); engine {args.engine} on {args.device}; "
          f"{driver}; {label}, crop {args.size}")
    print("| sinks | seconds | frames | fps | captured | dropped | latency median ms | latency p95 ms | "
          "landmarks | motion | render | paste | label | sinks ms |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for run in args.sinks.split(","):
        parts = set(run.split("+"))
        sinks = []
        drain = None
        if "record" in parts:
            sinks.append(RecordSink(tmp / f"{run}.mp4", overwrite=True))
        if "stream" in parts:
            url, th, srv = _tcp_drain()
            drain = (th, srv)
            sinks.append(StreamSink(url))
        if not sinks:
            sinks.append(CallbackSink(lambda f, t: None, name="none"))
        rep = run_live(config, source, avatar_id=avatar_id, animator=animator, sinks=sinks, max_seconds=args.seconds,
                       handle_sigint=False, **drive)
        if drain is not None:
            drain[0].join(5)
            drain[1].close()
        t = rep.timings_ms
        sink_ms = sum(v for k, v in t.items() if k.startswith("sink:"))
        stages = " | ".join(f"{t.get(k, 0.0):.1f}" for k in ("landmarks", "motion", "render", "paste", "label"))
        print(f"| {run} | {rep.seconds:.1f} | {rep.frames} | {rep.fps:.1f} | {rep.captured} | {rep.dropped} | "
              f"{rep.latency_ms_median:.1f} | {rep.latency_ms_p95:.1f} | {stages} | {sink_ms:.1f} |")
    heard = "the sound heard (its output copy is delayed to match)" if args.voice is not None else "camera frame released"
    print(f"(engine that rendered: {animator.engine.name}; latency: {heard} → output handed to every "
          "sink; stage columns: ms per output frame)")
    return 0
