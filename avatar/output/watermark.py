"""Invisible video watermark: a 32-bit payload spread over coarse, smooth luma patterns.

Why this design: DWT-DCT watermarks do not survive H.264 (runtime-ecosystem.md §4.2), because
the codec quantises away mid/high frequencies. Here every bit lives on a fixed pseudo-random
set of cells of a coarse grid (``GRID`` × ``GRID`` in normalised frame coordinates) with fixed
±1 signs; the cell amplitudes are upsampled bilinearly to the frame, so the mark is a smooth,
low-frequency luma change that the codec keeps and that survives downscaling.

Embedding is *informed* (improved spread spectrum, Malvar & Florêncio 2003): the detector's
response of the host frame itself is measured first and partly cancelled, so the natural image
does not drown the weak mark. The amplitude is perceptually masked: each cell's share scales
with the texture that covers the cell (flat walls and smooth skin get little, grainy or not, and
so does a cheek beside a lone edge; hair and fabric more), and each bit's amplitude is raised to
keep its correlation, so the mark and its host cancellation hide in texture instead of mottling
flat areas (a frame with no texture at all still gets about half a grey level everywhere).
Detection high-passes the cell means of the luma, weighs each cell by one over the local RMS of
those high-passed means (a matched filter: where the picture itself varies at the mark's scale,
in hair and fabric, a cell holds more host than mark), correlates them with each bit's signs and
sums across frames (soft voting). Embedding aims at that weighted correlation, so it no longer
pays 20-50 grey levels in hair to cancel the hair's own cell-to-cell variation.
32 payload bits + a 12-bit CRC are embedded (whitened with a fixed key). A payload is reported
only when the 12-bit CRC matches (a clean video passes by chance with probability 2^-12); decoy
sign patterns give the null spread that turns the bit correlations into z-scores, hence a
per-bit reliability estimate.

Limits (measured, see docs/consent.md): host cancellation is exact for static content; under
global motion the codec's motion compensation drags the previous frame's mark along with the
content, which re-exposes the host, so robustness drops at CRF 28. Treat it as a soft signal:
C2PA and the metadata tags carry the guarantees.

Convention: frames are (H, W, 3) uint8 RGB; the same delta is added to R, G and B, so only luma
changes. Deterministic: no state besides per-size caches.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError, ShapeError

GRID = 64             # cells per side, in normalised coordinates (frame-size independent)
PAYLOAD_BITS = 32
CRC_BITS = 12
NBITS = PAYLOAD_BITS + CRC_BITS
N_DECOYS = 256        # null patterns for the z-score normalisation
KEY = 0x5AFE_A7A4     # fixed key: patterns and whitening are public, the point is labelling, not secrecy
DEFAULT_STRENGTH = 1.0
# Each bit's weighted correlation is pushed to this (at strength 1) beyond what its host gives; in
# units of the host's local RMS at the mark's scale (see _weights), so it asks a lot of a cell only
# where the host there is busy
BASE_CORRELATION = 0.2
MAX_AMPLITUDE = 48.0  # cap per unit share at strength 1 (bounds the cost of host cancellation)
CANCEL = 1.0          # fraction of the host's own projection that is cancelled (ISS lambda)
WORK_SIDE = 768       # frames with a longer side are analysed at a working resolution (halved until ≤ this)
# The texture that masks the mark is the median |Laplacian| of each cell's samples, at two scales,
# the lower of the two: a photo's grain, finer than a cell, hides nothing of a smooth cell-sized
# change, so at the coarse scale (MASK_SCALE px per cell, smoothed by MASK_SMOOTH of them) it is
# gone; an edge (a jaw, a collar) covers few of a cell's samples at the fine scale (FINE_SCALE px
# per cell), so its median stays low. Measured as a cell mean, both counted as texture and the
# mark mottled a plain wall, and a neck beside the jaw and the collar.
MASK_SCALE = 4
MASK_SMOOTH = 1.5
FINE_SCALE = 8
FINE_SMOOTH = 1.0
TEXTURE_REF = 3.0     # median |Laplacian| of luma at those scales (grey levels) that takes the full amplitude
MASK_FLOOR = 0.03     # share of the amplitude a flat cell still takes
MASK_TOP = 1.0        # and a busy cell at most (2 put 24-48 levels in blotches on hair)
# The detector weighs each cell by one over the RMS of the host's cell features around it
# (WEIGHT_SPAN cells square), plus NOISE_FLOOR for the codec: hair and fabric vary at the mark's own
# scale by 10-30 levels, which the mark had to cancel there at 20-50 levels of its own
WEIGHT_SPAN = 3
NOISE_FLOOR = 2.0
_LAPLACE = np.array([[0, -0.25, 0], [-0.25, 1, -0.25], [0, -0.25, 0]], dtype=np.float32)
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass(frozen=True)
class _Layout:
    owner: np.ndarray     # (G*G,) bit index of each cell
    sign: np.ndarray      # (G*G,) ±1 fixed sign of each cell
    proj: np.ndarray      # (NBITS, G*G) float32: sign/n on the bit's cells, 0 elsewhere
    decoys: np.ndarray    # (N_DECOYS, G*G) float32 null projections with the same cell counts
    whitening: np.ndarray  # (NBITS,) 0/1 bits XORed onto the message
    gain: float           # detector response to a unit cell amplitude (calibrated)


def _crc(value: int, nbits: int = PAYLOAD_BITS) -> int:
    """CRC-12 (poly 0x80F) over the ``nbits`` low bits of ``value``, MSB first."""
    crc = 0
    top_bit = 1 << (CRC_BITS - 1)
    mask = (1 << CRC_BITS) - 1
    for i in range(nbits - 1, -1, -1):
        feedback = bool(crc & top_bit) ^ bool((value >> i) & 1)
        crc = (crc << 1) & mask
        if feedback:
            crc ^= 0x80F
    return crc


def _message_bits(payload: int) -> np.ndarray:
    """(NBITS,) ±1 float32 message for a 32-bit payload: payload bits, CRC bits, whitened."""
    if not 0 <= payload < 2**PAYLOAD_BITS:
        raise ValueError(f"payload must be a {PAYLOAD_BITS}-bit unsigned int, got {payload}")
    word = (payload << CRC_BITS) | _crc(payload)
    bits = np.array([(word >> (NBITS - 1 - i)) & 1 for i in range(NBITS)], dtype=np.uint8)
    bits ^= _layout().whitening
    return bits.astype(np.float32) * 2 - 1


def _decode_bits(soft: np.ndarray) -> tuple[int, bool]:
    """(payload, crc_ok) from (NBITS,) soft values (sign carries the bit)."""
    bits = (soft > 0).astype(np.uint8) ^ _layout().whitening
    word = 0
    for b in bits:
        word = (word << 1) | int(b)
    payload = word >> CRC_BITS
    return payload, (word & ((1 << CRC_BITS) - 1)) == _crc(payload)


def _cell_features(luma: np.ndarray) -> np.ndarray:
    """(G*G,) high-passed cell means of an (H, W) float32 luma image."""
    cells = cv2.resize(luma, (GRID, GRID), interpolation=cv2.INTER_AREA)
    # Subtract the local mean of the neighbourhood: removes image content smoother than a cell,
    # while the mark (white across cells) passes with a calibrated gain.
    return cv2.filter2D(cells, -1, _LAPLACE, borderType=cv2.BORDER_REFLECT).reshape(-1)


@lru_cache(maxsize=1)
def _layout() -> _Layout:
    rng = np.random.default_rng(KEY)
    n = GRID * GRID
    owner = rng.permutation(np.arange(n) % NBITS)
    sign = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=n)
    counts = np.bincount(owner, minlength=NBITS).astype(np.float32)
    proj = np.zeros((NBITS, n), dtype=np.float32)
    proj[owner, np.arange(n)] = sign / counts[owner]
    # Decoys: same cell counts, independent owners and signs; their correlations are pure host +
    # codec noise, which gives the null spread of a bit correlation.
    decoys = np.zeros((N_DECOYS, n), dtype=np.float32)
    for d in range(N_DECOYS):
        cells = rng.choice(n, size=int(counts.min()), replace=False)
        decoys[d, cells] = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=cells.size) / cells.size
    whitening = rng.integers(0, 2, size=NBITS).astype(np.uint8)
    # Calibrate the detector gain for a unit-amplitude mark upsampled to a typical size.
    amp = sign.reshape(GRID, GRID)
    up = _upsample(amp, 512, 512)
    resp = _cell_features(up) * sign
    return _Layout(owner, sign, proj, decoys, whitening, float(resp.mean()))


def _upsample(cells: np.ndarray, h: int, w: int) -> np.ndarray:
    """(G, G) cell amplitudes -> (h, w) float32 smooth field (cell centres at the grid centres)."""
    return cv2.resize(cells.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)


def _luma(frame: np.ndarray) -> np.ndarray:
    return cv2.transform(frame, _LUMA.reshape(1, 3)).astype(np.float32, copy=False)


def _cell_medians(luma: np.ndarray, per_cell: int, sigma: float) -> np.ndarray:
    """(G, G) median over each cell's samples of |Laplacian| of ``luma`` reduced to ``per_cell``
    pixels per cell and smoothed by ``sigma`` of them."""
    side = GRID * per_cell
    coarse = cv2.GaussianBlur(cv2.resize(luma, (side, side), interpolation=cv2.INTER_AREA), (0, 0), sigma)
    lap = np.abs(cv2.Laplacian(coarse, cv2.CV_32F, ksize=3))
    cells = np.ascontiguousarray(lap.reshape(GRID, per_cell, GRID, per_cell).transpose(0, 2, 1, 3))
    # numpy's vectorised sort of 16 or 64 values is 6x faster here than np.partition
    ordered = np.sort(cells.reshape(GRID, GRID, -1), axis=2)
    half = ordered.shape[2] // 2
    return 0.5 * (ordered[..., half - 1] + ordered[..., half])


def _masking(luma: np.ndarray) -> np.ndarray:
    """(G*G,) per-cell amplitude share from the texture of an (H, W) float32 luma image: the lower
    of its cell medians at :data:`MASK_SCALE` and :data:`FINE_SCALE` (no grain, no lone edges)."""
    texture = np.minimum(_cell_medians(luma, MASK_SCALE, MASK_SMOOTH), _cell_medians(luma, FINE_SCALE, FINE_SMOOTH))
    # a cell takes its least textured neighbour's texture: the smooth mark spreads about a cell
    # past its own, and a cell of hair or fabric beside a plain wall or a cheek drew a halo there
    near = cv2.erode(texture, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE)
    return np.clip(cv2.blur(near, (3, 3)) / TEXTURE_REF, MASK_FLOOR, MASK_TOP).reshape(-1)


def _weights(feat: np.ndarray) -> np.ndarray:
    """(G*G,) weight of each cell of the (G*G,) cell features ``feat``: one over their local RMS.

    A cell where the picture itself varies at the mark's scale (hair, fabric) carries more host
    than mark, so it counts less; embedding and detection compute the same weights, the host's
    from the host and the detector's from the marked frame (the mark barely changes them)."""
    energy = cv2.blur((feat * feat).reshape(GRID, GRID), (WEIGHT_SPAN, WEIGHT_SPAN), borderType=cv2.BORDER_REFLECT)
    return 1.0 / np.sqrt(energy.reshape(-1) + NOISE_FLOOR**2)


