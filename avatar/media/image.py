"""Still images in and out: any common file or array → (H, W, 3) uint8 RGB, upright.

Conventions: arrays are (H, W, 3) uint8 RGB, row 0 at the top of the displayed image
(EXIF orientation already applied). Transparent pixels are composited over white.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import ConfigError, InputError, ShapeError
from .atomic import atomic_path

__all__ = ["ImageSource", "load_image", "resize_max", "save_image", "sha256_file"]

ImageSource = str | os.PathLike | bytes | bytearray | np.ndarray | Image.Image

_EXIF_ORIENTATION = 0x0112
_SUPPORTED = "PNG, JPEG, WebP, TIFF, BMP or GIF"


# --------------------------------------------------------------------------- arrays


def _apply_orientation(a: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1..8) to an (H, W[, C]) array so it displays upright."""
    # Same table as PIL.ImageOps.exif_transpose; np.rot90(k=1) is PIL's ROTATE_90 (CCW).
    if orientation == 2:
        a = a[:, ::-1]
    elif orientation == 3:
        a = a[::-1, ::-1]
    elif orientation == 4:
        a = a[::-1]
    elif orientation == 5:
        a = a.swapaxes(0, 1)
    elif orientation == 6:
        a = np.rot90(a, 3)
    elif orientation == 7:
        a = a[::-1, ::-1].swapaxes(0, 1)
    elif orientation == 8:
        a = np.rot90(a, 1)
    return a


