"""Paste-back: unchanged crops keep the original pixels, changes blend in without a box edge."""

import numpy as np
import pytest

from avatar.face.blend import PasteBack
from avatar.face.crop import crop_matrix, make_crop


@pytest.fixture(scope="module")
def scene(portrait):
    frame = np.ascontiguousarray(portrait[:, :, :3])
    m = crop_matrix((256.0, 220.0, 300.0), 256)  # a 300 px box, rendered at 256: resampled both ways
    crop = make_crop(frame, np.zeros((478, 3), np.float32), m, 256).image
    return frame, m, crop


def test_an_unchanged_crop_gives_back_the_original_pixels(scene):
    frame, m, crop = scene
    out = PasteBack(frame, m, 256, source_crop=crop)(crop)
    assert out.shape == frame.shape and out.dtype == np.uint8
    assert np.array_equal(out, frame)  # no resampling blur on anything that did not move


def test_a_change_blends_in_locally_without_a_box_edge(scene):
    frame, m, crop = scene
    changed = crop.copy()
    changed[96:160, 96:160] = 255 - changed[96:160, 96:160]  # a block in the middle of the crop
    paste = PasteBack(frame, m, 256, source_crop=crop)
    out = paste(changed).astype(int)
    # the change shows where it was made (crop px 96..160 ↔ frame ≈ 218..293, 182..257)
    centre = np.abs(out[225:250, 260:285] - frame[225:250, 260:285].astype(int)).mean()
    assert centre > 60
    # far from it, and along the crop's border in the frame, the portrait is untouched
    x0, y0, x1, y1 = paste.roi
    assert np.array_equal(out[:y0], frame[:y0]) and np.array_equal(out[y1:], frame[y1:])
    border = np.concatenate([out[y0:y1, x0 + 1], out[y0:y1, x1 - 2], out[y0 + 1, x0:x1], out[y1 - 2, x0:x1]])
    ref = np.concatenate([frame[y0:y1, x0 + 1], frame[y0:y1, x1 - 2], frame[y0 + 1, x0:x1], frame[y1 - 2, x0:x1]]).astype(int)
    assert np.abs(border - ref).max() <= 1
    assert np.array_equal(out[y0 + 5:y0 + 40, x0 + 5:x0 + 40], frame[y0 + 5:y0 + 40, x0 + 5:x0 + 40])


