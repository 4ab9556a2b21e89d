"""dSprites: factor grid order, renderer geometry, official-file loader.

Rendering the whole grid here would be too slow on a shared 2-core machine, so
the frame property is checked exhaustively where it can fail (extreme
positions, largest scale, every orientation and shape) and other properties on
strided subsets.
"""
from __future__ import annotations

import math
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from vaebench.data import DSprites, DSpritesFileError, load_dsprites
from vaebench.data import calibration
from vaebench.data import dsprites as ds_mod
from vaebench.data import render as R

N = 737_280
SIZES = (1, 3, 6, 40, 32, 32)
GIF = Path(__file__).resolve().parents[2] / "shared" / "data" / "dsprites.gif"
HEADER = Path(__file__).resolve().parents[1] / "csrc" / "include" / "vaebench" / "sprites.h"


@pytest.fixture(scope="module")
def data() -> DSprites:
    return DSprites()


def images_at(data, classes) -> np.ndarray:
    return data.images(data.factors_to_index(np.asarray(classes, dtype=np.int64)))


# --- factor grid ----------------------------------------------------------------------------------

def test_grid_order_and_round_trip(data):
    assert len(data) == N and data.factor_sizes == SIZES
    assert data.factor_names == ("color", "shape", "scale", "orientation", "posX", "posY")
    idx = np.arange(N)
    classes = data.index_to_factors(idx)
    # C-order enumeration of the grid = the official order (posY fastest).
    np.testing.assert_array_equal(classes, np.indices(SIZES).reshape(6, -1).T)
    np.testing.assert_array_equal(data.factors_to_index(classes), idx)
    # Known strides of the official file.
    for k, stride in enumerate([N, 245_760, 40_960, 1024, 32, 1]):
        if SIZES[k] > 1:
            expected = np.zeros(6, np.int64)
            expected[k] = 1
            np.testing.assert_array_equal(data.index_to_factors([stride])[0], expected)
    assert data.mig_factor_indices == (1, 2, 3, 4, 5)


def test_factor_values_match_official(data):
    v = data.factor_values_of([0, N - 1])
    np.testing.assert_allclose(v[0], [1, 1, 0.5, 0, 0, 0])
    np.testing.assert_allclose(v[1], [1, 3, 1.0, 2 * math.pi, 1, 1])
    np.testing.assert_allclose(data.factor_values[3][1], 2 * math.pi / 39)  # linspace(0, 2pi, 40)
    np.testing.assert_allclose(data.factor_values[2], [0.5, 0.6, 0.7, 0.8, 0.9, 1.0])


def test_bad_indices_and_classes_are_named(data):
    with pytest.raises(IndexError, match="indices"):
        data.images([N])
    with pytest.raises(TypeError, match="integers"):
        data.index_to_factors([0.5])
    with pytest.raises(IndexError, match=r"classes\[0, 3\] \(orientation\)"):
        data.factors_to_index([[0, 0, 0, 40, 0, 0]])
    with pytest.raises(ValueError, match=r"\[n, 6\]"):
        data.factors_to_index([[0, 0, 0]])


def test_sample_factors_uniform_per_factor(data):
    n = 60_000
    c = data.sample_factors(n, np.random.default_rng(0))
    assert c.shape == (n, 6) and c.dtype == np.int64
    np.testing.assert_array_equal(c, data.sample_factors(n, 0))  # same seed, same draw
    for k, size in enumerate(SIZES):
        counts = np.bincount(c[:, k], minlength=size)
        assert counts.size == size
        p = 1.0 / size
        sd = math.sqrt(n * p * (1 - p))
        assert np.all(np.abs(counts - n * p) <= 5 * sd + 1e-9), (k, counts)


def test_subset_indices(data):
    a = data.subset_indices(n=5000, seed=3)
    assert len(a) == 5000 and len(np.unique(a)) == 5000 and np.all(np.diff(a) > 0)
    np.testing.assert_array_equal(a, data.subset_indices(n=5000, seed=3))
    assert not np.array_equal(a, data.subset_indices(n=5000, seed=4))
    assert len(data.subset_indices(fraction=0.01)) == round(0.01 * N)
    with pytest.raises(ValueError, match="exactly one"):
        data.subset_indices(n=10, fraction=0.1)
    with pytest.raises(ValueError, match="fraction"):
        data.subset_indices(fraction=1.5)


# --- renderer ---------------------------------------------------------------------------------------

