"""The dSprites renderer: binary 64x64 images of a square, an ellipse or a heart.

The official generator is not published. The geometry below is calibrated
against 320 real frames of the dataset (the animated GIF of the dataset's own
repository; :func:`gif_frame_factors` gives the factor values of every frame):
with it, every one of the 320 frames is reproduced exactly, pixel for pixel,
by the grid image of its factor values (see :func:`match_frames`).

Geometry and the evidence for each number (frame numbers are GIF frames;
pixel ``(row, col)`` covers ``[col, col+1] x [row, row+1]`` of the frame):

- Rasterisation: a pixel is on exactly when its centre ``(col + 0.5, row + 0.5)``
  lies inside the sprite (point sampling, no anti-aliasing). Evidence: the 40
  rotated squares (frames 274-313) are all reproduced exactly by point sampling
  with one side length, while thresholding the covered area at 1/2 (an
  anti-aliased rasteriser) matches at most 34 of them over side lengths
  18.8-20.4 px in 0.04 px steps.
- Position: the sprite's centre is at ``POS_MIN_PX + pos * POS_SPAN_PX`` =
  ``16 + 32 * pos`` along the columns (``posX``, rightwards) and the rows
  (``posY``, downwards): centres from 16 to 48 px (a quarter to three
  quarters of the frame), one step 32/31 = 1.032 px. Evidence: every sprite at
  ``posX = posY = 0`` is mirror-symmetric about column/row 16 (e.g. the square
  at scale 1 covers columns and rows 6-25), the heart's four position sweeps
  (frames 58-185) run from 16 to 48 px, and a joint fit of the heart's outline
  stays feasible only within 0.01 px of offset 16 and span 32.
- Size: ``scale * SPRITE_SIZE_PX`` is the square's side; every shape is
  defined in units of it and scales linearly. ``SPRITE_SIZE_PX = 19.1964``:
  the rotated squares bracket the half side in [9.5966, 9.5998) px at scale 1
  (pixel centres at those distances are on and off respectively); the
  unrotated squares of frames 256-273 and 314-319 cover 10..20 pixels a side
  (areas 100, 144, ..., 400), consistent with it. (About 0.3 of the frame.)
  The bracket still matters elsewhere: at either of its ends about 7 % of
  the grid's squares change (those with an edge within 0.002 px of pixel
  centres; unrotated ones by a whole row or column).
- Rotation: ``orientation`` radians counter-clockwise as displayed, about the
  sprite's centre (the position above), orientation 0 showing the heart
  upright and the ellipse's major axis horizontal. Evidence: the squares of
  frames 274-313 match at 40/40 counter-clockwise against 2/40 clockwise; the
  heart's and ellipse's outlines (below) are feasible for their frames only
  counter-clockwise about that centre. ``orientation = 2 pi`` repeats 0.
- Square: ``|u|, |v| <= 1/2``.
- Ellipse: semi-axes ``ELLIPSE_SEMI_AXES = (0.665015, 0.375714)`` sizes
  (12.766 x 7.212 px at scale 1), the major axis along ``u``. Evidence: the
  point-in-ellipse conditions of all 64 ellipse frames (192-255) are linear in
  ``(1/a^2, 1/b^2)``; the centre of the largest margin of that feasible set,
  which spans 12.7654-12.7664 x 7.2121-7.2145 px (its extremes change 1-5 % of
  the grid's ellipses, by at most 3 pixels).
- Heart: a mirror-symmetric polygon with a vertex every 2 degrees about the
  sprite's centre (180 vertices), ``HEART_VERTICES`` listing its left half from
  the notch at the top (``u = 0``) counter-clockwise through the left lobe to
  the tip at the bottom (``u = 0``). At scale 1 it is 19.2 px wide and 19.0 px
  tall, its tip 9.6 px below the centre, the tops of its lobes 9.3 px and the
  notch 5.2 px above it; its centroid lies 2.0 px above the centre of rotation
  (1.93 px in the real frame 17). Evidence: with the radii ``w = 1/r`` of such
  a polygon, point-in-polygon is linear in ``w``, so the 192 heart frames
  (0-191) give a linear program; it is feasible at 2-degree spacing (not at 3
  or 2.5 degrees). The frames leave the outline a band of freedom, and the
  table is the feasible polygon, at half the largest margin, whose ``w``
  changes curvature least (L1 of third differences along the outline). That
  choice was made by holding out one kind of frame: fitted on the rotation
  and scale frames it reproduces 74 of the 128 position frames exactly (112
  pixels wrong in all), fitted on the position and scale frames 34 of the 40
  rotation frames (6 pixels), fitted on rotations and positions 20 of the 24
  scale frames (8 pixels); least second differences (a piecewise-straight
  ``w``) gave 44/128, 26/40 and 16/24. So grid images far from the frames
  (rotated hearts at other positions and scales) can still differ from the
  official ones by a pixel or two. The classic curves fit worse: the best
  affine fit of the parametric heart ``(16 sin^3 t, 13 cos t - 5 cos 2t -
  2 cos 3t - cos 4t)`` leaves 58 of the 192 heart frames inexact (its tip is
  too sharp and long); the curve ``(x^2 + y^2 - 1)^3 = x^2 y^3`` has a notch
  half as deep as the real one.
- Frame: every sprite stays at least 2 px inside the frame: the largest reach
  about the centre is the square's half diagonal (``SPRITE_RADIUS`` sizes,
  13.6 px at scale 1), 2.4 px short of the nearest edge.

The per-pixel shape tests live in ``csrc/include/vaebench/sprites.h`` and run in the compiled op ``vaebench::render_sprites``;
``render_reference`` is an independent float64 NumPy version used by the tests
(an even-odd crossing test over the heart's edges where the op looks up the
edge by the pixel's angle).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from vaebench._extension import load_extension

load_extension()

FRAME = 64
SHAPES = ("square", "ellipse", "heart")
SPRITE_SIZE_PX = 19.1964  # side of the square at scale 1
POS_MIN_PX = 16.0  # centre at position 0
POS_SPAN_PX = 32.0  # centre at position 1 minus centre at position 0
ELLIPSE_SEMI_AXES = (0.665015, 0.375714)
# Left half of the heart polygon in sprite units (u right, v up), a vertex every
# 2 degrees about the centre from the notch (90 degrees) to the tip (270); the
# right half mirrors it. Same numbers as kHeartVertices in sprites.h.
HEART_VERTICES = np.array([
    (0.000000, 0.269914), (-0.010453, 0.299334), (-0.023030, 0.329349),
    (-0.037662, 0.358332), (-0.053979, 0.384082), (-0.071244, 0.404047),
    (-0.089884, 0.422870), (-0.109688, 0.439935), (-0.130347, 0.454576),
    (-0.151473, 0.466185), (-0.172573, 0.474141), (-0.194071, 0.480342),
    (-0.215752, 0.484586), (-0.237376, 0.486694), (-0.258686, 0.486517),
    (-0.279480, 0.484074), (-0.299501, 0.479301), (-0.319134, 0.473135),
    (-0.338260, 0.465575), (-0.356761, 0.456634), (-0.374521, 0.446337),
    (-0.391428, 0.434725), (-0.407377, 0.421851), (-0.422269, 0.407780),
    (-0.436016, 0.392591), (-0.448542, 0.376372), (-0.459781, 0.359220),
    (-0.469680, 0.341243), (-0.478201, 0.322551), (-0.485318, 0.303260),
    (-0.491021, 0.283491), (-0.495256, 0.263332), (-0.498026, 0.242904),
    (-0.499361, 0.222330), (-0.499301, 0.201731), (-0.497899, 0.181220),
    (-0.495217, 0.160906), (-0.491325, 0.140885), (-0.485282, 0.120994),
    (-0.479276, 0.101873), (-0.471929, 0.083214), (-0.463370, 0.065122),
    (-0.454115, 0.047729), (-0.444242, 0.031064), (-0.434095, 0.015159),
    (-0.423726, 0.000000), (-0.413162, -0.014428), (-0.402433, -0.028141),
    (-0.391935, -0.041194), (-0.381639, -0.053636), (-0.371519, -0.065509),
    (-0.361550, -0.076850), (-0.351712, -0.087692), (-0.341988, -0.098064),
    (-0.332362, -0.107991), (-0.322819, -0.117497), (-0.313558, -0.126686),
    (-0.304539, -0.135590), (-0.295729, -0.144237), (-0.287097, -0.152652),
    (-0.278615, -0.160859), (-0.270259, -0.168877), (-0.262006, -0.176725),
    (-0.253835, -0.184422), (-0.245726, -0.191983), (-0.237662, -0.199422),
    (-0.229652, -0.206780), (-0.221677, -0.214071), (-0.213774, -0.221370),
    (-0.205919, -0.228696), (-0.198089, -0.236073), (-0.190261, -0.243523),
    (-0.182412, -0.251069), (-0.174520, -0.258736), (-0.166560, -0.266552),
    (-0.158509, -0.274546), (-0.150341, -0.282750), (-0.142028, -0.291201),
    (-0.133541, -0.299938), (-0.124847, -0.309007), (-0.115955, -0.318585),
    (-0.106818, -0.328751), (-0.097377, -0.339596), (-0.087571, -0.351228),
    (-0.077324, -0.363779), (-0.066546, -0.377402), (-0.055133, -0.392290),
    (-0.042954, -0.408676), (-0.030103, -0.430494), (-0.016076, -0.460361),
    (0.000000, -0.501402),
], dtype=np.float64)
SPRITE_RADIUS = math.sqrt(0.5)  # largest reach of any shape about its centre, in sprite units


def _broadcast(shape, scale, orientation, pos_x, pos_y) -> tuple[np.ndarray, np.ndarray]:
    """Shape ids int64 ``[n]`` and poses ``(cx, cy, size, angle)`` in
    pixels/radians, float64 ``[n, 4]``, from (broadcast) factor values."""
    shape, scale, orientation, pos_x, pos_y = np.broadcast_arrays(
        *(np.atleast_1d(np.asarray(a)) for a in (shape, scale, orientation, pos_x, pos_y)))
    if shape.ndim != 1:
        raise ValueError(f"render: factor values must broadcast to 1-D, got shape {shape.shape}")
    if shape.size and (not np.issubdtype(shape.dtype, np.integer) or shape.min() < 0 or shape.max() > 2):
        raise ValueError(f"render: shape must hold integer ids 0 (square), 1 (ellipse), 2 (heart), got {shape!r}")
    pose = np.stack([POS_MIN_PX + pos_x * POS_SPAN_PX, POS_MIN_PX + pos_y * POS_SPAN_PX, scale * SPRITE_SIZE_PX,
                     orientation], axis=1).astype(np.float64)
    return shape.astype(np.int64), pose


def render(shape, scale, orientation, pos_x, pos_y, *, packed: bool = False,
           dtype: torch.dtype = torch.uint8) -> torch.Tensor:
    """Renders one sprite per row of the (broadcast) factor values.

    Args:
        shape: shape ids, 0 square, 1 ellipse, 2 heart.
        scale, orientation, pos_x, pos_y: factor values (scale in (0, 1],
            orientation in radians, positions in [0, 1]).
        packed: return MSB-first bit-packed rows (``np.packbits`` layout).
        dtype: ``torch.uint8``, or ``torch.float32`` to feed a model without a
            conversion pass (not with ``packed``).
    Returns:
        ``[n, 64, 64]`` of 0/1 in ``dtype``, or uint8 ``[n, 64, 8]`` when packed.
    """
    ids, pose = _broadcast(shape, scale, orientation, pos_x, pos_y)
    return torch.ops.vaebench.render_sprites(torch.from_numpy(ids), torch.from_numpy(pose), FRAME, FRAME, packed, dtype)


def heart_polygon() -> np.ndarray:
    """The heart's 180 vertices, float64 ``[180, 2]`` in sprite units,
    counter-clockwise from the notch: ``HEART_VERTICES`` and its mirror image."""
    right = HEART_VERTICES[-2:0:-1] * np.array([-1.0, 1.0])  # tip to notch, exclusive, on the right
    return np.concatenate([HEART_VERTICES, right])


def inside_reference(shape: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Float64 point-in-shape test in sprite units (y up), written from the
    definitions in the module doc independently of the C++ header."""
    if shape == 0:
        return (np.abs(u) <= 0.5) & (np.abs(v) <= 0.5)
    if shape == 1:
        a, b = ELLIPSE_SEMI_AXES
        return (u / a) ** 2 + (v / b) ** 2 <= 1.0
    # Even-odd rule: count the edges a ray from the point towards +u crosses.
    u, v = np.asarray(u, np.float64), np.asarray(v, np.float64)
    p = heart_polygon()
    inside = np.zeros(np.broadcast(u, v).shape, bool)
    for (x0, y0), (x1, y1) in zip(p, np.roll(p, -1, axis=0)):
        if y0 == y1:
            continue
        straddles = (y0 > v) != (y1 > v)
        x_cross = x0 + (v - y0) * (x1 - x0) / (y1 - y0)
        inside ^= straddles & (u < x_cross)
    return inside


