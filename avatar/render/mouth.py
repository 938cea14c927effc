"""The inside of an open mouth, drawn where the target opens wider than the portrait.

Pure functions over one frame's inner-lip landmarks, in a mouth frame: u runs from the left
inner corner (-1) to the right one (+1), v is the distance in pixels below the line between
them. What they draw follows a real mouth's layout rather than a flat slot:

* upper teeth hang from under the upper lip: a row of individual teeth (wide incisors in the
  middle, narrower towards the corners as the arch turns away), each with a rounded face,
  faint lines between neighbours that open into dark notches at the biting edge, a shadow
  under the lip and a slightly translucent edge; fixed to the skull, so a relaxed lip shows a
  short band of them and a raised one (a smile) more, up to the crown; one rigid row, so a lip
  curving down towards the corners (a round opening) covers them there; they fade into the dark
  towards the corners;
* lower teeth mostly behind the lower lip: their tips, lit, rise above it with the jaw (a
  share of the opening);
* an oral cavity darkest under the upper lip and teeth and in the corners, lit towards its floor;
* all of it dimmer in a narrow opening, which lets less light in, and shaded just behind the
  lower lip;
* a tongue only when the mouth is wide, rising from behind the lower teeth;
* soft inner lip edges: the inner-lip polygon rounded by corner cutting, anti-aliased and
  feathered a little, never reaching beyond the polygon itself (the open area never exceeds
  what the motion asks for);
* colours from the portrait's own lips and skin light (teeth tinted like the eye whites), with
  grain matched to the portrait's.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
from scipy.ndimage import median_filter

from ..face import topology
from ..motion import rig
from .triangles import coverage

UPPER_CHAIN = (rig.INNER_CORNERS[0],) + rig.INNER_UPPER + (rig.INNER_CORNERS[1],)
LOWER_CHAIN = (rig.INNER_CORNERS[0],) + rig.INNER_LOWER + (rig.INNER_CORNERS[1],)
TOOTH_LENGTH = 0.17        # a central upper incisor's whole crown, × mouth width: the most a raised lip shows
# how much of it shows below a relaxed upper lip, × mouth width: the upper teeth are fixed to the
# skull, so more shows only as the lip rises above its rest (a smile), not as the jaw drops. In
# five real talking clips the top third of an open mouth is its darkest part (0.6–1.0 × the lips'
# colour) and the bottom third its brightest (1.0–1.4 ×, lower teeth): the whole crown hung from
# the lip at every opening was a row of white keys over a black band. Shorter (0.045, 0.07) lost
# a face tracker's reading of the opening (cross-reenactment mouth correlation down to −0.05)
UPPER_SHOW = 0.1
UNDER_LIP = 0.7  # the upper teeth's light right under the lip, which overhangs them, × their light further down
LOWER_TOOTH_LENGTH = 0.12  # the most of the lower incisors that shows above the lower lip, × mouth width
LOWER_SHARE = 0.35  # up to that, this share of the opening's height: they ride up with the jaw
# the lower tips show from this opening (height × width) and fully at the second value (in those
# clips from the smallest openings a tracker measures; drawn from 0.25 they were missing)
LOWER_SHOW = (0.06, 0.16)
# the upper row is gone at this |u| and fades in over the second value towards the middle: the
# side teeth recede into the dark of the cheeks (buccal corridor); drawn out to 0.93 they hung
# from the lip's steep corners as long slanted "fangs" in a wide mouth
UPPER_FADE = (0.8, 0.3)
FULL_ROW = (0.93, 0.18)  # the row nearly to the corners: what a video avatar's own open mouths show
ARCH_EDGE = np.radians(75.0)  # the arch angle seen at the mouth corners
# tooth widths along the arch (radians from the midline): central, lateral incisor, canine, premolars, molar
_MIDDLE = np.array([-0.15, 0.0, 0.15])  # u where the upper lip's middle is read
_UPPER_TEETH = np.cumsum([0.36, 0.27, 0.28, 0.3, 0.3])
_LOWER_TEETH = np.cumsum([0.24, 0.24, 0.27, 0.3, 0.3])
# A narrow opening lets little light in: the inside of a mouth opened by this share of its
# width is lit APERTURE[0] as brightly as a wide one, rising linearly to full light at APERTURE[1]
# (real mouths in video, 7 clips: the opening's mean luminance is 0.41 of the cheeks' below a gap
# of 0.05 of the width and 0.55–0.70 above 0.1; a stronger dimming, 0.4, lost a face tracker's
# reading of the opening on the cross-reenactment bench)
APERTURE = (0.6, 0.12)
# the tongue shows once the opening's height passes this share of its width (from 0.16, a face
# tracker told a synthetic small talker's openings less well from a wide one's)
TONGUE_FROM = 0.28
TONGUE_EDGE = 0.16  # the width of the tongue's back edge, × the opening's height
TONGUE_ROLL = 0.55   # the tongue's light lost where its sides roll down to the floor of the mouth
TONGUE_SHEEN = 0.2   # its wet middle's sheen: this share of the way to the teeth's colour
# the cavity's colour × the lips': in video an open mouth's middle is about the lips' own colour
# (0.8–1.1 × in red, 0.9–1.7 × in green and blue, tongue included, 7 clips), never a black hole
CAVITY = 0.6
# the share of an own open mouth that must be bright for its own teeth to be used (from the first
# value, fully at the second): a gap between parted lips shows 0.1 % to 8 % of such pixels, an open
# mouth with its upper teeth in view about half
TEETH_SHOWN = (0.1, 0.25)
# Drawn teeth's luminance: the larger of these × the cheeks' and × the eye whites'. Over open
# mouths of seven real clips (every 4th frame opened past 0.15 of the width) the brightest tenth of
# the opening was 1.0 / 1.0 / 1.0 / 0.8 / 0.8 × the cheeks on light skin, but 1.5 × on dark skin
# (talk_03) and on driving_03's brightly lit teeth: skin's own colour is no measure of the light.
# Against the eye whites (a white object in the same light) the ratio stays 0.9–1.3 (1.26 and 1.23
# where the cheeks under-tell it); shaded or hidden eye whites leave the cheeks' figure.
TEETH_OVER_CHEEKS = 1.15
TEETH_OVER_SCLERA = 1.2
# Rounded lips (an "oh", an "oo") are pushed forward over the upper teeth: the row shows fully from
# an inner-lip width of ROUNDED[1] × the portrait's at rest and not at all below ROUNDED[0]. Over
# seven real clips' open mouths (every 3rd frame opened past 0.12 of the width, the middle half's
# brightest quarter of the top fifth of the opening, over the lips): 0.19–0.62 (teeth hidden) at
# widths under 0.85 × the speaker's closed mouth, 0.38–1.33 at 0.85–0.95, 0.61–1.57 at 0.95–1.05.
# From (0.85, 1.0) a face tracker lost the opening on a driver with brightly lit teeth whose
# reference frame is wider than its rest (portrait_03 × driving_03 mouth correlation 0.899 → 0.855).
ROUNDED = (0.75, 0.9)
LIP_SHADOW = 0.6        # darkening right above the lower lip, fading over LIP_SHADOW_REACH × the opening
LIP_SHADOW_REACH = 0.15
LIP_CONTACT = 1.5       # px: the lip's shade on the lower teeth, where it touches them
# The portrait's own open mouth is split between the lips that carry it (see own_lower_part): a
# column is lower teeth where its top quarter is under SPLIT_DARK × its bottom quarter, the split
# line is the median of SPLIT_COLUMNS columns, soft over SPLIT_SOFT px
SPLIT_COLUMNS = 5
SPLIT_SOFT = 2.0
SPLIT_DARK = 0.6
# The dark crease where the lips meet runs on past the inner-lip landmarks, at the corners most
# (2-5 px at 512 on portrait_01, 02, 05 and the astronaut). Lying in the lip triangles, it was
# stretched with them as the mouth opened: a dark-red wedge, a "wing", beside the drawn opening
# at each corner. Its pixels (a line thinner than CREASE_WIDTH px, darker than the lip round it
# by CREASE_DARK × the lips' median luminance, between the inner and outer lip lines, reaching
# the opening) are painted over with the lips around them as the mouth opens past the
# portrait's own opening: from CREASE_OPEN[0] px (mean gap, at 512) more, fully at CREASE_OPEN[1].
# A little open, the crease is what real lips show at their corners: painted over from the first
# pixel, the lips bulged into the corners and a face tracker read smaller openings
# (portrait_05 × driving_03 mouth correlation 0.880 → 0.821; 0.872 from 4 to 12 px, 0.877 from 6 to 14).
CREASE_DARK = 0.25
CREASE_WIDTH = 9
CREASE_VALUE = 0.6  # its brightest channel under this × the lips' band's median
CREASE_OPEN = (6.0, 14.0)
CREASE_CORNERS = (0.6, 0.8)  # |u| (inner corners at ±1) from which it is painted over, fully at the second


@dataclass(frozen=True)
class MouthFrame:
    """A mouth's frame for one target: left inner corner, unit axes, width, and the inner upper
    and lower lip profiles as (u, v) samples sorted by u."""

    corner: np.ndarray
    ux: np.ndarray
    uy: np.ndarray
    width: float
    upper: np.ndarray
    lower: np.ndarray

    def coords(self, xx: np.ndarray, yy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(u, v) of pixel centres ``xx``, ``yy``."""
        dx, dy = xx - self.corner[0], yy - self.corner[1]
        return (dx * self.ux[0] + dy * self.ux[1]) / self.width * 2 - 1, dx * self.uy[0] + dy * self.uy[1]

    def lip_lines(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """v of the upper and lower inner lip at ``u``."""
        return np.interp(u, self.upper[:, 0], self.upper[:, 1]), np.interp(u, self.lower[:, 0], self.lower[:, 1])


def mouth_frame(landmarks: np.ndarray) -> MouthFrame:
    """The :class:`MouthFrame` of (478, 2+) target landmarks."""
    c0 = landmarks[rig.INNER_CORNERS[0], :2].astype(np.float64)
    c1 = landmarks[rig.INNER_CORNERS[1], :2].astype(np.float64)
    width = float(np.hypot(*(c1 - c0))) or 1.0
    ux = (c1 - c0) / width
    uy = np.array([-ux[1], ux[0]])

    def profile(chain: tuple[int, ...]) -> np.ndarray:
        rel = landmarks[list(chain), :2] - c0
        uv = np.column_stack([(rel @ ux) / width * 2 - 1, rel @ uy])
        return uv[np.argsort(uv[:, 0], kind="stable")]

    return MouthFrame(c0, ux, uy, width, profile(UPPER_CHAIN), profile(LOWER_CHAIN))


def smooth_loop(loop: np.ndarray, iterations: int = 3) -> np.ndarray:
    """Chaikin corner cutting of a closed polygon: its corners rounded into a quadratic B-spline.
    Every new point lies on an edge of the previous polygon, so a convex corner is cut inwards."""
    pts = np.asarray(loop, np.float64)
    for _ in range(iterations):
        nxt = np.roll(pts, -1, axis=0)
        pts = np.stack([0.75 * pts + 0.25 * nxt, 0.25 * pts + 0.75 * nxt], 1).reshape(-1, 2)
    return pts


def opening_alpha(loop: np.ndarray, x0: int, y0: int, w: int, h: int, feather: float = 0.6) -> np.ndarray:
    """(h, w) float32 in [0, 1]: how much of each pixel of the box at (x0, y0) is open mouth.

    The inner-lip polygon ``loop`` (N, 2) with its corners rounded, anti-aliased (4× supersampled)
    and feathered by a Gaussian of ``feather`` px; it never exceeds the polygon's own coverage."""
    exact = coverage(loop, x0, y0, w, h)
    soft = coverage(smooth_loop(loop), x0, y0, w, h)
    if feather > 0:
        soft = cv2.GaussianBlur(soft, (0, 0), feather)
    return np.minimum(soft, exact)


def _arch(u: np.ndarray, bounds: np.ndarray, tooth_px: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pixel of a tooth row: the tooth's index from the midline, the position across it (0..1)
    and the distance in px to the nearest gap between teeth."""
    phi = np.abs(np.arcsin(np.clip(u * np.sin(ARCH_EDGE), -1.0, 1.0)))
    k = np.minimum(np.searchsorted(bounds, phi), len(bounds) - 1)
    lo = np.where(k > 0, bounds[np.maximum(k - 1, 0)], 0.0)
    t = np.clip((phi - lo) / (bounds[k] - lo), 0.0, 1.0)
    # a tooth's width on screen shrinks as the arch turns away (d u / d phi = cos phi / sin edge)
    px = (bounds[k] - lo) * np.cos(np.minimum(phi, 1.5)) / np.sin(ARCH_EDGE) * tooth_px
    return k, t, np.minimum(t, 1 - t) * px


def upper_length(u: np.ndarray, width: float, show: float | None = None) -> np.ndarray:
    """Visible length (px) of the upper teeth below the upper lip at ``u``: ``show`` px in the
    middle (default :data:`UPPER_SHOW` × ``width``, at most the crown, :data:`TOOTH_LENGTH`),
    shorter towards the corners as the arch turns away."""
    show = UPPER_SHOW * width if show is None else float(np.clip(show, 0.0, TOOTH_LENGTH * width))
    return show * (1 - 0.45 * u**2)


def rounded_show(width_ratio: float) -> float:
    """How much of the upper teeth's visible length still shows (0..1) at an inner-lip width of
    ``width_ratio`` × the portrait's own at rest (see :data:`ROUNDED`)."""
    return float(np.clip((width_ratio - ROUNDED[0]) / (ROUNDED[1] - ROUNDED[0]), 0.0, 1.0))


def upper_teeth(u: np.ndarray, below_lip: np.ndarray, width: float,
                fade: tuple[float, float] = UPPER_FADE, show: float | None = None,
                lowered: np.ndarray | float = 0.0) -> np.ndarray:
    """(…) float32 coverage of the upper teeth at mouth coordinates ``u`` and ``below_lip`` (px
    under the upper inner lip): only within their visible length below the upper lip (see
    :func:`upper_length`; each edge slightly rounded), less ``lowered`` (px the lip there hangs
    below its middle, which covers that much more of the fixed row), faded out at the corners."""
    length = upper_length(u, width, show) - lowered
    _, t, _ = _arch(u, _UPPER_TEETH, width / 2)
    length = length * (1 - 0.12 * (2 * t - 1) ** 6)  # rounded corners of each incisal edge
    cover = np.clip(length - below_lip + 0.5, 0.0, 1.0) * np.clip(below_lip + 1.5, 0.0, 1.0)
    return (cover * np.clip((fade[0] - np.abs(u)) / fade[1], 0.0, 1.0)).astype(np.float32)


def lower_teeth(u: np.ndarray, above_lip: np.ndarray, width: float, gap: np.ndarray, share: float = 1.0) -> np.ndarray:
    """Coverage of the lower teeth tips: a band above the lower lip, :data:`LOWER_SHARE` of the
    opening (at most :data:`LOWER_TOOTH_LENGTH`), × ``share``, shown as the mouth opens; the rest
    of them stays behind the lower lip."""
    show = share * np.clip((gap / width - LOWER_SHOW[0]) / (LOWER_SHOW[1] - LOWER_SHOW[0]), 0.0, 1.0)
    length = np.minimum(LOWER_SHARE * gap, LOWER_TOOTH_LENGTH * width) * (1 - 0.6 * u**2) * show
    cover = np.clip(length - above_lip + 0.5, 0.0, 1.0) * np.clip(above_lip + 1.5, 0.0, 1.0)
    return (cover * np.clip((0.65 - np.abs(u)) / 0.2, 0.0, 1.0)).astype(np.float32)


@lru_cache(maxsize=4)
def _tooth_jitter(seed: int) -> np.ndarray:
    """(16,) brightness of each tooth of a row (8 a side), the same every frame (read-only;
    a generator made anew costs more than the rest of the row's shading)."""
    jitter = 1.0 + 0.04 * np.random.default_rng(seed).standard_normal(16)
    jitter.setflags(write=False)
    return jitter


def _tooth_shade(u: np.ndarray, k: np.ndarray, t: np.ndarray, gap_px: np.ndarray, seed: int,
                gaps: float | np.ndarray = 0.3, relief: float = 0.18) -> np.ndarray:
    """Brightness of a tooth row: a rounded face per tooth (its edges ``relief`` darker than its
    middle), darker gaps (``gaps``: how much darker, per pixel or for all), each tooth a little
    different, darker towards the corners where the row turns into the mouth's shadow."""
    jitter = _tooth_jitter(seed)
    side = np.where(u < 0, 8, 0)
    shade = (1.0 - relief + relief * np.sin(np.pi * t)) * jitter[np.minimum(k, 7) + side]
    shade *= 1.0 - gaps * np.exp(-(gap_px / 0.6) ** 2)
    return shade * (1.0 - 0.45 * np.abs(u) ** 1.5)


def aperture_light(frame: MouthFrame) -> float:
    """How brightly the inside of the mouth is lit (0..1): by its opening's mean height over the
    middle half of its width, relative to the width (see :data:`APERTURE`)."""
    u = np.linspace(-0.5, 0.5, 9)
    v_up, v_low = frame.lip_lines(u)
    ratio = float(np.mean(np.maximum(v_low - v_up, 0.0))) / frame.width
    return float(np.clip(APERTURE[0] + (1 - APERTURE[0]) * ratio / APERTURE[1], APERTURE[0], 1.0))


def interior(frame: MouthFrame, xx: np.ndarray, yy: np.ndarray, cavity_rgb: np.ndarray, tongue_rgb: np.ndarray,
             teeth_rgb: np.ndarray, teeth_fade: tuple[float, float] = UPPER_FADE,
             upper_show: float | None = None, lower_share: float = 1.0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(h, w, 3) float32 synthetic mouth interior at pixel centres ``xx``, ``yy``, and its parts'
    coverages ({"upper_teeth", "lower_teeth", "tongue"}: (h, w) in [0, 1]) as drawn.
    ``upper_show``: px of the upper teeth shown below the lip's middle (see :func:`upper_length`);
    ``lower_share``: how much of the lower teeth's usual length shows above the lower lip."""
    u, v = frame.coords(xx, yy)
    v_up, v_low = frame.lip_lines(u)
    gap = np.maximum(v_low - v_up, 1e-3)
    # the upper teeth are one rigid row whose edge hangs from the lip's middle: where a round
    # opening's lip curves down towards the corners it covers them (drawn from the lip at every
    # column, the row ran down the sides of an "ah" as a white rim)
    lowered = np.maximum(v_up - float(np.mean(frame.lip_lines(_MIDDLE)[0])), 0.0)
    below, above = v - v_up, v_low - v
    rel = np.clip(below / gap, 0.0, 1.0)
    lateral = np.clip(1 - u**2, 0.0, 1.0)
    # the cavity: darkest under the upper lip and teeth, which shade it, and in the corners (the
    # cheeks' shadow); lit from the front towards the floor of the mouth behind the lower lip.
    # Lit evenly near every lip, it was a pale ring round the tongue, the corners as light as the middle
    img = cavity_rgb[None, None, :] * ((0.55 + 0.4 * rel) * (0.4 + 0.6 * lateral))[..., None]
    # the tongue: only in a wide mouth, a dome rising from behind the lower teeth to 0.7 of the
    # opening (real wide mouths, driving_01's "oh": their middle fifths are 0.66–0.73 × the lips'
    # light; a dome to half the opening left them at 0.42–0.46, a dark hole over a low mound)
    width = frame.width
    wide = np.clip((gap / width - TONGUE_FROM) / 0.12, 0.0, 1.0)
    dome = gap * 0.7 * np.clip(1 - (u**2 / 0.8) ** 2, 0, 1) * wide  # a broad mound, not a tent
    # its back edge soft, over a sixth of the opening: it rounds away from the light into the
    # throat (a 2-px edge drew a crisp arc, a cut-out)
    soft = np.maximum(2.0, TONGUE_EDGE * gap)
    tongue = np.clip((dome - above) / soft + 0.5, 0.0, 1.0) * np.clip(2 * dome / soft, 0.0, 1.0) * wide
    front = np.clip(1 - above / np.maximum(dome, 1e-3), 0, 1)
    lit = 0.7 + 0.3 * front  # front lit, the back falls into shadow
    # its top is rounded: the sides roll down away from the light, and the wet middle catches a
    # soft sheen towards the front (lit only from front to back, it was one flat colour)
    roll = 1 - TONGUE_ROLL * np.clip(u**2 / 0.8, 0, 1) ** 1.5
    sheen = TONGUE_SHEEN * np.exp(-((u / 0.3) ** 2) - ((front - 0.6) / 0.25) ** 2)
    flesh = tongue_rgb[None, None, :] * (lit * roll)[..., None]
    flesh = flesh + sheen[..., None] * (teeth_rgb[None, None, :] - flesh)
    img = img + tongue[..., None] * (flesh - img)
    # lower teeth tips, rising from behind the lower lip and lit from the front (in real talking
    # mouths they are the brightest part of the opening); narrow and close together, they read as
    # one band, not as the comb that the upper row's relief and gaps drew
    low = lower_teeth(u, above, width, gap, lower_share)
    k, t, gpx = _arch(u, _LOWER_TEETH, width / 2 * 0.85)
    low_rgb = teeth_rgb[None, None, :] * (0.85 * _tooth_shade(u, k, t, gpx, 1, gaps=0.05, relief=0.06))[..., None]
    img = img + low[..., None] * (low_rgb - img)
    # upper teeth in front of everything else, shaded under the lip and translucent at the edge
    up = upper_teeth(u, below, width, teeth_fade, upper_show, lowered)
    k, t, gpx = _arch(u, _UPPER_TEETH, width / 2)
    length = upper_length(u, width, upper_show)
    along = np.clip((below + lowered) / np.maximum(length, 1e-3), 0, 1)  # a covered row shows its lower part
    # neighbouring teeth touch along most of their length: the line between them is faint
    # there and opens into a dark notch only at the biting edge (a grid of dark lines read as
    # a cartoon)
    gaps = 0.1 + 0.25 * along**2
    shade = (_tooth_shade(u, k, t, gpx, 0, gaps) * (UNDER_LIP + (1 - UNDER_LIP) * np.clip(along / 0.5, 0, 1))
             * (1 - 0.12 * np.clip((along - 0.8) / 0.2, 0, 1)))
    up_rgb = teeth_rgb[None, None, :] * shade[..., None]
    img = img + up[..., None] * (up_rgb - img)
    # the lower lip's inner edge shades what lies just behind it (tongue, tooth tips): without
    # that line the tongue, coloured like the lips, merged with the lower lip and the mouth read
    # as less open (to the eye and to a face tracker: with the tongue shown from 0.16,
    # portrait_03 × driving_03 mouth correlation was 0.84 without the shade, 0.87 with it; the
    # lower tips drawn in front of it, unshaded, lost that reading again, 0.85)
    # on the lower tips only a contact shadow: they stand in front of that shade, and shaded over
    # their whole height they were a grey band
    reach = np.maximum(LIP_SHADOW_REACH * gap, 1.0)
    reach = reach + low * (np.minimum(LIP_CONTACT, reach) - reach)
    img *= (1 - LIP_SHADOW * np.exp(-np.maximum(above, 0.0) / reach))[..., None]
    img *= aperture_light(frame)
    return img.astype(np.float32), {"upper_teeth": up, "lower_teeth": low, "tongue": tongue.astype(np.float32)}


@dataclass(frozen=True)
class LipCrease:
    """The portrait's dark crease between its lips, in the box ``(x0, y0, x1, y1)`` of its crop:
    ``mask`` (h, w) float32 in [0, 1] and ``filled`` (h, w, 3) uint8, the lips with the crease
    painted over by their own colours."""

    box: tuple[int, int, int, int]
    mask: np.ndarray
    filled: np.ndarray


def lip_crease(image: np.ndarray, landmarks: np.ndarray) -> LipCrease | None:
    """The dark crease between the portrait's lips outside its inner-lip line (see
    :data:`CREASE_DARK`), or None where there is none."""
    c0, c1 = rig.OUTER_CORNERS
    outer = landmarks[[c0, *rig.OUTER_UPPER, c1, *rig.OUTER_LOWER[::-1]], :2].astype(np.float64)
    inner = landmarks[topology.mesh()["mouth_loop"], :2].astype(np.float64)
    h, w = image.shape[:2]
    x0, y0 = np.maximum(np.floor(outer.min(0)).astype(int) - 4, 0)
    x1, y1 = np.minimum(np.ceil(outer.max(0)).astype(int) + 5, (w, h))
    if x1 - x0 < 4 or y1 - y0 < 4:
        return None
    roi = np.ascontiguousarray(image[y0:y1, x0:x1])
    lips = coverage(outer, x0, y0, x1 - x0, y1 - y0)
    opening = coverage(inner, x0, y0, x1 - x0, y1 - y0)
    # the lips' band, and 4 px past their outer corners, where the crease ends (2 px left its
    # ends there, stretched into thin dark streaks beside portrait_02's open corners)
    inside = lips
    lips = cv2.dilate(lips, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9)))
    band = (lips > 0.5) & (opening < 0.5)
    if not band.any():
        return None
    lum = roi.astype(np.float32) @ _LUMA
    # a line darker than the lip on both sides of it: dark lips (portrait_02's, a lipstick's
    # shade) are no crease, only what a closing of CREASE_WIDTH px lifts
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (CREASE_WIDTH, CREASE_WIDTH))
    lift = cv2.morphologyEx(lum, cv2.MORPH_CLOSE, kernel) - lum
    # and dark, not a coloured line: a drawn face's thin lips are a bright red line that lifts as
    # much (portrait_04's; painted over, its lips went from the corners of an open mouth)
    value = roi.max(-1).astype(np.float32)
    dark = band & (lift > CREASE_DARK * float(np.median(lum[band]))) & (value < CREASE_VALUE * float(np.median(value[band])))
    # only what reaches the opening: a moustache over the lip line is no crease
    near = cv2.dilate((opening > 0.0).astype(np.uint8), np.ones((5, 5), np.uint8))
    _, labels = cv2.connectedComponents(dark.astype(np.uint8), connectivity=8)
    touching = np.unique(labels[(near > 0) & dark])
    dark = np.isin(labels, touching[touching > 0])
    if dark.sum() < 2:
        return None
    # its anti-aliased rim too; filled from the lips round it, not from the opening
    mask = cv2.dilate(dark.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))) & (lips > 0.5).astype(np.uint8)
    # on the lips with the lips' colours, past their corners with the skin's: filled from the skin
    # alone they were pale blotches at the corners, from the lips alone pink lumps beyond them
    opened = cv2.dilate((opening > 0.0).astype(np.uint8), np.ones((3, 3), np.uint8))
    on_lips = inside > 0.5
    filled = cv2.inpaint(roi, mask | opened | (~on_lips).astype(np.uint8), 3, cv2.INPAINT_TELEA)
    skin = cv2.inpaint(roi, mask | opened | on_lips.astype(np.uint8), 3, cv2.INPAINT_TELEA)
    filled[~on_lips] = skin[~on_lips]
    soft = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 0.7)
    # at the corners only: along the rest of the lips the crease is the upper lip's shaded inner
    # side, and painted over there the opening had a pale (portrait_02) or pink (portrait_05) rim
    a, b = (landmarks[i, :2].astype(np.float64) for i in rig.INNER_CORNERS)
    yy, xx = np.mgrid[y0:y1, x0:x1]
    u = ((xx - a[0]) * (b[0] - a[0]) + (yy - a[1]) * (b[1] - a[1])) / max(float(np.sum((b - a) ** 2)), 1e-6) * 2 - 1
    soft *= np.clip((np.abs(u) - CREASE_CORNERS[0]) / (CREASE_CORNERS[1] - CREASE_CORNERS[0]), 0.0, 1.0).astype(np.float32)
    return LipCrease((int(x0), int(y0), int(x1), int(y1)), np.clip(soft * 1.5, 0.0, 1.0), filled)


