from __future__ import annotations

import hashlib
import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image, ImageFile

from avatar.errors import ConfigError, InputError, ShapeError
from avatar.media.image import load_image, resize_max, save_image, sha256_file


def _marked(w=40, h=20):
    """White image with a red block in the top-left corner."""
    a = np.full((h, w, 3), 255, np.uint8)
    a[:6, :6] = (255, 0, 0)
    return a


def _red_corner(img):
    h, w = img.shape[:2]
    corners = {"tl": img[:4, :4], "tr": img[:4, w - 4 :], "bl": img[h - 4 :, :4], "br": img[h - 4 :, w - 4 :]}
    return [k for k, v in corners.items() if v[..., 0].mean() > 180 and v[..., 1].mean() < 90]


def test_exif_rotated_jpeg_is_upright(tmp_path):
    p = tmp_path / "phone.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored image must be rotated 90° clockwise to display
    Image.fromarray(_marked()).save(p, quality=95, exif=exif)
    img = load_image(p)
    assert img.shape == (40, 20, 3) and img.dtype == np.uint8
    assert _red_corner(img) == ["tr"]


def test_rgba_composited_over_white():
    a = np.zeros((4, 6, 4), np.uint8)
    a[..., 0] = 255
    a[:, :2, 3] = 0
    a[:, 2:4, 3] = 128
    a[:, 4:, 3] = 255
    buf = io.BytesIO()
    Image.fromarray(a, "RGBA").save(buf, format="PNG")
    img = load_image(buf.getvalue())
    assert img[0, 0].tolist() == [255, 255, 255]
    assert img[0, 5].tolist() == [255, 0, 0]
    assert abs(int(img[0, 2, 1]) - 127) <= 1 and img[0, 2, 0] == 255
    # array input with alpha behaves the same
    assert np.array_equal(load_image(a), img)


def test_grayscale_and_la(tmp_path):
    g = np.tile(np.arange(0, 250, 10, dtype=np.uint8), (5, 1))
    p = tmp_path / "g.png"
    Image.fromarray(g, "L").save(p)
    img = load_image(p)
    assert img.shape == (5, 25, 3)
    assert np.array_equal(img[..., 0], g) and np.array_equal(img[..., 2], g)
    la = np.stack([g, np.zeros_like(g)], -1)
    p2 = tmp_path / "la.png"
    Image.fromarray(la, "LA").save(p2)
    assert (load_image(p2) == 255).all()


def test_16bit_png_gray_and_rgb(tmp_path):
    g = np.array([[0, 255, 257 * 100, 65535]], np.uint16)
    p = tmp_path / "g16.png"
    cv2.imwrite(str(p), g)
    assert load_image(p)[0, :, 0].tolist() == [0, 1, 100, 255]  # rounded, not the high byte
    rgb = np.zeros((2, 3, 3), np.uint16)
    rgb[..., 0] = 65535  # R
    rgb[..., 1] = 255  # G: high byte would give 0
    rgb[..., 2] = 257 * 37  # B
    p2 = tmp_path / "rgb16.png"
    cv2.imwrite(str(p2), rgb[..., ::-1])  # cv2 writes BGR
    assert load_image(p2)[0, 0].tolist() == [255, 1, 37]
    p3 = tmp_path / "rgb16.tif"
    cv2.imwrite(str(p3), rgb[..., ::-1])
    assert load_image(p3)[1, 2].tolist() == [255, 1, 37]


def test_palette_with_transparency_and_cmyk(tmp_path):
    pal = Image.new("P", (4, 4), 1)
    pal.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    pal.putpixel((0, 0), 0)
    pal.info["transparency"] = 1  # index 1 (blue) is transparent → white
    p = tmp_path / "pal.png"
    pal.save(p, transparency=1)
    img = load_image(p)
    assert img[0, 0].tolist() == [255, 0, 0] and img[3, 3].tolist() == [255, 255, 255]
    cmyk = Image.new("CMYK", (8, 8), (255, 0, 0, 0))  # pure cyan
    p2 = tmp_path / "cmyk.jpg"
    cmyk.save(p2, quality=95)
    c = load_image(p2)[4, 4].astype(int)
    assert c[0] < 60 and c[1] > 200 and c[2] > 200