def _check_frame(frame: np.ndarray) -> None:
    if not (isinstance(frame, np.ndarray) and frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8):
        got = f"{frame.shape} {frame.dtype}" if isinstance(frame, np.ndarray) else type(frame).__name__
        raise ShapeError(f"frame must be (H, W, 3) uint8 RGB, got {got}")
    if frame.shape[0] < GRID or frame.shape[1] < GRID:
        raise ShapeError(f"frame must be at least {GRID}x{GRID} pixels for the watermark, got {frame.shape[:2]}")


def _working(frame: np.ndarray) -> np.ndarray:
    """The frame halved (2×2 area means) until its longer side is ≤ ``WORK_SIDE``.

    What embedding measures (the host's cell means and the texture that masks the mark) lives
    at or above the cell scale (a 1920 px frame has 30 px cells), so it is measured here; only
    the final smooth residual is drawn at full size. Halving keeps OpenCV's fast 2×2 path.
    """
    while max(frame.shape[:2]) > WORK_SIDE:
        h, w = frame.shape[0] // 2, frame.shape[1] // 2
        frame = cv2.resize(frame[: 2 * h, : 2 * w], (w, h), interpolation=cv2.INTER_AREA)
    return frame


def _add_delta(frame: np.ndarray, delta: np.ndarray, rows: int = 64, inplace: bool = False) -> np.ndarray:
    """``frame`` + the rounded (H, W) float32 ``delta`` on R, G and B, saturating at 0 and 255
    (into ``frame`` itself when ``inplace`` and it is contiguous)."""
    # uint8 saturating add/subtract of |delta| (rounded half-to-even, like np.rint), in bands of
    # rows that stay in cache: 3x faster than whole-frame passes at 1920 px.
    inplace = inplace and frame.flags.c_contiguous and frame.flags.writeable
    frame = np.ascontiguousarray(frame)
    out = frame if inplace else np.empty_like(frame)
    for y in range(0, frame.shape[0], rows):
        d, o = delta[y:y + rows], out[y:y + rows]
        pos = cv2.convertScaleAbs(cv2.max(d, 0.0))
        neg = cv2.convertScaleAbs(cv2.min(d, 0.0))
        cv2.add(frame[y:y + rows], cv2.cvtColor(pos, cv2.COLOR_GRAY2RGB), dst=o)
        cv2.subtract(o, cv2.cvtColor(neg, cv2.COLOR_GRAY2RGB), dst=o)
    return out