def own_mouth_mask(loop: np.ndarray, size: int) -> np.ndarray | None:
    """(S, S) float32: where the portrait shows its own open mouth (teeth, tongue, cavity), a pixel
    inside its inner lips and feathered, so no lip edge comes along; None for a closed mouth."""
    x0, y0 = np.floor(loop.min(0)).astype(int) - 2
    x1, y1 = np.ceil(loop.max(0)).astype(int) + 3
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, size), min(y1, size)
    if x1 - x0 < 3 or y1 - y0 < 3:
        return None
    cover = cv2.erode(coverage(loop, x0, y0, x1 - x0, y1 - y0), np.ones((3, 3), np.uint8))
    if cover.sum() < 4.0:
        return None
    mask = np.zeros((size, size), np.float32)
    mask[y0:y1, x0:x1] = cv2.GaussianBlur(cover, (0, 0), 0.7)
    return mask


def teeth_shown(image: np.ndarray, own: np.ndarray | None, cavity_rgb: np.ndarray, teeth_rgb: np.ndarray) -> float:
    """How surely the portrait's own open mouth (``own``, see :func:`own_mouth_mask`) shows teeth,
    0..1: by the share of it brighter than halfway from the cavity's luminance to the teeth's
    (from 0.1 to 0.25). Parted lips over a dark gap show none: carried in front of the drawn
    teeth by the upper lip, that gap hung as a dark band between the lip and the teeth."""
    if own is None or own.sum() < 1.0:
        return 0.0
    lum = image.astype(np.float32) @ _LUMA
    bright = lum > 0.5 * float(cavity_rgb @ _LUMA + teeth_rgb @ _LUMA)
    share = float((own * bright).sum() / own.sum())
    return float(np.clip((share - TEETH_SHOWN[0]) / (TEETH_SHOWN[1] - TEETH_SHOWN[0]), 0.0, 1.0))


