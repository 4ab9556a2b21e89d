"""The renderer's calibration against real frames: the animated GIF of the dataset's own
repository, its frames' factor values, and how well the grid images reproduce them.

A module of its own because it needs ``DSprites``, which needs ``render``: here, above both,
the imports run one way. ``python -m vaebench.data.calibration [GIF]`` prints the match.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from vaebench.data.dsprites import DSprites


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
    """``python -m vaebench.data.calibration [GIF]``: prints how well the renderer
    reproduces the frames of the dataset's GIF (default: ../shared/data/dsprites.gif)."""
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