def embed(frame: np.ndarray, payload: int, strength: float = DEFAULT_STRENGTH, *, inplace: bool = False) -> np.ndarray:
    """Return a copy of ``frame`` carrying ``payload`` (``inplace``: ``frame`` itself, marked;
    for callers that own the frame, which saves a full-frame allocation at large sizes).

    Frames larger than ``WORK_SIDE`` are analysed at a working resolution (:func:`_working`),
    so the cost grows with the output size only by the final upsample-and-add.

    Args:
        frame: (H, W, 3) uint8 RGB, at least 64×64.
        payload: 32-bit unsigned int (e.g. :meth:`ConsentGrant.payload32`).
        strength: multiplies the amplitude (1 ≈ PSNR 35–42 dB on photos; flat areas change least).
    Returns:
        (H, W, 3) uint8 RGB.
    """
    _check_frame(frame)
    lay = _layout()
    msg = _message_bits(payload)
    h, w = frame.shape[:2]
    luma = _luma(_working(frame))
    feat = _cell_features(luma)
    share = _masking(luma)                                        # (G*G,) perceptual masking
    wgt = _weights(feat)
    # Informed embedding: push each bit's weighted correlation to +base in the message direction
    # and cancel what the host contributes against it (clipped so no bit costs too much); reach is
    # what a unit bit amplitude, shared out by the masking, adds to that correlation.
    host = lay.proj @ (wgt * feat)                                # (NBITS,) host's own correlations
    reach = np.abs(lay.proj) @ (wgt * share) * lay.gain
    against = np.maximum(-host * msg, 0.0)   # host correlation pointing the wrong way
    size = (strength * BASE_CORRELATION + CANCEL * against) / reach
    amp = msg * np.minimum(size, strength * MAX_AMPLITUDE)
    cells = (amp[lay.owner] * share * lay.sign).reshape(GRID, GRID)
    return _add_delta(frame, _upsample(cells, h, w), inplace=inplace)