def lip_motion(target: np.ndarray, source: np.ndarray, upper: bool = True) -> np.ndarray:
    """(2, 3) backward similarity target → source pixels fitted on the inner upper lip (``upper``)
    or lower lip: the upper teeth are fixed to the skull and the lower ones to the jaw, so the
    portrait's own teeth move with the lip in front of them, unstretched."""
    from ..motion.decompose import fit_similarity

    ids = list(UPPER_CHAIN if upper else LOWER_CHAIN)
    s, r, t = fit_similarity(target[ids, :2].astype(np.float64), source[ids, :2].astype(np.float64))
    return np.column_stack([s * r, t])


def own_lower_part(image: np.ndarray, own: np.ndarray | None) -> np.ndarray | None:
    """(S, S) float32: the share of the portrait's own open mouth (``own``, see
    :func:`own_mouth_mask`) that the lower lip carries as the jaw opens: a talker's lower teeth
    (the shadow under the upper lip stays with that lip), or the gap under a smile's upper teeth
    (which stay with the upper lip). None without an own mouth.

    Column by column: where its top quarter is darker than :data:`SPLIT_DARK` × its bottom
    quarter, it shows lower teeth and is split where it first passes halfway between the two.
    Otherwise the teeth are the upper ones, or none: it is split at the darkest row of its lower
    half where that row is darker than :data:`SPLIT_DARK` × its brightest, and not at all where it
    is light from lip to lip (a smile's teeth fill it). The line is smoothed by a median over
    :data:`SPLIT_COLUMNS` columns and the split is soft over :data:`SPLIT_SOFT` px."""
    if own is None:
        return None
    ys, xs = np.nonzero(own > 0.5)
    if len(xs) < 4:
        return None
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    lum = image[y0:y1, x0:x1].astype(np.float32) @ _LUMA
    inside = own[y0:y1, x0:x1] > 0.5
    line = np.full(x1 - x0, np.nan, np.float32)
    for j in range(x1 - x0):
        rows = np.nonzero(inside[:, j])[0]
        if len(rows) == 0:
            continue
        col = lum[rows, j]
        half, q = len(col) // 2, max(1, len(col) // 4)
        top, bottom = col[:q].mean(), col[-q:].mean()
        if top < SPLIT_DARK * bottom:  # dark above, light below: lower teeth, split where the light begins
            line[j] = rows[0] + int(np.argmax(col > 0.5 * (top + bottom)))
        elif col[half:].min() < SPLIT_DARK * col.max():  # upper teeth (or none): split at the darkest row below
            line[j] = rows[0] + half + int(np.argmin(col[half:]))
        else:  # light from lip to lip: the upper teeth fill it
            line[j] = rows[-1] + 1
    have = ~np.isnan(line)
    line = np.interp(np.arange(x1 - x0), np.nonzero(have)[0], line[have]).astype(np.float32) + y0
    line = median_filter(line, SPLIT_COLUMNS, mode="nearest")
    yy = np.arange(own.shape[0], dtype=np.float32)[:, None]
    lower = np.zeros_like(own)
    lower[:, x0:x1] = np.clip((yy - line[None, :] + 0.5) / SPLIT_SOFT + 0.5, 0.0, 1.0)
    return (own * lower).astype(np.float32)