def test_images_binary_and_nonempty_strided(data):
    idx = np.arange(0, N, 97)
    im = data.images(idx)
    assert im.shape == (len(idx), 64, 64) and im.dtype == np.uint8
    assert set(np.unique(im)) == {0, 1}
    assert im.sum(axis=(1, 2)).min() > 30  # smallest sprite (scale 0.5) still covers dozens of pixels


def test_compiled_renderer_matches_numpy_reference(data):
    idx = data.sample_indices(300, np.random.default_rng(1))
    v = data.factor_values_of(idx)
    ref = R.render_reference(v[:, 1].astype(np.int64) - 1, v[:, 2], v[:, 3], v[:, 4], v[:, 5])
    np.testing.assert_array_equal(data.images(idx), ref)
    packed = R.render(v[:, 1].astype(np.int64) - 1, v[:, 2], v[:, 3], v[:, 4], v[:, 5], packed=True).numpy()
    np.testing.assert_array_equal(packed, np.packbits(ref, axis=-1))


def test_renderer_rejects_bad_input():
    with pytest.raises(ValueError, match="shape must hold integer ids"):
        R.render([3], 1.0, 0.0, 0.5, 0.5)
    with pytest.raises(RuntimeError, match=r"pose\[0\] must be finite with size > 0"):
        R.render([0], 0.0, 0.0, 0.5, 0.5)
    with pytest.raises(RuntimeError, match="packed output is uint8"):
        R.render([0], 1.0, 0.0, 0.5, 0.5, packed=True, dtype=torch.float32)


def _header_constant(name):
    return float(re.search(rf"constexpr double {name} = ([-0-9.e]+);", HEADER.read_text()).group(1))


def test_header_shares_the_geometry():
    # The compiled op and render_reference must describe the same shapes.
    text = HEADER.read_text()
    table = re.search(r"kHeartVertices\[kHeartHalfVertices\]\[2\] = \{(.*?)\n\};", text, re.S).group(1)
    vertices = np.array([[float(a), float(b)] for a, b in re.findall(r"\{([-0-9.e]+), ([-0-9.e]+)\}", table)])
    np.testing.assert_array_equal(vertices, R.HEART_VERTICES)
    assert (_header_constant("kEllipseA"), _header_constant("kEllipseB")) == R.ELLIPSE_SEMI_AXES


