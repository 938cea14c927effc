"""The core: face → motion → render → output. Every front-end (CLI, API, demo, live) uses it.

``Animator.prepare`` loads a portrait, passes the consent gate and precomputes the engine
state; ``Animator.stream`` turns driving frames (or landmark targets) into output frames;
``Animator.animate`` writes a labelled video (MP4, MOV, WebM), preview (GIF, WebP) or PNG
sequence atomically (:mod:`avatar.media.formats`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import math
import threading
import time
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from .config import AvatarConfig
from .errors import InputError, NoFaceError
from .face.blend import PasteBack
from .face.crop import DrivingCrop, crop_box, crop_matrix, invert_affine, make_crop, transform_points
from .face.landmarks import Face, LandmarkDetector, select_face
from .face.lids import fit_eye_outlines
from .motion.transfer import MotionTransfer, best_reference
from .render.base import Engine
from .render.registry import create_engine
from .types import DriveTarget, FaceCrop

log = logging.getLogger(__name__)

Use = str  # "video" | "audio" | "live"


class StageTimer:
    """Accumulates wall time per pipeline stage."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)

    def time(self, stage: str) -> "_Tick":
        return _Tick(self, stage)

    def add(self, stage: str, seconds: float, n: int = 1) -> None:
        self.totals[stage] += seconds
        self.counts[stage] += n

    def per_frame_ms(self, frames: int) -> dict[str, float]:
        return {k: 1000.0 * v / max(frames, 1) for k, v in self.totals.items()}


class _Tick:
    def __init__(self, timer: StageTimer, stage: str) -> None:
        self.timer, self.stage = timer, stage

    def __enter__(self) -> None:
        self.t0 = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.timer.add(self.stage, time.perf_counter() - self.t0)


@dataclass(eq=False)
class PreparedSource:
    """A portrait ready to animate: its (capped) frame, face crop, engine state and consent grant."""

    frame: np.ndarray
    crop: FaceCrop
    state: Any
    paste: PasteBack
    grant: Any = None
    name: str = "source"


@dataclass
class AnimationResult:
    """What :meth:`Animator.animate` produced."""

    path: Path | str | None
    frames: int
    fps: float
    seconds: float
    timings_ms: dict[str, float] = field(default_factory=dict)
    provenance: dict[str, str] = field(default_factory=dict)
    faces_missing: int = 0
    once_s: dict[str, float] = field(default_factory=dict)  # one-off stages: prepare, reference, finish, sign

    @property
    def achieved_fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("inf")