_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def colours(image: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cavity, tongue and teeth colours (3,) float32 adapted to the portrait's lips and lighting."""
    lips = landmarks[topology.mesh()["lips"], :2].round().astype(int)
    h, w = image.shape[:2]
    lips = lips[(lips[:, 0] >= 0) & (lips[:, 0] < w) & (lips[:, 1] >= 0) & (lips[:, 1] < h)]
    lip_rgb = image[lips[:, 1], lips[:, 0]].astype(np.float32).mean(0) if len(lips) else np.array([150, 80, 80], np.float32)
    gray = float(image.mean())
    # Open mouths in video average about 0.8 of the lip colour (teeth and tongue included):
    # a dark-red cavity and a tongue close to the lips' own colour, not a black hole.
    cavity = np.clip(lip_rgb * CAVITY + np.array([6, 0, 4], np.float32), 0, 255)
    tongue = np.clip(lip_rgb * 1.0 + np.array([14, 2, 6], np.float32), 0, 255)
    # Teeth in video are lit like the face around them: about 1.15 of the cheeks' luminance
    # (measured on the eval clips), an off-white, never paper-white in a dim picture. Skin
    # darker than teeth says less about the light than the eye whites do (see TEETH_OVER_SCLERA).
    cheeks = landmarks[list(topology.CHEEKS), :2].round().astype(int)
    cheeks = cheeks[(cheeks[:, 0] >= 0) & (cheeks[:, 0] < w) & (cheeks[:, 1] >= 0) & (cheeks[:, 1] < h)]
    skin = image[cheeks[:, 1], cheeks[:, 0]].astype(np.float32).mean(0) if len(cheeks) else np.full(3, gray, np.float32)
    lum = float(skin @ _LUMA)
    tint, sclera = eye_whites(image, landmarks, lum)
    teeth_lum = max(lum * TEETH_OVER_CHEEKS, TEETH_OVER_SCLERA * sclera) if sclera is not None else lum * TEETH_OVER_CHEEKS
    teeth = np.clip(teeth_lum * tint, 0, 245)
    if np.abs(image[..., 0].astype(np.int16) - image[..., 1]).mean() < 2:  # grayscale portrait
        cavity, tongue, teeth = (np.full(3, c.mean(), np.float32) for c in (cavity, tongue, teeth))
    return cavity, tongue, teeth


_TOOTH_TINT = np.array([1.0, 0.98, 0.93], np.float32)     # off-white, when the eyes tell nothing
_TINT_RANGE = (np.array([0.85, 0.9, 0.5], np.float32), np.array([1.25, 1.05, 1.1], np.float32))


def eye_whites(image: np.ndarray, landmarks: np.ndarray, skin_lum: float) -> tuple[np.ndarray, float | None]:
    """The colour of a white object in the portrait's light, at unit luminance ((3,) float32),
    and the eye whites' luminance (None when they cannot tell). The colour is the eye whites'
    (the sclera inside each eye outline, around the iris, its brighter 40 %), a little warmer,
    so teeth under a warm lamp or an old varnish are not a cold blue-grey. Off-white when the
    eye whites are too small or too dark to tell (closed eyes, sunglasses, a profile)."""
    h, w = image.shape[:2]
    loops = topology.mesh()["eye_loops"]
    picks = []
    for loop, iris in zip(loops, (range(468, 473), range(473, 478))):
        pts = landmarks[list(loop), :2]
        x0, y0 = np.floor(pts.min(0)).astype(int) - 1
        x1, y1 = np.ceil(pts.max(0)).astype(int) + 2
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if x1 - x0 < 3 or y1 - y0 < 2:
            continue
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillPoly(mask, [(pts - (x0, y0)).round().astype(np.int32)], 1)
        if len(landmarks) > max(iris):
            c = landmarks[iris[0], :2]
            r = float(np.linalg.norm(landmarks[list(iris)[1:], :2] - c, axis=1).mean())
            cv2.circle(mask, tuple(int(v) for v in (c - (x0, y0)).round()), int(np.ceil(1.15 * r)), 0, -1)
        picks.append(image[y0:y1, x0:x1][mask > 0].astype(np.float32))
    px = np.concatenate(picks) if picks else np.zeros((0, 3), np.float32)
    if len(px) < 20:
        return _TOOTH_TINT, None
    lum = px @ _LUMA
    bright = px[lum >= np.percentile(lum, 60)]
    white = bright.mean(0)
    white_lum = float(white @ _LUMA)
    if white_lum < 0.5 * skin_lum or white_lum < 1.0:  # shut, shaded or hidden eyes
        return _TOOTH_TINT, None
    tint = np.clip(white / white_lum, *_TINT_RANGE) * np.array([1.0, 0.99, 0.96], np.float32)
    return (tint / float(tint @ _LUMA)).astype(np.float32), white_lum


def grain(image: np.ndarray, landmarks: np.ndarray) -> float:
    """The portrait's grain: robust standard deviation (grey levels) of the fine detail in small
    patches of cheek skin, so a drawn mouth is as noisy as the photo around it."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    fine = grey - cv2.GaussianBlur(grey, (0, 0), 1.0)
    r = max(int(0.06 * np.linalg.norm(landmarks[263, :2] - landmarks[33, :2])), 3)
    h, w = grey.shape
    patches = []
    for x, y in landmarks[list(topology.CHEEKS), :2].round().astype(int):
        if r <= x < w - r and r <= y < h - r:
            patches.append(fine[y - r:y + r, x - r:x + r].ravel())
    if not patches:
        return 0.0
    fine = np.concatenate(patches)
    return float(np.clip(1.4826 * np.median(np.abs(fine - np.median(fine))) / 0.78, 0.0, 8.0))  # 0.78: what this measures of add_grain's level


@lru_cache(maxsize=1)
def _grain_tile() -> np.ndarray:
    """A fixed 128² tile of unit Gaussian grain, blurred to a photo's grain size (~1 px)."""
    tile = np.random.default_rng(1234).standard_normal((128, 128)).astype(np.float32)
    tile = cv2.GaussianBlur(np.tile(tile, (3, 3)), (0, 0), 0.5)[128:256, 128:256]  # wraps seamlessly
    return tile / tile.std()


def add_grain(img: np.ndarray, level: float, xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
    """``img`` (h, w, 3) float32 plus grain of standard deviation ``level`` on the luminance, the
    same pattern at the same crop pixel (``xx``, ``yy``) in every frame: it never flickers."""
    if level <= 0:
        return img
    tile = _grain_tile()
    noise = tile[yy.astype(np.int64) % 128, xx.astype(np.int64) % 128] * level
    # a cheek patch's fine detail is grain and skin texture; the mouth's shadows take less of it
    lum = img.mean(-1, keepdims=True)
    return img + noise[..., None] * np.clip(np.sqrt(lum / 128.0), 0.3, 1.0)