def render_reference(shape, scale, orientation, pos_x, pos_y) -> np.ndarray:
    """Slow NumPy renderer of the same images (every pixel of every sprite)."""
    ids, pose = _broadcast(shape, scale, orientation, pos_x, pos_y)
    centres = np.arange(FRAME) + 0.5
    px, py = np.meshgrid(centres, centres)  # px along columns, py along rows
    out = np.zeros((pose.shape[0], FRAME, FRAME), np.uint8)
    for i, (cx, cy, size, angle) in enumerate(pose):
        dx, dy = px - cx, cy - py  # dy: y up
        c, s = math.cos(angle), math.sin(angle)
        out[i] = inside_reference(int(ids[i]), (c * dx + s * dy) / size, (c * dy - s * dx) / size)
    return out


# --- calibration against real frames ---------------------------------------------------------------

def load_gif_frames(path: str | Path) -> np.ndarray:
    """The frames of an animated GIF as uint8 0/1 images ``[n, h, w]`` (Pillow)."""
    from PIL import Image, ImageSequence

    with Image.open(path) as gif:
        return np.stack([(np.asarray(f.convert("L")) > 127).astype(np.uint8) for f in ImageSequence.Iterator(gif)])


def gif_frame_factors() -> np.ndarray:
    """Factor classes ``[320, 6]`` (the official grid's columns) of the frames of
    the dataset repository's animated GIF, in order.

    The GIF is a chain of one-factor traversals, each starting on the last
    image of the one before (so that image shows twice): for the heart, scale
    up, down, up (frames 0-17), orientation 0..39 (18-57), then posY up (58-89),
    posX up (90-121), posY down (122-153), posX down (154-185), scale down
    (186-191); then the ellipse (192-255) and the square (256-319) each scale
    up, down, up, orientation 0..39, scale down. Everything not traversed is at
    class 0 (scale 0.5, orientation 0, position 0), the largest scale while
    rotating or moving (orientation 39, the same rotation, gives the same
    images in the position sweeps). Read off the frames: areas step with scale
    (the square's sides 10..20 px), the sprite's bounding box walks one
    position step per frame, and the orientation sweeps end where they began.
    """
    rows: list[tuple[int, int, int, int, int]] = []  # shape, scale, orientation, posX, posY
    up, down = range(6), range(5, -1, -1)
    for shape in (2, 1, 0):
        for seq in (up, down, up):
            rows += [(shape, s, 0, 0, 0) for s in seq]
        rows += [(shape, 5, o, 0, 0) for o in range(40)]
        if shape == 2:
            rows += [(2, 5, 0, 0, y) for y in range(32)]
            rows += [(2, 5, 0, x, 31) for x in range(32)]
            rows += [(2, 5, 0, 31, y) for y in range(31, -1, -1)]
            rows += [(2, 5, 0, x, 0) for x in range(31, -1, -1)]
        rows += [(shape, s, 0, 0, 0) for s in down]
    classes = np.zeros((len(rows), 6), np.int64)
    classes[:, 1:] = rows
    return classes