def test_heart_polygon_shape():
    v = R.HEART_VERTICES
    assert v.shape == (R.HEART_SEGMENTS // 2 + 1, 2) and v[0, 0] == 0.0 and v[-1, 0] == 0.0
    assert np.all(v[1:-1, 0] < 0)
    # The table is the parametric heart evaluated at its fitted constants.
    np.testing.assert_allclose(v, R.heart_vertices_from_curve(), rtol=0, atol=1e-15)
    # Star-shaped about the centre: the angle from the top increases along the left half.
    angle = np.arctan2(np.abs(v[:, 0]), v[:, 1])
    assert np.all(np.diff(angle) > 0) and angle[0] == 0.0 and angle[-1] == np.pi
    p = R.heart_polygon()
    assert p.shape == (R.HEART_SEGMENTS, 2)
    # The header's quick accept/reject discs: inside and around the polygon.
    q = np.roll(p, -1, axis=0)
    d = q - p
    t = np.clip(-(p * d).sum(1) / (d * d).sum(1), 0, 1)
    nearest = np.hypot(*(p + t[:, None] * d).T).min()
    assert _header_constant("kHeartInner") <= nearest
    assert _header_constant("kHeartOuter") >= np.hypot(*p.T).max()
    assert np.hypot(*p.T).max() <= R.SPRITE_RADIUS
    # The compiled op (edge found by bisection over the vertex rays) agrees with the reference
    # (even-odd rule) on hearts at many rotations and sub-pixel offsets.
    rng = np.random.default_rng(2)
    n = 200
    args = (np.full(n, 2), rng.uniform(0.5, 1.0, n), rng.uniform(0, 2 * np.pi, n), rng.uniform(0, 1, n),
            rng.uniform(0, 1, n))
    np.testing.assert_array_equal(R.render(*args).numpy(), R.render_reference(*args))


def test_sprites_stay_inside_frame_at_extremes(data):
    # Every shape and orientation at the largest scale, along all four edges.
    edge = [(x, y) for x in (0, 31) for y in range(32)] + [(x, y) for y in (0, 31) for x in range(32)]
    classes = [[0, s, 5, o, x, y] for s in range(3) for o in range(40) for x, y in edge]
    im = images_at(data, classes)
    border = np.concatenate([im[:, 0, :], im[:, -1, :], im[:, :, 0], im[:, :, -1]], axis=1)
    assert border.max() == 0


def test_continuous_sprite_keeps_a_pixel_from_the_frame():
    # Supersample a 1-pixel band along the frame at the corners: no point of the shape falls in it.
    t = (np.arange(64 * 8) + 0.5) / 8
    gx, gy = np.meshgrid(t, t)
    band = np.minimum(np.minimum(gx, gy), np.minimum(64 - gx, 64 - gy)) < 1.0
    xs, ys = gx[band], gy[band]
    for shape in range(3):
        for angle in np.linspace(0, 2 * np.pi, 40):
            for px in (0.0, 1.0):
                for py in (0.0, 1.0):
                    _, pose = R._broadcast(shape, 1.0, angle, px, py)
                    cx, cy, size, a = pose[0]
                    dx, dy = xs - cx, cy - ys
                    u = (math.cos(a) * dx + math.sin(a) * dy) / size
                    v = (math.cos(a) * dy - math.sin(a) * dx) / size
                    assert not R.inside_reference(shape, u, v).any(), (shape, angle, px, py)


def _centroids(im):
    rows, cols = np.indices((64, 64))
    area = im.sum(axis=(1, 2))
    return (im * cols).sum(axis=(1, 2)) / area, (im * rows).sum(axis=(1, 2)) / area


@pytest.mark.parametrize("axis", [4, 5])
def test_centroid_moves_monotonically_with_position(data, axis):
    step = R.POS_SPAN_PX / 31
    for s in range(3):
        for scale in (0, 5):
            for o in range(0, 40, 7):
                for other in (0, 15, 31):
                    classes = np.zeros((32, 6), np.int64)
                    classes[:, 1:4] = s, scale, o
                    classes[:, axis] = np.arange(32)
                    classes[:, 9 - axis] = other
                    cx, cy = _centroids(images_at(data, classes))
                    moving, fixed = (cx, cy) if axis == 4 else (cy, cx)
                    assert np.all(np.diff(moving) > 0), (s, scale, o, other)
                    # A translation: the centroid follows the position step; the other coordinate stays.
                    assert np.polyfit(np.arange(32), moving, 1)[0] == pytest.approx(step, rel=0.02)
                    assert np.ptp(fixed) < 0.5


def test_area_grows_with_scale(data):
    for s in range(3):
        for o in range(0, 40, 3):
            for x, y in [(0, 0), (5, 20), (16, 16), (31, 7)]:
                area = images_at(data, [[0, s, k, o, x, y] for k in range(6)]).sum(axis=(1, 2))
                assert np.all(np.diff(area) > 0), (s, o, x, y, area)
                assert area[-1] / area[0] == pytest.approx(4.0, rel=0.12)  # area ~ scale^2


def test_square_side_and_relative_shape_areas(data):
    # At position 0 the centre is on a pixel corner (16, 16): the real square at scale 1 covers
    # 20 x 20 pixels there (GIF frames 261, 262); elsewhere 19 or 20 a side.
    area = images_at(data, [[0, s, 5, 0, 0, 0] for s in range(3)]).sum(axis=(1, 2))
    assert area[0] == 20**2
    assert images_at(data, [[0, 0, 5, 0, 16, 16]]).sum() in (19 * 19, 19 * 20, 20 * 20)
    a, b = R.ELLIPSE_SEMI_AXES
    assert area[1] == pytest.approx(math.pi * a * b * R.SPRITE_SIZE_PX**2, rel=0.05)
    x, y = R.heart_polygon().T
    polygon_area = 0.5 * np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y)
    assert area[2] == pytest.approx(polygon_area * R.SPRITE_SIZE_PX**2, rel=0.05)
    assert 0.5 * area[0] < area[2] < 0.6 * area[0]  # the real heart: 222 pixels against the square's 400


def test_rotation_changes_square_and_heart(data):
    for s in (0, 2):
        for scale in (0, 3, 5):
            for x, y in [(0, 31), (16, 16), (30, 2)]:
                im = images_at(data, [[0, s, scale, o, x, y] for o in range(40)])
                changed = (im[1:] != im[:-1]).any(axis=(1, 2))
                if s == 0 and scale == 0 and x in (0, 31) and y in (0, 31):
                    # Orientations 19 and 20 (180 -/+ 4.6 degrees) are mirror images; a centre on a
                    # pixel corner makes the grid mirror-symmetric, and the smallest square's pixels
                    # then coincide: the one pair of steps that changes nothing.
                    changed = np.delete(changed, 19)
                assert changed.all(), (s, scale, x, y)
                # orientation 0 and 2 pi (the last value) are the same rotation
                assert (im[0] != im[-1]).sum() <= 2