def test_without_a_source_crop_the_feather_hides_the_box(scene):
    frame, m, crop = scene
    out = PasteBack(frame, m, 256)(np.zeros_like(crop)).astype(int)  # a black crop
    x0, y0, x1, y1 = PasteBack(frame, m, 256).roi
    mid = (y0 + y1) // 2
    assert out[mid, (x0 + x1) // 2].max() <= 1  # fully replaced in the middle
    edge = np.abs(out[mid, x0 + 1] - frame[mid, x0 + 1].astype(int)).max()
    assert edge <= 2  # ... and not at all at the box edge


def test_a_thin_faint_change_shows_whole_not_mixed_with_the_original(scene):
    """A 1-px line changed by 12 levels (a thin strip a moving head uncovers, a faint strand
    moving off) is the crop's own there: the original must not show through it half-way."""
    frame, m, crop = scene
    changed = crop.copy()
    changed[60:200, 121] = np.clip(crop[60:200, 121].astype(int) + 12, 0, 255).astype(np.uint8)
    paste = PasteBack(frame, m, 256, source_crop=crop)
    out = paste(changed).astype(int)
    full = PasteBack(frame, m, 256)  # the same crop, pasted with the plain feather (1 in the middle)
    ref = full(changed).astype(int)
    # the band's centre column in the frame (crop x 121.5 ↔ frame x ≈ 256 - 150 + 121.5 × 300 / 256)
    x = int(round(256 - 150 + 121 * 300 / 256))
    rows = slice(int(220 - 150 + 80 * 300 / 256), int(220 - 150 + 180 * 300 / 256))
    assert np.abs(out[rows, x] - ref[rows, x]).max() <= 2
    assert np.abs(out[rows, x] - frame[rows, x].astype(int)).mean() > 6


def test_a_crop_past_the_photos_edge_is_not_feathered_there(portrait):
    """A tight portrait: the crop box runs past the photo's top edge. There is no box edge to
    hide there, so the animation shows whole up to the photo's edge (a feather blended the still
    photo in: moving hair left a ghost at its old place); inside the photo it still fades out."""
    frame = np.ascontiguousarray(portrait[:, :, :3])
    m = crop_matrix((256.0, 140.0, 300.0), 256)  # the box spans frame y -10..290: the ramp reaches in
    crop = make_crop(frame, np.zeros((478, 3), np.float32), m, 256).image
    changed = 255 - crop
    for source_crop in (crop, None):
        paste = PasteBack(frame, m, 256, source_crop=source_crop)
        out = paste(changed).astype(int)
        x0, y0, x1, y1 = paste.roi
        assert y0 == 0
        mid = (x0 + x1) // 2
        # frame rows 0..5 at mid-width: the inverted crop, not the original
        assert np.abs(out[0:6, mid - 20:mid + 20] - (255 - frame[0:6, mid - 20:mid + 20].astype(int))).mean() < 4
        # the bottom edge of the box lies inside the photo: feathered to the original there
        assert np.abs(out[y1 - 2, mid - 20:mid + 20] - frame[y1 - 2, mid - 20:mid + 20].astype(int)).max() <= 2


def test_feather_mask_is_full_size_with_no_side_feathered():
    """A crop that overhangs the photo on every side feathers no side: still an (S, S) mask of ones
    (it was (1, 1), which warped to nothing)."""
    from avatar.face.blend import feather_mask

    m = feather_mask(64, 0.1, (False, False, False, False))
    assert m.shape == (64, 64) and np.all(m == 1.0)
    assert feather_mask(64, 0.1, (True, False, False, False))[:, 0].max() == 0.0


def _fine_scene(side: int = 512, size: int = 256, shift: float = 8.0):
    """A frame of fine texture (a photo's grain and strands, finer than a crop at half its scale
    can hold), the crop of its middle at half scale, that crop moved ``shift`` crop px to the
    right through a backward map, and the frame moved the same (2 × ``shift`` frame px): the truth."""
    import cv2

    rng = np.random.default_rng(5)
    frame = cv2.GaussianBlur(rng.integers(0, 256, (side, side, 3)).astype(np.uint8), (0, 0), 0.8)
    m = np.array([[0.5, 0.0, 0.0], [0.0, 0.5, 0.0]])
    crop = make_crop(frame, np.zeros((478, 3), np.float32), m, size)
    xs, ys = np.meshgrid(np.arange(size, dtype=np.float32), np.arange(size, dtype=np.float32))
    source_map = np.dstack([xs - shift, ys]).astype(np.float32)
    moved = cv2.remap(crop.image, source_map[..., 0], source_map[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    truth = np.roll(frame, int(2 * shift), axis=1)
    return frame, m, crop, moved, source_map, truth


def test_paste_back_puts_back_the_detail_a_crop_cannot_hold():
    """A crop at half the frame's scale holds half its detail; pasted back, a moved face came out
    soft next to the sharp photo (0.44 of its fine detail on a 2048 px portrait). With the crop's
    backward map, paste-back moves the lost detail along: the moved frame comes back closer to the
    truth, and where nothing of the map's source is drawn (own 0) nothing is added."""
    from avatar.face.blend import MappedCrop

    frame, m, crop, moved, source_map, truth = _fine_scene()
    paste = PasteBack(frame, m, 256, source_crop=crop.image)
    inner = (slice(100, 400), slice(100, 400))
    plain = paste(moved)
    sharp = paste(MappedCrop.wrap(moved, source_map, np.ones((256, 256), np.float32)))
    err_plain = np.abs(plain[inner].astype(float) - truth[inner]).mean()
    err_sharp = np.abs(sharp[inner].astype(float) - truth[inner]).mean()
    assert err_sharp < 0.5 * err_plain, (err_sharp, err_plain)
    # unmoved, the frame itself
    xs, ys = np.meshgrid(np.arange(256, dtype=np.float32), np.arange(256, dtype=np.float32))
    still = paste(MappedCrop.wrap(crop.image.copy(), np.dstack([xs, ys]), np.ones((256, 256), np.float32)))
    assert np.array_equal(still, frame)
    none = paste(MappedCrop.wrap(moved, source_map, np.zeros((256, 256), np.float32)))
    assert np.array_equal(none, plain)


def test_the_detail_put_back_between_pixels_keeps_most_of_its_contrast():
    """A face moved by a fraction of a pixel samples the lost detail between the portrait's
    pixels. Bilinear, that kept 0.75 of the frame's fine contrast at half a frame pixel; bicubic
    keeps 0.86."""
    import cv2

    from avatar.face.blend import MappedCrop

    frame, m, crop, moved, source_map, _ = _fine_scene(shift=8.25)  # 16.5 frame px
    paste = PasteBack(frame, m, 256, source_crop=crop.image)
    inner = (slice(100, 400), slice(100, 400))
    out = paste(MappedCrop.wrap(moved, source_map, np.ones((256, 256), np.float32)))

    def contrast(image: np.ndarray) -> float:
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
        return float(np.abs(cv2.Laplacian(grey, cv2.CV_32F)).mean())

    kept = contrast(out[inner]) / contrast(frame[inner])
    assert kept > 0.8, kept


def test_a_plate_the_head_moved_off_in_the_crops_edge_feather_shows_without_the_old_hair():
    """A tight crop's top feather blends the crop into the portrait. Where the head moved off
    the still plate there, the portrait's own hair must not show through that blend (a faint
    copy of its old outline above the head), and where the crop still shows the person as it
    was, the portrait's own pixels stay."""
    rng = np.random.default_rng(3)
    frame = np.clip(np.array([120, 140, 110]) + rng.normal(0, 3, (400, 400, 3)), 0, 255).astype(np.uint8)
    m = crop_matrix((200.0, 200.0, 256.0), 256)  # crop px = frame px - 72
    hair = (slice(72 + 8, 72 + 28), slice(72 + 90, 72 + 170))  # in the crop's top feather (31 px)
    frame[hair] = (40, 30, 25)
    source = make_crop(frame, np.zeros((478, 3), np.float32), m, 256).image
    plate = source.copy()
    plate[8:28, 90:170] = (121, 139, 111)  # the person taken out and the hole filled
    moved_off = plate.copy()  # the head has moved away: the crop shows the plate there
    out = PasteBack(frame, m, 256, source_crop=source, plate=plate)(moved_off).astype(int)
    old = PasteBack(frame, m, 256, source_crop=source)(moved_off).astype(int)
    rows, cols = slice(72 + 11, 72 + 28), slice(72 + 95, 72 + 165)
    wall = np.array([121, 139, 111])
    assert np.abs(out[rows, cols] - wall).mean() < 6   # the plate, not the hair
    assert np.abs(old[rows, cols] - wall).mean() > 25  # (without it the hair showed through)
    assert np.array_equal(PasteBack(frame, m, 256, source_crop=source, plate=plate)(source), frame)


def test_hair_moved_into_the_crops_edge_feather_over_the_wall_stays_opaque():
    """A head moving up or rolling brings hair into the crop's top feather where the photo has
    only wall: blended through the feather, it hung there as a semi-transparent copy of itself
    (portrait_02 × driving_01). Near where the person was, the crop now shows through there at a
    ramp four times as steep as the feather's; far from it, and where the crop shows the wall,
    nothing changes."""
    rng = np.random.default_rng(4)
    frame = np.clip(np.array([200, 195, 185]) + rng.normal(0, 2, (400, 400, 3)), 0, 255).astype(np.uint8)
    m = crop_matrix((200.0, 200.0, 256.0), 256)  # crop px = frame px - 72; the feather is 31 px
    frame[72 + 40:72 + 70, 72 + 90:72 + 170] = (40, 30, 25)  # the hair, just below the feather
    source = make_crop(frame, np.zeros((478, 3), np.float32), m, 256).image
    plate = source.copy()
    plate[40:70, 90:170] = (200, 195, 185)  # the person taken out and the hole filled
    moved_up = plate.copy()
    moved_up[10:40, 110:190] = (40, 30, 25)  # the hair moved 30 px up and 20 right, into the feather
    out = PasteBack(frame, m, 256, source_crop=source, plate=plate)(moved_up).astype(int)
    old = PasteBack(frame, m, 256, source_crop=source)(moved_up).astype(int)
    rows, cols = slice(72 + 14, 72 + 28), slice(72 + 115, 72 + 185)  # inside it, 14-28 px from the crop's edge
    hair = np.array([40, 30, 25])
    assert np.abs(old[rows, cols] - hair).mean() > 40  # blended with the wall: the copy
    assert np.abs(out[rows, cols] - hair).mean() < 10, np.abs(out[rows, cols] - hair).mean()
    # the crop's very edge still meets the photo around it
    assert np.abs(out[72, 72 + 115:72 + 185] - frame[72, 72 + 115:72 + 185]).mean() < 25
    # far from where the person was (beyond 0.15 of the crop), the feather is the feather
    far = plate.copy()
    far[10:40, 10:40] = (40, 30, 25)  # 50+ px from the hair's hole
    np.testing.assert_array_equal(PasteBack(frame, m, 256, source_crop=source, plate=plate)(far)[72 + 10:72 + 40, 72 + 10:72 + 40],
                                  PasteBack(frame, m, 256, source_crop=source)(far)[72 + 10:72 + 40, 72 + 10:72 + 40])
    # a crop that gives the photo back still gives it back bit for bit
    assert np.array_equal(PasteBack(frame, m, 256, source_crop=source, plate=plate)(source), frame)