def test_arrays_of_various_dtypes():
    f = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    out = load_image(f)
    assert out.shape == (3, 4, 3) and out[0, 0, 0] == 0 and out[-1, -1, 0] == 255
    assert load_image(np.full((2, 2, 3), 65535, np.uint16)).max() == 255
    with pytest.raises(ShapeError, match=r"\[0, 1\]"):
        load_image(np.full((2, 2, 3), 200.0, np.float32))
    with pytest.raises(ShapeError):
        load_image(np.zeros((2, 2, 5), np.uint8))
    with pytest.raises(InputError, match="zero size"):
        load_image(np.zeros((0, 5, 3), np.uint8))


def test_pil_image_input_applies_exif():
    exif = Image.Exif()
    exif[0x0112] = 3  # upside down
    buf = io.BytesIO()
    Image.fromarray(_marked()).save(buf, format="JPEG", quality=95, exif=exif)
    img = load_image(Image.open(io.BytesIO(buf.getvalue())))
    assert _red_corner(img) == ["br"]


@pytest.mark.parametrize("kind", ["truncated", "corrupt"])
def test_truncated_or_corrupt_jpeg(tmp_path, kind):
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, format="JPEG")
    data = buf.getvalue()
    if kind == "truncated":
        data = data[: len(data) // 2]
    else:
        data = data[:200] + bytes(rng.integers(0, 255, len(data) - 200, dtype=np.uint8))
    p = tmp_path / f"{kind}.jpg"
    p.write_bytes(data)
    with pytest.raises(InputError, match=f"{kind}.jpg"):
        load_image(p)


def test_bad_files(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(InputError, match=r"empty\.png.*empty"):
        load_image(tmp_path / "empty.png")
    (tmp_path / "notes.png").write_text("hello, I am not an image\n")
    with pytest.raises(InputError, match=r"notes\.png.*not a readable image.*text"):
        load_image(tmp_path / "notes.png")
    with pytest.raises(InputError, match=r"missing\.jpg.*not found"):
        load_image(tmp_path / "missing.jpg")


def test_mp4_given_as_image(tmp_path, media):
    p = media.raw_video(tmp_path / "clip.mp4", [media.smooth_frame(i) for i in range(3)])
    with pytest.raises(InputError, match=r"clip\.mp4.*video"):
        load_image(p)


def _png_header_only(w, h):
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b"")


def test_too_large_checked_before_decoding(tmp_path, monkeypatch):
    p = tmp_path / "big.png"
    Image.fromarray(np.zeros((100, 200, 3), np.uint8)).save(p)

    def no_decode(self):
        raise AssertionError("pixels were decoded before the size check")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decode)
    with pytest.raises(InputError, match=r"big\.png.*200x100.*limit"):
        load_image(p, max_pixels=10_000)
    monkeypatch.undo()
    assert load_image(p, max_pixels=20_000).shape == (100, 200, 3)
    # a 100000 x 100000 header with almost no data: refused, nothing allocated
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header_only(100_000, 100_000))
    with pytest.raises(InputError, match=r"bomb\.png.*too large|bomb\.png.*limit"):
        load_image(bomb)


def test_save_image_roundtrip_and_errors(tmp_path):
    a = (np.random.default_rng(1).integers(0, 255, (7, 9, 3))).astype(np.uint8)
    p = save_image(tmp_path / "o.png", a)
    assert np.array_equal(load_image(p), a)
    assert [x.name for x in tmp_path.iterdir()] == ["o.png"]
    with pytest.raises(ConfigError, match="suffix"):
        save_image(tmp_path / "o.nope", a)
    with pytest.raises(ShapeError):
        save_image(tmp_path / "o2.png", a.astype(np.float32))
    assert sha256_file(p) == hashlib.sha256(p.read_bytes()).hexdigest()
    with pytest.raises(InputError, match="nothere"):
        sha256_file(tmp_path / "nothere")


def test_resize_max():
    a = np.zeros((200, 400, 3), np.uint8)
    a[:, 200:] = 200
    out = resize_max(a, 100)
    assert out.shape == (50, 100, 3)
    assert out[:, :48].max() == 0 and out[:, 52:].min() == 200
    small = np.zeros((10, 20, 3), np.uint8)
    assert resize_max(small, 100) is small
    with pytest.raises(ConfigError):
        resize_max(a, 0)
