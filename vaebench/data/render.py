"""The dSprites renderer: binary 64x64 images of a square, an ellipse or a heart.

The official generator is not published. The geometry below is calibrated
against 320 real frames of the dataset (the animated GIF of the dataset's own
repository; ``calibration.gif_frame_factors`` gives the factor values of every frame):
with it, every one of the 320 frames is reproduced exactly, pixel for pixel,
by the grid image of its factor values (see ``calibration.match_frames``).

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
- Heart: the classic parametric heart ``x = 16 sin^3 t``, ``y = 13 cos t -
  5 cos 2t - 2 cos 3t - cos 4t`` as a polygon of ``HEART_SEGMENTS = 150``
  points equally spaced in ``t``, scaled by ``HEART_SCALE_PX = (0.6, 0.66227)``
  pixels per curve unit at scale 1 (as wide as the square's nominal 19.2 px)
  and shifted ``HEART_OFFSET_PX = 1.44029`` px up from the sprite's centre:
  at scale 1 its tip is 9.82 px below the centre, the tops of its lobes 9.33
  px and the notch 4.75 px above it, and its centroid 1.99 px above (1.93 px
  in the real frame 17). ``HEART_VERTICES`` tabulates its left half.
  Evidence, from the 192 heart frames (0-191): (1) a star polygon with a free
  radius every 2 degrees is linear in ``w = 1/r``, so the frames give a
  linear program; it is feasible (not at 3 or 2.5 degrees), but leaves a band
  of freedom, and the smoothest such polygons generalise poorly across kinds
  of frame (fitted on the rotation and scale frames, the least-third-
  difference one reproduces 74 of the 128 position frames exactly). (2) A
  free curve ``x = sum a_k sin((2k+1) t)``, ``y = sum b_k cos(k t)`` fitted to
  the frames converges to the classic heart's coefficients (``x`` within 0.2 %
  of 9.6 sin^3 t, the ``y`` coefficients in the ratio 13 : -5 : -2 : -1 within
  0.1 %). (3) As a smooth curve that heart leaves about a dozen pixel centres
  on the wrong side; as a polygon of 150 points it leaves none (so do 154 and
  180 points, none of the other counts tried from 50 to 360), with a wider
  margin than 180 (0.001 px against 0.0005) and the ``x`` scale exactly 0.6;
  the other two constants maximise that margin. (4) Held out by kind, it generalises: fitted on the
  rotation and scale frames it reproduces 122 of the 128 position frames
  exactly (8 pixels wrong in all), fitted on positions and scales all 40
  rotation frames, fitted on rotations and positions all 24 scale frames. So
  grid images unlike any frame may still differ from the official ones by
  the odd boundary pixel. (The curve ``(x^2 + y^2 - 1)^3 = x^2 y^3`` has a
  notch half as deep as the real one.)
- Frame: every sprite stays at least 2 px inside the frame: the largest reach
  about the centre is the square's half diagonal (``SPRITE_RADIUS`` sizes,
  13.6 px at scale 1), 2.4 px short of the nearest edge.

The per-pixel shape tests live in ``csrc/include/vaebench/sprites.h`` and run in the compiled op ``vaebench::render_sprites``;
``render_reference`` is an independent float64 NumPy version used by the tests
(an even-odd crossing test over the heart's edges where the op bisects over
the vertex rays for the one edge to test).
"""
from __future__ import annotations