# --- calibration against real frames of the dataset ---------------------------------------------

needs_gif = pytest.mark.skipif(not GIF.is_file(), reason=f"real dSprites frames not present ({GIF}): "
                               "the shared data folder is part of the development checkout only")


def test_gif_frame_factors_are_one_factor_traversals():
    c = calibration.gif_frame_factors()
    assert c.shape == (320, 6) and c.dtype == np.int64
    assert np.all(c >= 0) and np.all(c < np.array(SIZES))
    changed = (np.diff(c, axis=0) != 0).sum(axis=1)
    assert changed.max() <= 2  # one factor, or the shape switch (which also resets the scale)
    assert np.all(changed[c[1:, 1] == c[:-1, 1]] <= 1)
    assert np.bincount(c[:, 1]).tolist() == [64, 64, 192]  # square, ellipse, heart


@needs_gif
def test_renderer_reproduces_real_frames_exactly():
    frames = calibration.load_gif_frames(GIF)
    assert frames.shape == (320, 64, 64)
    m = calibration.match_frames(frames, calibration.gif_frame_factors(), best=False)
    inexact = np.flatnonzero(~m["exact"])
    assert inexact.size == 0, (f"{inexact.size}/320 frames not reproduced exactly: {inexact.tolist()}; "
                               f"IoU min {m['iou'].min():.4f}")


@needs_gif
def test_best_grid_match_of_real_frames():
    # The whole-grid search used for calibration: a few frames of each shape, found exactly.
    frames = calibration.load_gif_frames(GIF)[[3, 40, 100, 200, 230, 290]]
    m = calibration.match_frames(frames)
    np.testing.assert_array_equal(m["best_iou"], 1.0)


# --- training views ---------------------------------------------------------------------------------

def test_batch_and_torch_dataset(data):
    idx = np.array([5, 123_456, N - 1, 5])
    x = data.batch(idx)
    assert x.dtype == torch.float32 and x.shape == (4, 1, 64, 64)
    np.testing.assert_array_equal(x[:, 0].numpy(), data.images(idx).astype(np.float32))
    tds = data.torch_dataset(idx)
    img, c = tds[1]
    assert img.shape == (1, 64, 64) and c.tolist() == data.index_to_factors([123_456])[0].tolist()
    xb, cb = next(iter(torch.utils.data.DataLoader(tds, batch_size=4)))
    torch.testing.assert_close(xb, x)
    np.testing.assert_array_equal(cb.numpy(), data.index_to_factors(idx))


def test_render_cache_round_trip(tmp_path, data):
    path = tmp_path / "grid.npy"
    cached = DSprites(cache=path)
    assert path.stat().st_size > 377_000_000
    idx = data.sample_indices(500, 7)
    np.testing.assert_array_equal(cached.images(idx), data.images(idx))
    mtime = path.stat().st_mtime_ns
    again = DSprites(cache=path)  # current: memory-mapped, not rendered again
    assert path.stat().st_mtime_ns == mtime and isinstance(again._packed, np.memmap)


# --- the official file ------------------------------------------------------------------------------

SMALL = (1, 3, 2, 4, 3, 5)  # a complete sub-grid written with the official schema


def write_small(path, *, compressed=True, drop=None, **replace):
    """A consistent small file: official keys, dtypes and order, images from the renderer."""
    classes = np.ascontiguousarray(np.indices(SMALL).reshape(6, -1).T, dtype=np.int64)
    possible = [np.array([1.0]), np.array([1.0, 2.0, 3.0]), np.array([0.5, 1.0]),
                np.linspace(0, 2 * np.pi, 4), np.linspace(0, 1, 3), np.linspace(0, 1, 5)]
    values = np.stack([possible[k][classes[:, k]] for k in range(6)], axis=1)
    imgs = R.render(classes[:, 1], values[:, 2], values[:, 3], values[:, 4], values[:, 5]).numpy()
    arrays = {"imgs": imgs, "latents_values": values, "latents_classes": classes,
              "metadata": np.array({"description": "test"}, dtype=object)}
    arrays.update(replace)
    if drop:
        arrays.pop(drop)
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return arrays


