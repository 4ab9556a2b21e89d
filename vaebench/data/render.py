"""The dSprites renderer: binary 64x64 images of a square, an ellipse or a heart.

Geometry (the official generator is not published; these choices reproduce the
look and the stated properties of the official images):

- Frame: 64x64 pixels in frame coordinates ``[0, 64]^2``; pixel ``(row, col)``
  covers ``[col, col+1] x [row, row+1]`` and is on (1) exactly when its centre
  ``(col + 0.5, row + 0.5)`` lies inside the sprite (point sampling, no
  anti-aliasing, so images are 0/1 and rendering is exact and deterministic).
- Size: at ``scale = 1`` the square's side is ``SPRITE_SIZE_PX = 16`` pixels
  (a quarter of the frame, within the 20-30 % the official sprites span);
  every shape is defined in units of that side and scales linearly.
  The ellipse has semi-axes 0.7 x 0.4 (major axis horizontal at orientation 0,
  area 0.88 of the square's); the heart is the classic two-lobed curve
  ``(x^2 + y^2 - 1)^3 - x^2 y^3 <= 0``, lobes up, centred on its bounding box and
  scaled to 1.1 units wide (area 0.85 of the square's), so the three shapes
  look about equally large, as in the official data.
- Rotation: ``orientation`` radians counter-clockwise as displayed, about the
  sprite's centre (the square's and ellipse's centre, the heart's bounding-box
  centre).
- Position: ``posX`` moves the centre right along the columns, ``posY`` down
  along the rows. Centres span ``[MARGIN_PX, 64 - MARGIN_PX]`` where
  ``MARGIN_PX = 16 * sqrt(2)/2 + 1``: the square's half diagonal (the largest
  reach of any shape about its centre, at scale 1) plus one pixel. The largest
  sprite at the extreme positions therefore stays at least a pixel inside the
  frame at every orientation (the outermost rows and columns are always 0),
  and one position step is 39.4/31 = 1.27 pixels, so every step moves pixels.

The per-pixel shape tests live in ``csrc/include/vaebench/sprites.h`` (shared
with any GPU renderer) and run in the compiled op ``vaebench::render_sprites``;
``render_reference`` is an independent float64 NumPy version used by the tests.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from vaebench._extension import load_extension

load_extension()

FRAME = 64
SHAPES = ("square", "ellipse", "heart")
SPRITE_SIZE_PX = 16.0
ELLIPSE_SEMI_AXES = (0.7, 0.4)
HEART_WIDTH = 1.1
# Extent of the heart curve: x in [-HALF_WIDTH, HALF_WIDTH], y in [-1, TOP]
# (solved numerically; checked against the curve by the tests).
HEART_CURVE_HALF_WIDTH = 1.13903
HEART_CURVE_TOP = 1.23666
SPRITE_RADIUS = math.sqrt(0.5)  # largest reach of any shape about its centre, in sprite units
MARGIN_PX = SPRITE_SIZE_PX * SPRITE_RADIUS + 1.0


def _broadcast(shape, scale, orientation, pos_x, pos_y) -> tuple[np.ndarray, np.ndarray]:
    """Shape ids int64 ``[n]`` and poses ``(cx, cy, size, angle)`` in
    pixels/radians, float64 ``[n, 4]``, from (broadcast) factor values."""
    shape, scale, orientation, pos_x, pos_y = np.broadcast_arrays(
        *(np.atleast_1d(np.asarray(a)) for a in (shape, scale, orientation, pos_x, pos_y)))
    if shape.ndim != 1:
        raise ValueError(f"render: factor values must broadcast to 1-D, got shape {shape.shape}")
    if shape.size and (not np.issubdtype(shape.dtype, np.integer) or shape.min() < 0 or shape.max() > 2):
        raise ValueError(f"render: shape must hold integer ids 0 (square), 1 (ellipse), 2 (heart), got {shape!r}")
    span = FRAME - 2.0 * MARGIN_PX
    pose = np.stack([MARGIN_PX + pos_x * span, MARGIN_PX + pos_y * span, scale * SPRITE_SIZE_PX, orientation],
                    axis=1).astype(np.float64)
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


def inside_reference(shape: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Float64 point-in-shape test in sprite units (y up), written from the
    definitions in the module doc independently of the C++ header."""
    if shape == 0:
        return (np.abs(u) <= 0.5) & (np.abs(v) <= 0.5)
    if shape == 1:
        a, b = ELLIPSE_SEMI_AXES
        return (u / a) ** 2 + (v / b) ** 2 <= 1.0
    k = (HEART_WIDTH / 2.0) / HEART_CURVE_HALF_WIDTH  # sprite units per curve unit
    x, y = u / k, v / k + (HEART_CURVE_TOP - 1.0) / 2.0
    return (x * x + y * y - 1.0) ** 3 - x * x * y**3 <= 0.0


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