def _composite_over_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """(H, W, C) uint8 colour and (H, W) uint8 alpha → colour over white, uint8."""
    c = rgb.astype(np.uint32)
    a = alpha.astype(np.uint32)[..., None]
    return ((c * a + 255 * (255 - a) + 127) // 255).astype(np.uint8)


def _to_uint8(a: np.ndarray, name: str) -> np.ndarray:
    """Any supported dtype → uint8 with the full range mapped onto 0..255."""
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * 255
    if a.dtype == np.uint16:
        # 65535 → 255 exactly; rounding, not truncation to the high byte.
        return ((a.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    if np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise ShapeError(f"{name}: float image contains NaN or inf; expected values in [0, 1]")
        lo, hi = float(a.min()), float(a.max())
        if lo < -1e-3 or hi > 1.0 + 1e-3:
            raise ShapeError(
                f"{name}: float image must be in [0, 1], got values in [{lo:.3g}, {hi:.3g}]; "
                "divide by 255 or pass uint8"
            )
        return np.clip(np.rint(a.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
    if np.issubdtype(a.dtype, np.integer):
        lo, hi = int(a.min()), int(a.max())
        if lo >= 0 and hi <= 255:
            return a.astype(np.uint8)
        if lo >= 0 and hi <= 65535:
            return _to_uint8(a.astype(np.uint16), name)
        raise ShapeError(f"{name}: integer image must be in [0, 65535], got values in [{lo}, {hi}]")
    raise ShapeError(f"{name}: unsupported image dtype {a.dtype}; expected uint8, uint16 or float in [0, 1]")


def _array_to_rgb(a: np.ndarray, name: str) -> np.ndarray:
    """(H, W), (H, W, 1|2|3|4) array of a supported dtype → (H, W, 3) uint8 RGB."""
    if a.ndim == 3 and a.shape[2] in (1, 2, 3, 4):
        pass
    elif a.ndim == 2:
        a = a[..., None]
    else:
        raise ShapeError(f"{name}: expected an (H, W), (H, W, 3) or (H, W, 4) image array, got shape {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise InputError(f"{name}: image has zero size {a.shape[1]}x{a.shape[0]}; expected a non-empty image")
    a = _to_uint8(a, name)
    channels = a.shape[2]
    if channels == 1:
        out = np.repeat(a, 3, axis=2)
    elif channels == 2:
        out = np.repeat(_composite_over_white(a[..., :1], a[..., 1]), 3, axis=2)
    elif channels == 3:
        out = a
    else:
        out = _composite_over_white(a[..., :3], a[..., 3])
    return np.ascontiguousarray(out)


# --------------------------------------------------------------------------- PIL


def _orientation(img: Image.Image) -> int:
    try:
        value = int(img.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # a damaged EXIF block should not make a good image unreadable
        return 1
    return value if 1 <= value <= 8 else 1


def _pil_to_array(img: Image.Image) -> np.ndarray:
    """A loaded PIL image in any mode → (H, W[, C]) array for :func:`_array_to_rgb`."""
    mode = img.mode
    if mode in ("RGB", "L", "RGBA", "LA") and "transparency" not in img.info:
        return np.asarray(img)
    if mode.startswith("I;16"):
        return np.asarray(img).astype(np.uint16)
    if mode == "I":
        a = np.asarray(img)
        # 32-bit containers hold 8- or 16-bit data in practice; anything above is clipped.
        return a.astype(np.uint8) if a.size and a.min() >= 0 and a.max() <= 255 else np.clip(a, 0, 65535).astype(np.uint16)
    if mode == "F":
        a = np.asarray(img, dtype=np.float32)
        # float TIFFs are usually [0, 1]; some hold 0..255.
        return a if a.size == 0 or a.max() <= 1.0 else np.clip(a, 0, 255).astype(np.uint8)
    if mode == "CMYK":
        return np.asarray(_cmyk_to_rgb(img))
    if mode in ("P", "PA", "RGBA", "RGBa", "LA", "La") or "transparency" in img.info:
        return np.asarray(img.convert("RGBA"))
    return np.asarray(img.convert("RGB"))


def _cmyk_to_rgb(img: Image.Image) -> Image.Image:
    icc = img.info.get("icc_profile")
    if icc:
        try:  # the embedded profile gives far better colours than PIL's naive formula
            from PIL import ImageCms  # noqa: PLC0415

            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            return ImageCms.profileToProfile(img, src, ImageCms.createProfile("sRGB"), outputMode="RGB")
        except Exception:
            pass
    return img.convert("RGB")


def _is_16bit_colour(img: Image.Image) -> bool:
    """PIL keeps only the high byte of 16-bit RGB(A) PNG/TIFF; detect those files."""
    if img.mode not in ("RGB", "RGBA") or img.format not in ("PNG", "TIFF"):
        return False
    for tile in getattr(img, "tile", None) or []:
        args = tile.args if hasattr(tile, "args") else tile[3]
        raw = args[0] if isinstance(args, tuple) else args
        if isinstance(raw, str) and ";16" in raw:
            return True
    return False


def _decode_16bit_colour(data: bytes) -> np.ndarray | None:
    """Full-precision decode of a 16-bit colour PNG/TIFF → (H, W, 3|4) uint16 RGB(A)."""
    import cv2  # noqa: PLC0415

    a = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if a is None or a.dtype != np.uint16 or a.ndim != 3 or a.shape[2] not in (3, 4):
        return None
    return a[..., [2, 1, 0]] if a.shape[2] == 3 else a[..., [2, 1, 0, 3]]


def _sniff(head: bytes) -> str:
    """A hint for what a non-image file is, for the error message."""
    if head[4:8] == b"ftyp" or head[:4] == b"\x1aE\xdf\xa3" or (head[:4] == b"RIFF" and head[8:12] == b"AVI "):
        return " (it looks like a video; pass it as the driving video)"
    if head[:4] in (b"RIFF", b"ID3\x03", b"ID3\x04", b"fLaC", b"OggS") or head[:2] == b"\xff\xfb":
        return " (it looks like audio)"
    if head and all(32 <= b < 127 or b in (9, 10, 13) for b in head[:64]):
        return " (it looks like text)"
    return ""


def _open_checked(data: bytes, name: str, max_pixels: int) -> Image.Image:
    """Open lazily and check the declared size BEFORE any pixel is decoded."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise InputError(f"{name}: image is too large to decode safely; downscale it first") from None
    except UnidentifiedImageError:
        raise InputError(f"{name} is not a readable image{_sniff(data[:64])}; expected {_SUPPORTED}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InputError(f"{name}: image is corrupt or truncated ({exc}); re-export it as PNG or JPEG") from None
    w, h = img.size
    if w <= 0 or h <= 0:
        raise InputError(f"{name}: image has zero size {w}x{h}; expected a non-empty image")
    if w * h > max_pixels:
        raise InputError(
            f"{name}: image is {w}x{h} = {w * h / 1e6:.1f} MP, above the {max_pixels / 1e6:.1f} MP limit; downscale it first"
        )
    return img


def _decode_pil(img: Image.Image, name: str) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img.load()
            orientation = _orientation(img)
            a = _pil_to_array(img)
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InputError(f"{name}: image is corrupt or truncated ({exc}); re-export it as PNG or JPEG") from None
    return _array_to_rgb(_apply_orientation(a, orientation), name)


# --------------------------------------------------------------------------- public


def load_image(src: ImageSource, max_pixels: int = 80_000_000) -> np.ndarray:
    """Load an image as upright RGB.

    Args:
        src: a path, the encoded bytes of a file, a PIL image, or an array of shape
            (H, W), (H, W, 1|2|3|4) with dtype uint8, uint16 or float in [0, 1].
        max_pixels: refuse images with more pixels than this, checked from the header
            before decoding (decompression-bomb guard).

    Returns:
        (H, W, 3) uint8 RGB, EXIF orientation applied, alpha composited over white,
        16-bit data rounded to 8 bits.

    Raises:
        InputError: missing/empty/unreadable/truncated file, not an image, too large, zero size.
        ShapeError: an array of the wrong shape or value range.
    """
    if isinstance(src, np.ndarray):
        if src.size > max_pixels * (src.shape[2] if src.ndim == 3 else 1):
            raise InputError(f"<array>: image of shape {src.shape} is above the {max_pixels / 1e6:.1f} MP limit")
        return _array_to_rgb(src, "<array>")
    if isinstance(src, Image.Image):
        w, h = src.size
        if w * h > max_pixels:
            raise InputError(f"<PIL image>: image is {w}x{h}, above the {max_pixels / 1e6:.1f} MP limit")
        return _decode_pil(src, "<PIL image>")
    if isinstance(src, (bytes, bytearray, memoryview)):
        data, name = bytes(src), "<bytes>"
        if not data:
            raise InputError("<bytes>: image data is empty; expected the bytes of an image file")
    elif isinstance(src, (str, os.PathLike)):
        path = Path(src)
        name = str(path)
        if not path.exists():
            raise InputError(f"{name}: image file not found; check the path")
        if path.is_dir():
            raise InputError(f"{name} is a folder; expected an image file")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InputError(f"{name}: cannot read image file ({exc.strerror or exc})") from None
        if not data:
            raise InputError(f"{name}: image file is empty (0 bytes); expected {_SUPPORTED}")
    else:
        raise InputError(f"expected an image path, bytes, PIL image or numpy array, got {type(src).__name__}")

    img = _open_checked(data, name, max_pixels)
    if _is_16bit_colour(img):
        a = _decode_16bit_colour(data)
        if a is not None and a.shape[1::-1] == img.size:
            return _array_to_rgb(_apply_orientation(a, _orientation(img)), name)
    return _decode_pil(img, name)


def save_image(path: str | os.PathLike, rgb: np.ndarray, quality: int = 95, overwrite: bool = True) -> Path:
    """Write an (H, W, 3) uint8 RGB image atomically; the format follows the suffix."""
    path = Path(path)
    if not (isinstance(rgb, np.ndarray) and rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.dtype == np.uint8):
        got = f"{rgb.shape} {rgb.dtype}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
        raise ShapeError(f"save_image expects an (H, W, 3) uint8 RGB array, got {got}")
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ConfigError(f"cannot tell the image format of {path}; use a .png, .jpg or .webp suffix")
    kwargs = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    with atomic_path(path, overwrite=overwrite) as tmp:
        Image.fromarray(np.ascontiguousarray(rgb)).save(tmp, format=fmt, **kwargs)
    return path


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    path = Path(path)
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    except FileNotFoundError:
        raise InputError(f"{path}: file not found; cannot compute its sha256") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    return digest.hexdigest()


def resize_max(image: np.ndarray, max_size: int) -> np.ndarray:
    """Downscale (H, W, C) so that max(H, W) <= max_size (cv2.INTER_AREA); smaller images are returned as-is."""
    if max_size < 1:
        raise ConfigError(f"max_size must be >= 1, got {max_size}")
    h, w = image.shape[:2]
    if max(h, w) <= max_size:
        return image
    import cv2  # noqa: PLC0415

    scale = max_size / max(h, w)
    new_w = min(max_size, max(1, round(w * scale)))
    new_h = min(max_size, max(1, round(h * scale)))
    return cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