def one_blas_thread(fn: Callable) -> Callable:
    """Run ``fn`` with BLAS (OpenBLAS, MKL) on one thread.

    The pipeline's BLAS calls are tiny (similarity fits, 3x3 solves, per frame); BLAS worker
    threads gain nothing on them and spin-wait between calls: on a 2-core machine that spinning
    took 3.8 s of system time in a 7.7 s ``animate`` run and slowed the real work beside it.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"):
            return fn(*args, **kwargs)

    return wrapper


def is_avatar_id(source: Any) -> bool:
    """True for an avatar id (``av_`` + 12 hex digits) given where a portrait path would be."""
    import re

    return isinstance(source, str) and re.fullmatch(r"av_[0-9a-f]{12}", source) is not None and not Path(source).exists()


def _where(name: str, frame: int | None = None) -> str:
    return name if frame is None else f"{name} (frame {frame})"


class Animator:
    """Animates portraits with one engine.

    Args:
        config: all settings; defaults are the embedded warp engine at 512 px.
        engine: an engine instance (default: built from ``config.render``).
        consent_store: where consent records live (default: the user's store).
    """

    def __init__(self, config: AvatarConfig | None = None, engine: Engine | None = None, consent_store: Any = None) -> None:
        self.config = config or AvatarConfig()
        self.engine = engine or create_engine(self.config.render)
        self.engine.configure(self.config.motion)
        self._store = consent_store
        self._landmark_engine = None
        self._landmark_lock = threading.Lock()

    def detector(self, video: bool) -> LandmarkDetector:
        """A landmark detector with this animator's face settings (tracking mode for video)."""
        face = self.config.face
        return LandmarkDetector(video=video, min_confidence=face.min_confidence, backend=face.backend)

    # -- source ---------------------------------------------------------------------------
    def prepare(self, source: Any, *, use: Use = "video", avatar_id: str | None = None,
                name: str | None = None) -> PreparedSource:
        """Load a portrait (path, bytes or array), check consent for ``use``, detect and crop its face.

        Every animation path starts here, so the consent gate cannot be skipped: the grant it
        returns is what labels the output.

        Raises: InputError / NoFaceError for unusable images, ConsentError when no consent covers the use.
        """
        from .media.image import load_image, resize_max

        label = name or (str(source) if isinstance(source, (str, Path)) else "the portrait")
        stored = is_avatar_id(source)
        if stored:  # an avatar id where a portrait path would be: the avatar's own image
            avatar_id = avatar_id or str(source)
        if avatar_id is not None:
            self._use_avatar_pack(avatar_id)
        cfg = self.config
        image = self._store_or_default().source_image(avatar_id) if stored else load_image(source)
        frame = resize_max(image, cfg.output.max_size)
        with self.detector(video=False) as det:
            face = select_face(det.detect(frame), cfg.face.face_index, label, cfg.face.require_single)
        grant = self._check_consent(None if stored else source, None if stored else frame, use=use, avatar_id=avatar_id)
        crop, state, paste = self._source_state(frame, face.landmarks, use)
        state = self.engine.for_use(state, use)
        return PreparedSource(frame, crop, state, paste, grant, label)

    def for_speech(self, prepared: PreparedSource) -> PreparedSource:
        """``prepared`` (checked for its own use, e.g. live) made ready to speak: the engine's crop
        and state for speech (a video avatar talks over its own footage)."""
        lm = transform_points(invert_affine(prepared.crop.crop_from_frame), prepared.crop.landmarks)
        crop, state, paste = self._source_state(prepared.frame, lm, "audio")
        return dataclasses.replace(prepared, crop=crop, state=self.engine.for_use(state, "audio"), paste=paste)

    def _source_state(self, frame: np.ndarray, landmarks: np.ndarray, use: str = "video") -> tuple[FaceCrop, Any, PasteBack]:
        """Crop, engine state and paste-back for a portrait frame. No consent check: callers are
        :meth:`prepare` (after the gate) and speed measurements that show nothing."""
        size = self.config.face.size
        face = self.config.face
        scale = self.engine.crop_scale(face.crop_scale, use)
        if scale != face.crop_scale:
            face = dataclasses.replace(face, crop_scale=scale)
        m = crop_matrix(crop_box(landmarks, face), size)
        crop = make_crop(frame, landmarks, m, size)
        # on drawn eyes the tracker's lids lie inside the eye, and blinks stayed half open
        crop = dataclasses.replace(crop, landmarks=fit_eye_outlines(crop.image, crop.landmarks).astype(crop.landmarks.dtype))
        state = self.engine.prepare(crop)
        return crop, state, PasteBack(frame, m, size, source_crop=crop.image, restore_detail=self.config.output.restore_detail,
                                      plate=self.engine.background_plate(state))

    def _store_or_default(self) -> Any:
        from .output.consent import ConsentStore

        if self._store is None:
            self._store = ConsentStore()
        return self._store

    def _use_avatar_pack(self, avatar_id: str) -> None:
        """A video avatar renders from its pack: the default engine becomes "keyframes" (an engine
        chosen explicitly, e.g. fomm, stays)."""
        pack = self._store_or_default().pack_dir(avatar_id)
        render = self.config.render
        if pack is None or render.engine not in ("warp", "keyframes") or render.pack == str(pack):
            return
        self.config = dataclasses.replace(self.config, render=dataclasses.replace(render, engine="keyframes", pack=str(pack)))
        # the warp engine it replaces holds nothing to release (and may belong to a caller's pool)
        self.engine = create_engine(self.config.render)
        self.engine.configure(self.config.motion)

    def _check_consent(self, source: Any, frame: np.ndarray | None, *, use: Use, avatar_id: str | None) -> Any:
        from .media.image import sha256_file
        from .output.consent import check_consent

        store = self._store_or_default()
        sha = sha256_file(source) if isinstance(source, (str, Path)) else None
        return check_consent(store, image=frame, use=use, source_sha256=sha, avatar_id=avatar_id)

    # -- motion ---------------------------------------------------------------------------
    def transfer(self, source: PreparedSource, fps: float) -> MotionTransfer:
        return MotionTransfer(source.crop.landmarks, self.config.motion, fps)

    def stream(self, source: PreparedSource, frames: Iterable[np.ndarray], fps: float, *,
               reference: np.ndarray | None = None, landmarks: Sequence[np.ndarray | None] | None = None,
               reference_frame: np.ndarray | None = None, name: str = "driving video", timer: StageTimer | None = None,
               on_frame: Callable[[int], None] | None = None,
               finish: Callable[[np.ndarray], np.ndarray] | None = None) -> Iterator[np.ndarray]:
        """Driving frames → output frames (full portrait, or the crop when paste-back is off).

        reference: (478, 3) landmarks of the neutral driving reference; None takes the first
        frame with a face. landmarks: the driving face's landmarks per frame (None where no
        face) when already tracked (see :meth:`landmarks_of`); then frames are not re-detected.
        reference_frame: the image ``reference`` was found in; engines that read driving images
        (FOMM, ONNX, the warp's shading) then take their reference crop from it too, else from
        the first frame.
        Frames without a face hold the last pose. ``finish`` (e.g. labelling) is applied to
        each output frame where it is rendered, so it runs side by side too.
        """
        timer = timer or StageTimer()
        transfer = self.transfer(source, fps)
        uses_image = self.engine.uses_driving_image
        crops = DrivingCrop(self.config.face, reference_frame, reference)
        batch: list[DriveTarget] = []
        last_target: np.ndarray | None = None
        last_drive: FaceCrop | None = None
        with contextlib.ExitStack() as stack:
            render = stack.enter_context(self.renderer(source, timer, finish))
            # Landmarks tracked up front need no detector (a mediapipe graph costs ~0.1 s to start).
            det = stack.enter_context(self.detector(video=True)) if landmarks is None else None
            for i, frame in enumerate(frames):
                if landmarks is not None:
                    lm = landmarks[i] if i < len(landmarks) else None
                    face = None if lm is None else Face(lm)
                else:
                    with timer.time("landmarks"):
                        face = self._driving_face(det.detect(frame))
                with timer.time("motion"):
                    if face is None:
                        if last_target is None:
                            raise NoFaceError(f"no face found in {_where(name, i)}; the driving video must show a face")
                        target = last_target  # hold the last good pose
                        timer.add("faces_missing", 0.0)
                    else:
                        if not transfer.has_reference:
                            transfer.set_reference(reference if reference is not None else face.landmarks, clip=landmarks)
                        target = transfer(face.landmarks).astype(np.float32)
                    last_target = target
                    if not uses_image:
                        drive = None
                    elif face is None and not self.engine.needs_driving_image:
                        drive = last_drive  # an engine that only uses the image keeps the last one with a face
                    else:
                        drive = crops(frame, None if face is None else face.landmarks)
                    last_drive = drive
                    ref = crops.reference if self.config.motion.mode == "relative" else None
                    batch.append(DriveTarget(target, drive, ref))
                if len(batch) >= self.config.render.batch_size:
                    for out in render.submit(batch):
                        yield from out
                    batch = []
                if on_frame:
                    on_frame(i)
            if batch:
                for out in render.submit(batch):
                    yield from out
            for out in render.drain():
                yield from out

    def stream_targets(self, source: PreparedSource, targets: Iterable[np.ndarray], *,
                       timer: StageTimer | None = None,
                       finish: Callable[[np.ndarray], np.ndarray] | None = None) -> Iterator[np.ndarray]:
        """(478, 3) target landmarks in source-crop pixels → output frames (speech, scripted motion);
        ``finish`` as in :meth:`stream`."""
        timer = timer or StageTimer()
        batch: list[DriveTarget] = []
        needs_image = self.engine.needs_driving_image
        ref = None
        with self.renderer(source, timer, finish) as render:
            for lm in targets:
                drive = None
                if needs_image:  # image-driven engines get the landmark rendering as their driving frame
                    drive = self._landmark_driving(source, lm)
                    ref = ref or self._landmark_driving(source, source.crop.landmarks)
                batch.append(DriveTarget(np.asarray(lm, np.float32), drive, ref))
                if len(batch) >= self.config.render.batch_size:
                    for out in render.submit(batch):
                        yield from out
                    batch = []
            if batch:
                for out in render.submit(batch):
                    yield from out
            for out in render.drain():
                yield from out

    def _landmark_driving(self, source: PreparedSource, landmarks: np.ndarray) -> FaceCrop:
        from .render.warp import WarpEngine

        with self._landmark_lock:  # one animator may serve several streams at once
            if self._landmark_engine is None:
                self._landmark_engine = (WarpEngine(self.config.render), OrderedDict())
            engine, cache = self._landmark_engine
            # prepared once per source (setdefault's default was prepared anew on every frame,
            # about 2 s each); the entry keeps its source alive, so a later source never inherits its id
            hit = cache.get(id(source))
            if hit is None or hit[0] is not source:
                hit = cache[id(source)] = (source, engine.prepare(source.crop))
                while len(cache) > _LANDMARK_SOURCES:
                    cache.popitem(last=False)
            cache.move_to_end(id(source))
        img = engine.render_one(hit[1], landmarks)
        return dataclasses.replace(source.crop, image=img, landmarks=np.asarray(landmarks, np.float32))

    def _frame_threads(self) -> int:
        """Frames worked on at once: :attr:`RenderConfig.threads`, or one per usable core (at most 4)."""
        return self.config.render.threads or min(4, _usable_cores())

    @property
    def _serial(self) -> bool:
        """One frame at a time (``RenderConfig.threads`` 1, or one usable core): the whole job then
        runs in the caller's thread. Read-ahead, tracking and encoding threads only help while a
        core is idle; a batch worker given one core of a busy machine would pay for their hand-offs."""
        return self._frame_threads() == 1

    def renderer(self, source: PreparedSource, timer: StageTimer,
                 finish: Callable[[np.ndarray], np.ndarray] | None = None) -> "_Ordered":
        """Batches of :class:`DriveTarget` → lists of output frames in order, several at once
        (``submit`` / ``drain``; a context manager): whole frames when the engine's render is
        thread-safe; else the engine renders in the caller's thread, in order (it keeps state
        between frames), and only paste-back and ``finish`` run side by side."""
        threads = self._frame_threads()

        def render(batch: Sequence[DriveTarget]) -> list[np.ndarray]:
            with timer.time("render"):
                return list(self.engine.render(source.state, list(batch)))

        def complete(crops: list[np.ndarray]) -> list[np.ndarray]:
            out = crops
            if self.config.output.paste_back:
                with timer.time("paste"):
                    out = [source.paste(crop) for crop in out]
            return out if finish is None else [finish(frame) for frame in out]

        if self.engine.concurrent_frames:
            return _Ordered(lambda batch: complete(render(batch)), threads, "avatar-render")
        return _Ordered(complete, threads, "avatar-paste", before=render)

    # -- files ----------------------------------------------------------------------------
    def _track(self, path: str | Path, max_frames: int | None,
               timer: StageTimer | None = None) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        """(frame, landmarks or None) for every frame of a video, in order. A clip whose frames
        fit :data:`_KEEP_FRAMES_BYTES` is tracked in two halves at once when two cores are free
        (the second tracker starts at the middle frame, as a clip's first frame starts). With a
        ``timer``, decoding in this thread (one frame at a time) is timed as "decode"."""
        from .media.prefetch import prefetch
        from .media.video import probe_video, read_frames

        info = probe_video(path)
        n = info.frame_count if max_frames is None else min(info.frame_count, max_frames)
        if (not self._serial and n >= _SPLIT_MIN_FRAMES
                and n * info.width * info.height * 3 <= _KEEP_FRAMES_BYTES):
            yield from _TrackHalves(self, read_frames(path, max_frames=max_frames), n // 2)
            return
        frames = read_frames(path, max_frames=max_frames)
        if self._serial and timer is not None:
            frames = self._timed(frames, timer)
        with self.detector(video=True) as det:
            for frame in (frames if self._serial else prefetch(frames)):
                face = self._driving_face(det.detect(frame))
                yield frame, None if face is None else face.landmarks

    def _frames(self, path: str | Path, max_frames: int | None) -> Iterable[np.ndarray]:
        """The driving video's frames for rendering (batch workers override this and ``_track`` to reuse a decoded clip)."""
        from .media.prefetch import prefetch
        from .media.video import read_frames

        frames = read_frames(path, max_frames=max_frames)
        return frames if self._serial else prefetch(frames)

    def landmarks_of(self, path: str | Path, max_frames: int | None = None) -> list[np.ndarray | None]:
        """Landmarks of every frame of a video (None where no face), for reference-frame search."""
        return [lm for _, lm in self._track(path, max_frames)]

    def best_reference_of(self, path: str | Path, source_landmarks: np.ndarray, max_frames: int | None = None
                          ) -> tuple[list[np.ndarray | None], int, np.ndarray | None]:
        """The landmarks of every frame, the index of the frame closest to the source (see
        :func:`best_reference`; -1 when no frame has a face) and its image, decoded again up to it
        (which frame wins is known only once the whole clip's open eyes are)."""
        lms = [lm for _, lm in self._track(path, max_frames)]
        try:
            best = best_reference(source_landmarks, lms)
        except ValueError:
            return lms, -1, None
        return lms, best, _frame_at(self._frames(path, best + 1), best)

    def _driving_face(self, faces: list[Face]) -> Face | None:
        """The face that drives: ``face_index`` when the driver shows that many, else the largest."""
        index = self.config.face.face_index
        if faces and index is not None and index < len(faces):
            return faces[index]
        return faces[0] if faces else None

    @one_blas_thread
    def animate(self, source: Any, driving: str | Path, output: str | Path, *, avatar_id: str | None = None,
                progress: bool = True, overwrite: bool = False) -> AnimationResult:
        """Animate ``source`` with the driving video and write a labelled output atomically (the
        format follows ``output``'s extension, see :mod:`avatar.media.formats`)."""
        from .media.formats import output_format
        from .media.video import probe_video

        cfg = self.config
        output_format(output)  # an unsupported extension fails before any work
        if Path(output).exists() and not overwrite:
            raise InputError(f"{output} exists; pass --overwrite (or overwrite=True) to replace it")
        info = probe_video(driving)
        timer = StageTimer()
        tracking = None
        if cfg.motion.best_frame and cfg.motion.mode == "relative":
            # Track once, up front: the reference can then be any frame, and rendering reuses the
            # landmarks (and the decoded frames, under a budget). The driver is tracked in a second
            # thread while the portrait is prepared: the two are independent until the reference is chosen.
            tracking = _Tracking(self, driving, cfg.output.max_frames, timer, threaded=not self._serial)
        t0 = time.perf_counter()
        try:
            prepared = self.prepare(source, use="video", avatar_id=avatar_id)
        except BaseException:
            if tracking is not None:
                tracking.cancel()
            raise
        once = {"prepare": time.perf_counter() - t0}
        fps = cfg.output.fps or info.fps
        total = info.frame_count if cfg.output.max_frames is None else min(info.frame_count, cfg.output.max_frames)
        reference: np.ndarray | None = None
        reference_frame: np.ndarray | None = None
        lms: list[np.ndarray | None] | None = None
        kept: list[np.ndarray] | None = None
        if tracking is not None:
            t0 = time.perf_counter()
            lms, kept = tracking.result()
            once["reference"] = time.perf_counter() - t0  # what tracking took beyond preparing the portrait
            try:
                idx = best_reference(prepared.crop.landmarks, lms)
            except ValueError:
                raise NoFaceError(f"no face found in any frame of {driving}") from None
            reference = lms[idx]
            log.info("best reference frame: %d", idx)
            if self.engine.uses_driving_image:  # its reference crop shows that frame too
                reference_frame = kept[idx] if kept is not None else _frame_at(self._frames(driving, idx + 1), idx)
        frames = iter(kept) if kept is not None else self._frames(driving, cfg.output.max_frames)
        return self._write(prepared,
                           lambda finish: self.stream(prepared, self._timed(frames, timer), fps, reference=reference,
                                                      landmarks=lms, reference_frame=reference_frame, name=str(driving),
                                                      timer=timer, finish=finish),
                           output, fps, total, audio_from=driving if cfg.output.audio and info.has_audio else None,
                           progress=progress, timer=timer, once=once)

    @one_blas_thread
    def talk(self, source: Any, output: str | Path, *, audio: str | Path | None = None, text: str | None = None,
             transcript: str | None = None, head_video: str | Path | None = None, avatar_id: str | None = None,
             progress: bool = True, overwrite: bool = False) -> AnimationResult:
        """Make ``source`` speak: ``audio`` (any media file), optionally with its ``transcript``, or ``text``
        (offline espeak-ng). Writes a labelled output (format by extension) with the speech muxed
        from frame 0 where the format carries sound (MP4, MOV, WebM).

        Audio alone streams through the causal audio-to-mouth network chunk by chunk, so memory
        stays bounded for any length; a transcript enables forced alignment (falls back to the
        network with a warning when it does not match); text uses espeak-ng's exact phone timing.
        ``head_video``: a driving video whose head motion the portrait follows (looped) while the
        lips follow the speech (this path holds the decoded audio in memory).
        Settings come from ``config.speech`` (fps, seed, blinks, head motion, voice).
        """
        from .media.video import audio_duration, iter_audio
        from .media.formats import output_format
        from .motion.audio.drive import LiveSpeech, SpeechDriver
        from .motion.rig import RigConfig

        cfg, sc = self.config, self.config.speech
        output_format(output)  # an unsupported extension fails before any work
        if Path(output).exists() and not overwrite:
            raise InputError(f"{output} exists; pass --overwrite (or overwrite=True) to replace it")
        if (audio is None) == (text is None):
            raise InputError("talk needs either an audio file or text to speak (not both, not neither)")
        if transcript is not None and audio is None:
            raise InputError("a transcript describes an audio file; pass audio= with it (or use text= alone)")
        if audio is not None:
            duration = audio_duration(audio)  # also: a clear error for a missing file or one without sound
        t0 = time.perf_counter()
        prepared = self.prepare(source, use="audio", avatar_id=avatar_id)
        once = {"prepare": time.perf_counter() - t0}
        fps = float(cfg.output.fps or sc.fps)
        timer = StageTimer()
        head_landmarks = None
        if head_video is not None:
            with timer.time("landmarks"):
                head_landmarks = self.landmarks_of(head_video)
        # a talking video avatar's own timing: its lag delays the targets at render, its lead comes here
        lead_s = self.engine.speech_lead(prepared.state, sc.lead_s, fps)
        if audio is not None and transcript is None and head_landmarks is None and not sc.recognise:
            speech = LiveSpeech(prepared.crop.landmarks, cfg.motion, fps, seed=sc.seed, weights=sc.weights,
                                blink_rate=sc.blink_rate, head_amplitude=sc.head_amplitude, lead_s=lead_s,
                                intensity=sc.intensity, personal=self.engine.speech_model(prepared.state))

            def targets() -> Iterator[np.ndarray]:
                for chunk in iter_audio(audio, 16000):
                    with timer.time("speech"):
                        out = speech.push(chunk)
                    yield from out
                with timer.time("speech"):
                    out = speech.flush()
                yield from out

            total = None if duration is None else math.ceil(duration * fps - 1e-9)
            return self._write(prepared, lambda finish: self.stream_targets(prepared, targets(), timer=timer, finish=finish),
                               output, fps, total,
                               audio_from=audio, progress=progress, timer=timer, once=once)
        from .motion.audio.track import load_audio, speech_track

        with timer.time("speech"):
            track = speech_track(load_audio(audio) if audio is not None else None, 16000, fps, text=text,
                                 transcript=transcript, seed=sc.seed, voice=sc.voice, rate=sc.rate,
                                 blink_rate=sc.blink_rate, head_amplitude=sc.head_amplitude, weights=sc.weights,
                                 lead_s=lead_s, recognise=sc.recognise, personal=self.engine.speech_model(prepared.state))
        if len(track) == 0:
            raise InputError(f"{audio or 'the text'} gives no speech to animate (zero length)")
        driver = SpeechDriver(prepared.crop.landmarks, cfg.motion, RigConfig(intensity=sc.intensity))
        targets = driver.targets(track, head_landmarks, fps)
        return self._write(prepared, lambda finish: self.stream_targets(prepared, targets, timer=timer, finish=finish), output, fps, len(track), audio_from=audio,
                           audio_pcm=None if audio is not None else (track.audio, track.sample_rate),
                           progress=progress, timer=timer, once=once)

    @staticmethod
    def _timed(frames: Iterable[np.ndarray], timer: StageTimer) -> Iterator[np.ndarray]:
        it = iter(frames)
        while True:
            with timer.time("decode"):
                frame = next(it, None)
            if frame is None:
                return
            yield frame

    def _write(self, prepared: PreparedSource, frames: Callable[[Callable[[np.ndarray], np.ndarray]], Iterator[np.ndarray]],
               output: str | Path, fps: float,
               total: int | None,
               *, audio_from: Any = None, audio_pcm: tuple[np.ndarray, int] | None = None, progress: bool = True,
               timer: StageTimer | None = None, once: dict[str, float] | None = None) -> AnimationResult:
        """Label and encode the frames that ``frames(label)`` renders (it applies ``label`` to each)
        into ``output``, atomically."""
        from tqdm.auto import tqdm

        from .media.formats import open_writer, output_format
        from .media.video import AudioSpec
        from .output import provenance, watermark

        cfg = self.config
        timer = timer or StageTimer()
        fmt = output_format(output)
        meta = provenance.provenance_metadata(prepared.grant)
        payload = prepared.grant.payload32()
        audio = None
        if not fmt.audio and (audio_from is not None or audio_pcm is not None):
            log.warning("%s output carries no sound; the audio is left out", fmt.name)
        elif audio_from is not None:
            audio = AudioSpec.from_file(audio_from)
        elif audio_pcm is not None:
            audio = AudioSpec.from_array(*audio_pcm)
        once = dict(once or {})
        once["sign"] = 0.0
        sign = None
        if fmt.c2pa_mime is not None:
            def sign(p: Path) -> None:
                t = time.perf_counter()
                provenance.sign_c2pa(p, prepared.grant, fmt.c2pa_mime)
                once["sign"] += time.perf_counter() - t
        t0 = time.perf_counter()
        n = 0
        bar = tqdm(total=total, unit="frame", desc="animating", disable=not progress, leave=False)
        try:
            writer = open_writer(output, fps, crf=cfg.output.crf, metadata=meta, audio=audio, overwrite=True,
                                 preview_size=cfg.output.preview_size, finalize_hook=sign)

            # a pasted frame is a fresh copy no one else holds: it is labelled in place (a
            # 1920 px frame costs 11 MB per copy); a bare crop may be an engine's own buffer
            own = cfg.output.paste_back

            def label(frame: np.ndarray) -> np.ndarray:
                with timer.time("label"):
                    frame = writer.fit(frame)
                    if cfg.output.visible_label:
                        frame = provenance.add_visible_label(frame, inplace=own)
                    return watermark.embed(frame, payload, inplace=own)

            def encode(frame: np.ndarray) -> None:
                with timer.time("encode"):
                    writer.write(frame)
                bar.update(1)

            try:
                # Frames are labelled where they are rendered (side by side, see stream) and
                # encoded in a thread of their own (OpenCV, swscale and the encoders release the
                # GIL), so a 2-core machine renders frame i+1 while frame i is encoded.
                n = _run_beside(frames(label), encode, threaded=not self._serial)
            except BaseException:
                writer.abort()
                raise
            t1 = time.perf_counter()
            writer.close()  # flush the encoder, mux, sign (the hook), rename
            once["finish"] = time.perf_counter() - t1
        finally:
            bar.close()
        seconds = time.perf_counter() - t0
        return AnimationResult(Path(output), n, fps, seconds, timer.per_frame_ms(n), meta,
                               timer.counts.get("faces_missing", 0), once)


_LANDMARK_SOURCES = 4  # portraits whose landmark-drawing state an animator keeps (image-driven engines)
# decoded driving frames kept from the tracking pass for rendering; a longer clip is decoded twice
_KEEP_FRAMES_BYTES = 256 << 20


_SPLIT_MIN_FRAMES = 60  # shorter clips are tracked by one tracker
# the second tracker starts this many frames before its half: a tracker's first frames (found
# by detection, not yet tracked) sit up to ~10 px off, which would jolt the face at the split
_SPLIT_WARMUP = 12


class _TrackHalves:
    """Iterates (frame, landmarks) over decoded ``frames``: this thread tracks frames
    [0, split), a second tracker frames [split, end) at the same time; a third thread decodes.
    Closing the iterator early stops both threads."""

    def __init__(self, animator: Animator, frames: Iterable[np.ndarray], split: int) -> None:
        import threading

        self._animator, self._frames, self._split = animator, frames, split
        self._decoded: list[np.ndarray] = []
        self._second: list[np.ndarray | None] = []
        self._done = False  # decoding ended (end of clip or error)
        self._errors: dict[str, BaseException] = {}
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._threads = [threading.Thread(target=self._decode, name="avatar-prefetch", daemon=True),
                         threading.Thread(target=self._track_second, name="avatar-track", daemon=True)]

    def _decode(self) -> None:
        try:
            for frame in self._frames:
                if self._stop.is_set():
                    return
                with self._cond:
                    self._decoded.append(frame)
                    self._cond.notify_all()
        except BaseException as exc:  # noqa: BLE001 - raised in the iterating thread
            self._errors["decode"] = exc
        finally:
            close = getattr(self._frames, "close", None)
            if callable(close):
                close()
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def _wait_for(self, i: int) -> bool:
        """Block until frame ``i`` is decoded (True) or decoding ended before it (False)."""
        with self._cond:
            self._cond.wait_for(lambda: len(self._decoded) > i or self._done or self._stop.is_set())
            return len(self._decoded) > i and not self._stop.is_set()

    def _track_second(self) -> None:
        try:
            if not self._wait_for(self._split):
                return
            i = self._split - _SPLIT_WARMUP
            with self._animator.detector(video=True) as det:
                while self._wait_for(i):
                    face = self._animator._driving_face(det.detect(self._decoded[i]))
                    if i >= self._split:
                        with self._cond:
                            self._second.append(None if face is None else face.landmarks)
                            self._cond.notify_all()
                    i += 1
        except BaseException as exc:  # noqa: BLE001 - raised in the iterating thread
            self._errors["track"] = exc
        finally:
            with self._cond:
                self._errors.setdefault("second done", StopIteration())
                self._cond.notify_all()

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        for t in self._threads:
            t.start()
        try:
            with self._animator.detector(video=True) as det:
                i = 0
                while i < self._split and self._wait_for(i):
                    face = self._animator._driving_face(det.detect(self._decoded[i]))
                    yield self._decoded[i], None if face is None else face.landmarks
                    i += 1
            while self._wait_for(i):  # the second half, as its tracker delivers it
                k = i - self._split
                with self._cond:
                    self._cond.wait_for(lambda: len(self._second) > k or "second done" in self._errors)
                    ready = len(self._second) > k
                if not ready:
                    break
                yield self._decoded[i], self._second[k]
                i += 1
            for key in ("decode", "track"):
                if key in self._errors:
                    raise self._errors[key]
        finally:
            self._stop.set()
            with self._cond:
                self._cond.notify_all()
            for t in self._threads:
                t.join()


def _frame_at(frames: Iterable[np.ndarray], index: int) -> np.ndarray:
    frame = None
    for i, frame in enumerate(frames):
        if i == index:
            break
    assert frame is not None
    return frame


class _Tracking:
    """The driving clip's landmarks for every frame, tracked in a thread (see ``Animator.animate``);
    its decoded frames too while they fit in :data:`_KEEP_FRAMES_BYTES`. Not ``threaded``: tracked
    in the caller's thread when the result is asked for."""

    def __init__(self, animator: Animator, path: str | Path, max_frames: int | None, timer: StageTimer,
                 threaded: bool = True) -> None:
        import threading

        self._stop = threading.Event()
        self._error: BaseException | None = None
        self.landmarks: list[np.ndarray | None] = []
        self.frames: list[np.ndarray] | None = []
        self._thread = threading.Thread(target=self._run, args=(animator, path, max_frames, timer),
                                        name="avatar-track", daemon=True)
        self._pending = not threaded  # tracked by result(), in the caller's thread
        if threaded:
            self._thread.start()

    def _run(self, animator: Animator, path: str | Path, max_frames: int | None, timer: StageTimer) -> None:
        t0 = time.perf_counter()
        decoding = timer.totals["decode"]
        nbytes = 0
        try:
            track = animator._track(path, max_frames, timer)
            try:
                for frame, lm in track:
                    if self._stop.is_set():
                        return
                    self.landmarks.append(lm)
                    if self.frames is not None:
                        nbytes += frame.nbytes
                        if nbytes <= _KEEP_FRAMES_BYTES:
                            self.frames.append(frame)
                        else:
                            self.frames = None
            finally:
                track.close()
        except BaseException as exc:  # noqa: BLE001 - raised by result() in the caller's thread
            self._error = exc
        finally:
            # decoding in this thread (one frame at a time) is its own stage
            timer.add("landmarks", time.perf_counter() - t0 - (timer.totals["decode"] - decoding), len(self.landmarks))

    def cancel(self) -> None:
        self._stop.set()
        if not self._pending:
            self._thread.join()

    def result(self) -> tuple[list[np.ndarray | None], list[np.ndarray] | None]:
        """(landmarks per frame, None where no face; the frames or None when over the budget)."""
        if self._pending:
            self._pending = False
            self._thread.run()
        else:
            self._thread.join()
        if self._error is not None:
            raise self._error
        return self.landmarks, self.frames


def _usable_cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class _Ordered:
    """Applies ``fn`` to a stream of items (after ``before``, which runs in the caller's thread,
    in order), results in submission order.

    With ``threads`` > 1 up to that many items are worked on at once in a thread pool (one more
    is queued so no thread waits for the producer); a context manager, so that an abandoned
    stream stops its pool.
    """

    def __init__(self, fn: Callable[[Any], Any], threads: int, name: str,
                 before: Callable[[Any], Any] | None = None) -> None:
        from collections import deque
        from concurrent.futures import ThreadPoolExecutor

        self._fn = fn
        self._before = before  # applied to each item in the caller's thread, in order, before fn
        self._threads = max(1, threads)
        self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix=name) if self._threads > 1 else None  # threads start on first use
        self._pending: deque = deque()
        self._started = False

    def __enter__(self) -> "_Ordered":
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            for f in self._pending:
                f.cancel()
            self._pool.shutdown(wait=True)
            self._pending.clear()

    def submit(self, item: Any) -> Iterator[Any]:
        """Start ``item``; yields the results that are due (its own at once when serial)."""
        if self._before is not None:
            item = self._before(item)
        if self._pool is None or not self._started:  # the first inline: a one-item stream starts no thread
            self._started = True
            yield self._fn(item)
            return
        self._pending.append(self._pool.submit(self._fn, item))
        while len(self._pending) > self._threads:
            yield self._pending.popleft().result()

    def drain(self) -> Iterator[Any]:
        """The results of every item still in work."""
        while self._pending:
            yield self._pending.popleft().result()

    def map(self, items: Iterable[Any]) -> Iterator[Any]:
        """All results of ``items``, in order."""
        for item in items:
            yield from self.submit(item)
        yield from self.drain()


def _run_beside(items: Iterable[Any], consume: Callable[[Any], None], depth: int = 4, threaded: bool = True) -> int:
    """Call ``consume`` on every item in a second thread while this thread produces the next ones
    (in this thread, one after the other, when not ``threaded``).

    Returns the number of items; the first exception from either side is raised here, after
    both have stopped (the producer stops at the next item once the consumer fails).
    """
    import queue
    import threading

    if not threaded:
        n = 0
        for item in items:
            consume(item)
            n += 1
        return n
    q: queue.Queue = queue.Queue(maxsize=depth)
    failed: list[BaseException] = []
    done = object()

    def work() -> None:
        while (item := q.get()) is not done:
            if failed:
                continue  # drain: the producer is told to stop and will send `done`
            try:
                consume(item)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                failed.append(exc)

    worker = threading.Thread(target=work, name="avatar-label-encode", daemon=True)
    worker.start()
    n = 0
    try:
        for item in items:
            if failed:
                break
            q.put(item)
            n += 1
    finally:
        q.put(done)
        worker.join()
    if failed:
        raise failed[0]
    return n


def animate(source: Any, driving: str | Path, output: str | Path, config: AvatarConfig | None = None, **kwargs: Any) -> AnimationResult:
    """One call, file to file: ``animate("me.jpg", "driver.mp4", "out.mp4")``."""
    return Animator(config).animate(source, driving, output, **kwargs)


def talk(source: Any, output: str | Path, config: AvatarConfig | None = None, **kwargs: Any) -> AnimationResult:
    """One call: ``talk("me.jpg", "out.mp4", audio="speech.wav")`` or ``talk("me.jpg", "out.mp4", text="Hello")``."""
    return Animator(config).talk(source, output, **kwargs)