def _phi(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


@dataclass(frozen=True)
class WatermarkResult:
    """payload: decoded 32-bit payload, or None when the check bits do not match.
    confidence: 0..1; 1 - 2^-12 (the chance a random signal passes the CRC) when the check
        matches, else 0.
    bit_accuracy_estimate: 0.5..1, mean per-bit probability of being right, from |z|.
    mean_z: mean |z| of the 44 bit correlations against the decoy null (≈0.8 on clean media,
        higher with a mark; host-dominated, so only a weak presence signal on its own).
    frames: frames accumulated; crc_ok: the 12-bit check matched."""

    payload: int | None
    confidence: float
    bit_accuracy_estimate: float
    mean_z: float
    frames: int
    crc_ok: bool

    def __iter__(self):  # allows `payload, confidence, acc = detector.result()`
        return iter((self.payload, self.confidence, self.bit_accuracy_estimate))


class WatermarkDetector:
    """Accumulates frames and decodes the payload by soft voting across them."""

    def __init__(self) -> None:
        self._bits = np.zeros(NBITS, dtype=np.float64)
        self._decoys = np.zeros(N_DECOYS, dtype=np.float64)
        self._frames = 0
        self._lock = threading.Lock()

    def add(self, frame: np.ndarray) -> None:
        """Add one (H, W, 3) uint8 RGB frame (any size ≥ 32×32)."""
        _check_frame(frame)
        lay = _layout()
        feat = _cell_features(_luma(_working(frame)))
        feat = feat * _weights(feat)    # as embedding weighed them
        with self._lock:
            self._bits += lay.proj @ feat
            self._decoys += lay.decoys @ feat
            self._frames += 1

    def soft_bits(self) -> np.ndarray:
        """(NBITS,) z-scores of the bit correlations (sign = bit before de-whitening)."""
        null = float(np.sqrt(np.mean(self._decoys**2))) if self._frames else 0.0
        return self._bits / null if null > 0 else np.zeros(NBITS)

    def result(self) -> WatermarkResult:
        """Decode what has been accumulated so far."""
        if not self._frames:
            return WatermarkResult(None, 0.0, 0.5, 0.0, 0, False)
        z = self.soft_bits()
        absz = np.abs(z)
        p_right = _phi(absz)
        payload, crc_ok = _decode_bits(z)
        mean_z = float(absz.mean())
        confidence = 1.0 - 2.0**-CRC_BITS if crc_ok else 0.0
        return WatermarkResult(payload if crc_ok else None, confidence, float(p_right.mean()), mean_z,
                               self._frames, bool(crc_ok))


def detect_frames(frames, max_frames: int | None = None) -> WatermarkResult:
    """Decode from an iterable of (H, W, 3) uint8 RGB frames."""
    det = WatermarkDetector()
    for i, frame in enumerate(frames):
        if max_frames is not None and i >= max_frames:
            break
        det.add(frame)
    return det.result()


def detect_file(path: str | Path, max_frames: int | None = 150) -> WatermarkResult:
    """Decode the watermark of a video (decoded with PyAV) or an image, still or animated (PNG, JPEG,
    GIF, WebP: every frame up to ``max_frames``)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"expected a video or image file, got {str(path)!r} which does not exist")
    if path.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"):
        from PIL import Image, ImageSequence  # noqa: PLC0415

        try:
            with Image.open(path) as im:
                return detect_frames((np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(im)), max_frames)
        except OSError as exc:
            raise InputError(f"cannot decode {path} as an image ({exc})") from exc
    import av  # noqa: PLC0415

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError(f"{path} has no video stream to read a watermark from")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            frames = (f.to_ndarray(format="rgb24") for f in container.decode(stream))
            return detect_frames(frames, max_frames)
    except av.error.FFmpegError as exc:
        raise InputError(f"cannot decode {path} as video ({exc}); expected an MP4/MOV/WebM file") from exc