def match_frames(frames: np.ndarray, classes: np.ndarray | None = None, *, best: bool = True) -> dict:
    """How well the renderer reproduces real frames ``[n, 64, 64]`` (0/1).

    Returns a dict of per-frame arrays: with ``classes`` (factor classes
    ``[n, 6]`` of the frames), ``exact`` (bool) and ``iou`` against the grid
    image of those classes; with ``best``, ``best_iou`` and ``best_index``: the
    best intersection-over-union over the whole rendered grid (a few seconds
    per hundred frames).
    """
    from vaebench.data.dsprites import DSprites

    frames = np.asarray(frames, np.uint8)
    data = DSprites()
    out: dict = {}
    if classes is not None:
        im = data.images(data.factors_to_index(np.asarray(classes, np.int64)))
        inter = (im & frames).sum(axis=(1, 2))
        union = (im | frames).sum(axis=(1, 2))
        out["exact"] = (im == frames).all(axis=(1, 2))
        out["iou"] = inter / np.maximum(union, 1)
    if best:
        grid = np.concatenate([c for _, c in data.packed_chunks()]).reshape(len(data), -1).view(np.uint64)
        grid_area = np.bitwise_count(grid).sum(axis=1, dtype=np.int64)
        packed = np.packbits(frames, axis=-1).reshape(len(frames), -1).view(np.uint64)
        out["best_iou"] = np.zeros(len(frames))
        out["best_index"] = np.zeros(len(frames), np.int64)
        for i, f in enumerate(packed):
            inter = np.bitwise_count(grid & f).sum(axis=1, dtype=np.int64)
            iou = inter / (grid_area + int(np.bitwise_count(f).sum()) - inter)
            out["best_index"][i] = k = int(np.argmax(iou))
            out["best_iou"][i] = iou[k]
    return out


def _main(argv: list[str] | None = None) -> None:
    """``python -m vaebench.data.render [GIF]``: prints how well the renderer
    reproduces the frames of the dataset's GIF (default: ../shared/data/dsprites.gif)."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else Path(__file__).resolve().parents[3] / "shared" / "data" / "dsprites.gif"
    frames = load_gif_frames(path)
    classes = gif_frame_factors() if len(frames) == 320 else None
    m = match_frames(frames, classes)
    if classes is not None:
        print(f"exact at the frames' own factor values: {int(m['exact'].sum())}/{len(frames)}, "
              f"IoU min {m['iou'].min():.4f} median {np.median(m['iou']):.4f}")
    print(f"best match over the grid: exact {int((m['best_iou'] == 1).sum())}/{len(frames)}, "
          f"IoU min {m['best_iou'].min():.4f} median {np.median(m['best_iou']):.4f}")


if __name__ == "__main__":
    _main()