@pytest.mark.parametrize("compressed", [True, False])
def test_loader_reads_official_schema(tmp_path, compressed):
    path = tmp_path / "small.npz"
    arrays = write_small(path, compressed=compressed)
    d = DSprites(path, expect_official=False)
    n = math.prod(SMALL)
    assert d.factor_sizes == SMALL and len(d) == n and d.mig_factor_indices == (1, 2, 3, 4, 5)
    idx = np.arange(n)
    np.testing.assert_array_equal(d.images(idx), arrays["imgs"])
    np.testing.assert_array_equal(d.index_to_factors(idx), arrays["latents_classes"])
    np.testing.assert_allclose(d.factor_values_of(idx), arrays["latents_values"])
    np.testing.assert_array_equal(d.batch([3, 0])[:, 0].numpy(), arrays["imgs"][[3, 0]].astype(np.float32))


def test_loader_accepts_fortran_ordered_latents(tmp_path):
    path = tmp_path / "small.npz"
    classes = np.indices(SMALL).reshape(6, -1).T.astype(np.int64)  # a transposed (Fortran-ordered) view
    assert classes.flags.f_contiguous and not classes.flags.c_contiguous
    write_small(path, latents_classes=classes)
    np.testing.assert_array_equal(DSprites(path, expect_official=False).index_to_factors(np.arange(len(classes))),
                                  classes)


def test_loader_requires_official_grid_by_default(tmp_path):
    path = tmp_path / "small.npz"
    write_small(path)
    with pytest.raises(DSpritesFileError, match=r"factor sizes \(1, 3, 2, 4, 3, 5\), expected the official"):
        DSprites(path)


def test_load_dsprites_resolves_path_then_env(tmp_path, monkeypatch):
    path = tmp_path / "small.npz"
    write_small(path)
    monkeypatch.delenv(ds_mod.ENV_VAR, raising=False)
    assert load_dsprites().source == "renderer"
    monkeypatch.setenv(ds_mod.ENV_VAR, str(path))
    assert load_dsprites(expect_official=False).factor_sizes == SMALL
    monkeypatch.setenv(ds_mod.ENV_VAR, str(tmp_path / "missing.npz"))
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        load_dsprites()
    monkeypatch.setenv(ds_mod.ENV_VAR, "")
    assert load_dsprites().source == "renderer"


def _bad_file(tmp_path, case):
    path = tmp_path / f"{case}.npz"
    n = math.prod(SMALL)
    if case == "missing_key":
        write_small(path, drop="imgs")
    elif case == "wrong_dtype":
        write_small(path, latents_classes=np.indices(SMALL).reshape(6, -1).T.astype(np.int32))
    elif case == "wrong_shape":
        write_small(path, imgs=np.zeros((n, 32, 32), np.uint8))
    elif case == "row_count":
        write_small(path, imgs=np.zeros((n - 1, 64, 64), np.uint8))
    elif case == "order":
        classes = np.indices(SMALL).reshape(6, -1).T.astype(np.int64)
        write_small(path, latents_classes=classes[::-1].copy())
    elif case == "values":
        arrays = write_small(path)
        values = arrays["latents_values"].copy()
        values[7, 3] += 0.1
        write_small(path, latents_values=values)
    elif case == "not_binary":
        write_small(path, imgs=np.full((n, 64, 64), 255, np.uint8))
    elif case == "not_npz":
        path.write_text("this is not an npz archive\n")
    elif case == "truncated":
        write_small(path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif case == "corrupt":  # central directory intact, imgs' compressed stream damaged
        write_small(path)
        with zipfile.ZipFile(path) as zf:
            info = zf.getinfo("imgs.npy")
        data = bytearray(path.read_bytes())
        start = info.header_offset + 30 + len(info.filename) + 200
        data[start:start + 400] = bytes(400)
        path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("case, message", [
    ("missing_key", "missing key 'imgs'"),
    ("wrong_dtype", r"'latents_classes' must be int64 \[N, 6\], got int32"),
    ("wrong_shape", r"'imgs' must be uint8 \[N, 64, 64\]"),
    ("row_count", "'imgs' has 359 rows but the latents have 360"),
    ("order", "not the factor grid in the official order"),
    ("values", r"column 3 \(orientation\) is not one value per class"),
    ("not_binary", "0/1"),
    ("not_npz", "not a readable .npz"),
    ("truncated", "not a readable .npz"),
    ("corrupt", "member 'imgs' is unreadable"),
])
def test_loader_rejects_malformed_files(tmp_path, case, message):
    with pytest.raises(DSpritesFileError, match=message):
        DSprites(_bad_file(tmp_path, case), expect_official=False)


def test_loader_missing_file_and_cache_misuse(tmp_path):
    with pytest.raises(FileNotFoundError, match="dSprites file not found"):
        DSprites(tmp_path / "nope.npz")
    with pytest.raises(ValueError, match="cache applies to the renderer only"):
        DSprites(tmp_path / "nope.npz", cache=tmp_path / "c.npy")