import math

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
# Heart: the classic parametric heart x = 16 sin^3 t, y = 13 cos t - 5 cos 2t -
# 2 cos 3t - cos 4t as a polygon of HEART_SEGMENTS points equally spaced in t,
# scaled by HEART_SCALE_PX and shifted up by HEART_OFFSET_PX (pixels at scale 1).
HEART_SEGMENTS = 150
HEART_SCALE_PX = (0.6, 0.66227)
HEART_OFFSET_PX = 1.44029
# Its left half in sprite units (u right, v up), t = 2 pi (the notch) down to pi
# (the tip), counter-clockwise; the right half mirrors it. Evaluated once from the
# formula (see heart_vertices_from_curve) and written out so that the C++ table
# kHeartVertices in sprites.h holds the very same doubles.
HEART_VERTICES = np.array([
    (0.0, 0.24752766143651933),
    (-3.6722838444039456e-05, 0.24876644399672934),
    (-0.00029301029344148456, 0.25245712635313344),
    (-0.00098457810942487374, 0.25852325539682675),
    (-0.0023195056631357992, 0.26683920587008597),
    (-0.0044945702520228989, 0.27723283024036849),
    (-0.0076917616510440833, 0.28948907968836979),
    (-0.012075032575811237, 0.30335451011390485),
    (-0.017787336964897722, 0.31854256629564448),
    (-0.024948003449148486, 0.33473951930516088),
    (-0.033650486082671363, 0.35161091742727912),
    (-0.043960528452346527, 0.36880839954766509),
    (-0.055914770754125695, 0.38597671251058457),
    (-0.069519822428095179, 0.40276077049905468),
    (-0.084751815590591237, 0.41881259511424024),
    (-0.10155644690657832, 0.43379797949155385),
    (-0.119849507828832, 0.44740272834197187),
    (-0.13951789541392792, 0.45933833800120122),
    (-0.16042108833034671, 0.46934699606430336),
    (-0.18239306532096311, 0.47720579855172368),
    (-0.2052446363867865, 0.48273010329339716),
    (-0.22876615043141277, 0.48577596077020652),
    (-0.25273053714920418, 0.48624158741160045),
    (-0.27689663564871614, 0.48406787068209089),
    (-0.30101275775979741, 0.47923791955437306),
    (-0.32482043024983676, 0.47177569752661941),
    (-0.348058257330493, 0.46174379758368966),
    (-0.37046584291591095, 0.44924043885461534),
    (-0.39178771112710875, 0.43439578266543472),
    (-0.41177716354033755, 0.41736768078021669),
    (-0.43020001264961366, 0.39833698049786581),
    (-0.44683813294013419, 0.3775025196523179),
    (-0.46149277381949994, 0.35507594927053993),
    (-0.473987582382707, 0.33127652259924256),
    (-0.48417128853597358, 0.30632598644306736),
    (-0.49192001030192817, 0.28044370439112626),
    (-0.49713914309101742, 0.25384213176904136),
    (-0.49976480325721168, 0.2267227493540459),
    (-0.49976480325721168, 0.19927254742583883),
    (-0.49713914309101742, 0.17166113405965938),
    (-0.49192001030192833, 0.14403852221979302),
    (-0.48417128853597358, 0.11653362974202271),
    (-0.473987582382707, 0.089253505287619661),
    (-0.46149277381949994, 0.062283272403198135),
    (-0.44683813294013403, 0.035686763515740863),
    (-0.43020001264961344, 0.0095077965914618107),
    (-0.4117771635403375, -0.016227970187979383),
    (-0.39178771112710858, -0.04151068556128177),
    (-0.37046584291591067, -0.066343546555537425),
    (-0.34805825733049273, -0.090739736183462649),
    (-0.32482043024983598, -0.1147191660936428),
    (-0.30101275775979736, -0.13830513603091399),
    (-0.27689663564871653, -0.16152102185568767),
    (-0.25273053714920402, -0.18438710046916801),
    (-0.22876615043141257, -0.20691761343813878),
    (-0.20524463638678603, -0.22911816163982454),
    (-0.18239306532096269, -0.25098351116759698),
    (-0.16042108833034657, -0.27249587643810819),
    (-0.13951789541392773, -0.29362373036639228),
    (-0.1198495078288318, -0.31432117412213517),
    (-0.10155644690657815, -0.33452788087501995),
    (-0.084751815590591084, -0.35416960962491789),
    (-0.069519822428095041, -0.37315926724050491),
    (-0.055914770754125577, -0.39139847973036551),
    (-0.043960528452346562, -0.408779618047035),
    (-0.033650486082671377, -0.4251882098360783),
    (-0.024948003449148499, -0.44050565689143428),
    (-0.017787336964897729, -0.45461216899866219),
    (-0.01207503257581114, -0.46738981859518469),
    (-0.0076917616510440113, -0.47872561742190173),
    (-0.0044945702520228763, -0.48851451616461516),
    (-0.0023195056631357667, -0.49666223097573775),
    (-0.00098457810942486528, -0.50308780662475927),
    (-0.00029301029344148076, -0.50772583465996102),
    (-3.6722838444038507e-05, -0.51052825610176267),
    (0.0, -0.51146569148381993),
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


def heart_vertices_from_curve() -> np.ndarray:
    """``HEART_VERTICES`` recomputed from the curve and its fitted constants."""
    t = 2.0 * np.pi - 2.0 * np.pi * np.arange(HEART_SEGMENTS // 2 + 1) / HEART_SEGMENTS
    x = HEART_SCALE_PX[0] * 16.0 * np.sin(t) ** 3
    y = HEART_SCALE_PX[1] * (13.0 * np.cos(t) - 5.0 * np.cos(2 * t) - 2.0 * np.cos(3 * t) - np.cos(4 * t))
    x[[0, -1]] = 0.0  # on the axis of symmetry (sin t vanishes but for rounding)
    return np.stack([x, y + HEART_OFFSET_PX], axis=1) / SPRITE_SIZE_PX


def heart_polygon() -> np.ndarray:
    """The heart's ``HEART_SEGMENTS`` vertices, float64 ``[150, 2]`` in sprite
    units, counter-clockwise from the notch: ``HEART_VERTICES`` and its mirror image."""
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
