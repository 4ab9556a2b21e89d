"""dSprites as a ground-truth dataset: rendered on demand, or read from the official file.

``DSprites()`` renders the official factor grid itself (see ``render.py``);
``DSprites(path)`` reads ``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz``.
Both give the same interface, so experiments do not know which source they got.

Factor grid (official order, posY varying fastest)::

    color (1) x shape (3) x scale (6) x orientation (40) x posX (32) x posY (32) = 737,280

index = dot(classes, bases), bases = reverse cumulative product of the sizes.

Official file: its ``imgs`` member (3 GB of uint8 once decompressed) is streamed
in chunks and kept bit-packed in memory (377 MB), never read whole. The file is
validated instead of trusted: keys, dtypes and trailing shapes; row counts that
agree; ``latents_classes`` that enumerate the complete grid in the official
order (sizes derived from the classes); ``latents_values`` that are one value per
class; images that are 0/1. ``metadata`` (a pickle) is never unpickled. With
``expect_official=True`` (the default) the grid must also be the official one;
``expect_official=False`` accepts any complete grid of the six factors, which is
how the tests check the loader on small files of the official schema.
"""
from __future__ import annotations

import json
import math
import os
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from vaebench.data import render as _render
from vaebench.utils.io import atomic_path, write_json

FACTOR_NAMES = ("color", "shape", "scale", "orientation", "posX", "posY")
FACTOR_SIZES = (1, 3, 6, 40, 32, 32)
FACTOR_VALUES = (
    np.array([1.0]),
    np.array([1.0, 2.0, 3.0]),  # the official file stores shape values 1, 2, 3 (square, ellipse, heart)
    np.linspace(0.5, 1.0, 6),
    np.linspace(0.0, 2 * np.pi, 40),  # 0 and 2 pi both included, as in the official file
    np.linspace(0.0, 1.0, 32),
    np.linspace(0.0, 1.0, 32),
)
OFFICIAL_FILENAME = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
ENV_VAR = "VAEBENCH_DSPRITES"
IMAGE_SIZE = 64
RENDER_CACHE_VERSION = 4  # bump when the renderer's geometry changes
_NUMPY_DTYPES = {torch.uint8: np.uint8, torch.float32: np.float32}
_CHUNK = 16384  # images per streamed / rendered chunk (64 MB unpacked)


class DSpritesFileError(ValueError):
    """A dSprites file that is missing members, malformed, truncated or foreign."""


class DSprites:
    """The dSprites factor grid with its images.

    Args:
        path: the official ``.npz``; None renders the images on demand.
        expect_official: require the official grid sizes and values (file only).
        cache: renderer only: a ``.npy`` file of the bit-packed grid (about
            380 MB). Read (memory-mapped) when present and current, else
            rendered once and written atomically.
    """

    def __init__(self, path: str | os.PathLike | None = None, *, expect_official: bool = True,
                 cache: str | os.PathLike | None = None):
        self._packed: np.ndarray | None = None  # [N, 64, 8] uint8 bit-packed images, or None to render
        if path is None:
            self.source = "renderer"
            self.factor_sizes, self.factor_values = FACTOR_SIZES, FACTOR_VALUES
        else:
            if cache is not None:
                raise ValueError("DSprites: cache applies to the renderer only (path must be None), got a path too")
            self.source = str(path)
            self.factor_sizes, self.factor_values, self._packed = _read_official(Path(path), expect_official)
        self.factor_names = FACTOR_NAMES
        self._bases = np.array([math.prod(self.factor_sizes[k + 1:]) for k in range(len(self.factor_sizes))])
        # Factors that vary (color is constant): the ones MIG scores.
        self.mig_factor_indices = tuple(k for k, s in enumerate(self.factor_sizes) if s > 1)
        if cache is not None:
            self._packed = _render_cache(self, Path(cache))

    def __len__(self) -> int:
        return math.prod(self.factor_sizes)

    def __repr__(self) -> str:
        return f"DSprites(source={self.source!r}, factor_sizes={self.factor_sizes})"

    # --- factors --------------------------------------------------------------------------------

    def _check_indices(self, indices, name: str = "indices") -> np.ndarray:
        idx = np.asarray(indices)
        if idx.size == 0:
            return idx.astype(np.int64).reshape(-1)
        if not np.issubdtype(idx.dtype, np.integer):
            raise TypeError(f"DSprites: {name} must be integers, got dtype {idx.dtype}")
        idx = idx.astype(np.int64).reshape(-1)
        if idx.min() < 0 or idx.max() >= len(self):
            raise IndexError(f"DSprites: {name} must lie in [0, {len(self)}), got range [{idx.min()}, {idx.max()}]")
        return idx

    def index_to_factors(self, indices) -> np.ndarray:
        """Factor classes, int64 ``[n, 6]`` (the file's ``latents_classes``)."""
        idx = self._check_indices(indices)
        return (idx[:, None] // self._bases[None, :]) % np.asarray(self.factor_sizes)[None, :]

    def factors_to_index(self, classes) -> np.ndarray:
        """Grid indices, int64 ``[n]``, of factor classes ``[n, 6]``."""
        c = np.asarray(classes)
        if c.ndim != 2 or c.shape[1] != len(self.factor_sizes) or not np.issubdtype(c.dtype, np.integer):
            raise ValueError(f"DSprites: classes must be an integer array [n, {len(self.factor_sizes)}], "
                             f"got {c.dtype} of shape {c.shape}")
        bad = (c < 0) | (c >= np.asarray(self.factor_sizes))
        if bad.any():
            row, k = np.argwhere(bad)[0]
            raise IndexError(f"DSprites: classes[{row}, {k}] ({self.factor_names[k]}) must lie in "
                             f"[0, {self.factor_sizes[k]}), got {c[row, k]}")
        return c.astype(np.int64) @ self._bases

    def factor_values_of(self, indices) -> np.ndarray:
        """Factor values, float64 ``[n, 6]`` (the file's ``latents_values``)."""
        c = self.index_to_factors(indices)
        return np.stack([self.factor_values[k][c[:, k]] for k in range(len(self.factor_sizes))], axis=1)

    def sample_factors(self, n: int, rng: np.random.Generator | int | None = None) -> np.ndarray:
        """``n`` factor classes drawn uniformly and independently per factor, int64 ``[n, 6]``."""
        rng = np.random.default_rng(rng)
        return np.stack([rng.integers(0, s, size=int(n)) for s in self.factor_sizes], axis=1).astype(np.int64)

    def sample_indices(self, n: int, rng: np.random.Generator | int | None = None) -> np.ndarray:
        """``n`` grid indices drawn uniformly with replacement."""
        return np.random.default_rng(rng).integers(0, len(self), size=int(n), dtype=np.int64)

    def subset_indices(self, *, fraction: float | None = None, n: int | None = None, seed: int = 0) -> np.ndarray:
        """Sorted distinct random grid indices for quick profiles: a ``fraction``
        of the grid or ``n`` images (give exactly one), fixed by ``seed``."""
        if (fraction is None) == (n is None):
            raise ValueError(f"subset_indices: give exactly one of fraction and n, got fraction={fraction}, n={n}")
        if fraction is not None:
            if not 0.0 < fraction <= 1.0:
                raise ValueError(f"subset_indices: fraction must lie in (0, 1], got {fraction}")
            n = max(1, round(fraction * len(self)))
        if not 0 < int(n) <= len(self):
            raise ValueError(f"subset_indices: n must lie in [1, {len(self)}], got {n}")
        rng = np.random.default_rng(seed)
        return np.sort(rng.choice(len(self), size=int(n), replace=False)).astype(np.int64)

    # --- images ---------------------------------------------------------------------------------

    def _images_tensor(self, indices, dtype: torch.dtype = torch.uint8) -> torch.Tensor:
        idx = self._check_indices(indices)
        if self._packed is not None:
            # NumPy converts single-threaded: cheaper than a torch pass that wakes the thread pool.
            return torch.from_numpy(np.unpackbits(self._packed[idx], axis=-1).astype(_NUMPY_DTYPES[dtype], copy=False))
        c = self.index_to_factors(idx)
        v = self.factor_values
        return _render.render(c[:, 1], v[2][c[:, 2]], v[3][c[:, 3]], v[4][c[:, 4]], v[5][c[:, 5]], dtype=dtype)

    def images(self, indices) -> np.ndarray:
        """uint8 images ``[n, 64, 64]`` with values 0/1."""
        return self._images_tensor(indices).numpy()

    def batch(self, indices, device: torch.device | str | None = None) -> torch.Tensor:
        """float32 images ``[n, 1, 64, 64]`` in {0, 1}, ready for a model: the fast
        path for training loops that draw index batches themselves."""
        x = self._images_tensor(indices, torch.float32).unsqueeze(1)
        return x if device is None else x.to(device, non_blocking=True)

    def packed_chunks(self, chunk: int = _CHUNK) -> Iterator[tuple[int, np.ndarray]]:
        """Yields ``(start, bit-packed images [m, 64, 8])`` over the whole grid."""
        for start in range(0, len(self), chunk):
            stop = min(start + chunk, len(self))
            if self._packed is not None:
                yield start, np.asarray(self._packed[start:stop])
            else:
                c = self.index_to_factors(np.arange(start, stop))
                v = self.factor_values
                yield start, _render.render(c[:, 1], v[2][c[:, 2]], v[3][c[:, 3]], v[4][c[:, 4]], v[5][c[:, 5]],
                                            packed=True).numpy()

    def torch_dataset(self, indices=None) -> "DSpritesTorch":
        """A ``torch.utils.data.Dataset`` over ``indices`` (default: the whole grid)."""
        return DSpritesTorch(self, indices)


class DSpritesTorch(torch.utils.data.Dataset):
    """Items ``(image float32 [1, 64, 64] in {0, 1}, factor classes int64 [6])``."""

    def __init__(self, data: DSprites, indices=None):
        self.data = data
        self.indices = np.arange(len(data), dtype=np.int64) if indices is None else data._check_indices(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        return self.__getitems__([i])[0]

    def __getitems__(self, items) -> list:
        # DataLoader calls this with a whole batch: one render call, not n.
        idx = self.indices[np.asarray(items, dtype=np.int64)]
        x = self.data.batch(idx)
        c = torch.from_numpy(self.data.index_to_factors(idx))
        return list(zip(x, c))


def load_dsprites(path: str | os.PathLike | None = None, **kwargs) -> DSprites:
    """dSprites from ``path``, else from ``$VAEBENCH_DSPRITES``, else the renderer."""
    if path is None:
        path = os.environ.get(ENV_VAR) or None
    return DSprites(path, **kwargs)


# --- the renderer's on-disk cache -----------------------------------------------------------------

def _render_cache(data: DSprites, path: Path) -> np.ndarray:
    """The bit-packed grid from ``path`` (memory-mapped), rendered and written first when absent or stale."""
    stamp = {"source": "renderer", "version": RENDER_CACHE_VERSION, "factor_sizes": list(FACTOR_SIZES)}
    meta = path.with_name(path.name + ".json")
    shape = (len(data), IMAGE_SIZE, IMAGE_SIZE // 8)
    if path.exists() and meta.exists() and json.loads(meta.read_text()) == stamp:
        packed = np.load(path, mmap_mode="r")
        if packed.shape == shape and packed.dtype == np.uint8:
            return packed
    with atomic_path(path) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        for start, chunk in tqdm(data.packed_chunks(), total=-(-len(data) // _CHUNK), desc="render dSprites",
                                 unit="chunk"):
            out[start:start + len(chunk)] = chunk
        out.flush()
        del out
    write_json(meta, stamp)
    return np.load(path, mmap_mode="r")


# --- the official file ----------------------------------------------------------------------------

@contextmanager
def _member_errors(path: Path, member: str):
    """Turns zip/zlib/numpy format failures into one clear DSpritesFileError."""
    try:
        yield
    except DSpritesFileError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as e:
        raise DSpritesFileError(f"dSprites file {path}: member '{member}' is unreadable (truncated or corrupt?): "
                                f"{type(e).__name__}: {e}") from e


def _open_member(zf: zipfile.ZipFile, path: Path, name: str):
    if name + ".npy" not in zf.namelist():
        raise DSpritesFileError(f"dSprites file {path}: missing key '{name}' (has {sorted(zf.namelist())}); "
                                f"expected the official {OFFICIAL_FILENAME} layout")
    return zf.open(name + ".npy")


def _read_header(f) -> tuple[tuple[int, ...], bool, np.dtype]:
    version = np.lib.format.read_magic(f)
    reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    return reader(f)


def _read_small(zf, path: Path, name: str, dtype, width: int) -> np.ndarray:
    """A 2-D latents member, checked for dtype and width."""
    with _member_errors(path, name), _open_member(zf, path, name) as f:
        shape, fortran, dt = _read_header(f)
        if dt != np.dtype(dtype) or len(shape) != 2 or shape[1] != width:
            raise DSpritesFileError(f"dSprites file {path}: '{name}' must be {np.dtype(dtype)} [N, {width}], "
                                    f"got {dt} {list(shape)}")
        nbytes = math.prod(shape) * dt.itemsize
        buf = f.read(nbytes)
        if len(buf) != nbytes:
            raise DSpritesFileError(f"dSprites file {path}: '{name}' is truncated ({len(buf)} of {nbytes} bytes)")
        return np.frombuffer(buf, dtype=dt).reshape(shape, order="F" if fortran else "C")


def _check_grid(path: Path, classes: np.ndarray, values: np.ndarray,
                expect_official: bool) -> tuple[tuple[int, ...], tuple[np.ndarray, ...]]:
    """Factor sizes and values of the file, after checking it holds the complete grid in order."""
    if len(classes) != len(values):
        raise DSpritesFileError(f"dSprites file {path}: latents_classes has {len(classes)} rows but "
                                f"latents_values has {len(values)}")
    if len(classes) == 0 or classes.min() < 0:
        raise DSpritesFileError(f"dSprites file {path}: latents_classes must be non-empty and >= 0")
    sizes = tuple(int(s) for s in classes.max(axis=0) + 1)
    if len(classes) != math.prod(sizes):
        raise DSpritesFileError(f"dSprites file {path}: {len(classes)} rows, but the factor sizes {sizes} found in "
                                f"latents_classes make a grid of {math.prod(sizes)}")
    expected = np.stack(np.unravel_index(np.arange(len(classes)), sizes), axis=1)
    bad = np.flatnonzero((classes != expected).any(axis=1))
    if bad.size:
        raise DSpritesFileError(f"dSprites file {path}: latents_classes is not the factor grid in the official order "
                                f"(posY fastest): row {bad[0]} is {classes[bad[0]].tolist()}, expected "
                                f"{expected[bad[0]].tolist()}")
    possible = []
    for k, name in enumerate(FACTOR_NAMES):
        base = math.prod(sizes[k + 1:])  # in grid order, class c of factor k first appears at row c * base
        per_class = values[np.arange(sizes[k]) * base, k]
        if not np.allclose(values[:, k], per_class[classes[:, k]], rtol=0, atol=1e-9):
            raise DSpritesFileError(f"dSprites file {path}: latents_values column {k} ({name}) is not one value "
                                    f"per class of latents_classes")
        possible.append(per_class)
    if expect_official:
        if sizes != FACTOR_SIZES:
            raise DSpritesFileError(f"dSprites file {path}: factor sizes {sizes}, expected the official "
                                    f"{FACTOR_SIZES} (pass expect_official=False for another grid)")
        for k, name in enumerate(FACTOR_NAMES):
            if not np.allclose(possible[k], FACTOR_VALUES[k], rtol=0, atol=1e-6):
                raise DSpritesFileError(f"dSprites file {path}: {name} values {possible[k]} differ from the "
                                        f"official {FACTOR_VALUES[k]}")
    return sizes, tuple(possible)


def _read_images(zf, path: Path, n: int) -> np.ndarray:
    """Streams ``imgs`` chunk by chunk into bit-packed ``[n, 64, 8]``, checking 0/1 values."""
    name = "imgs"
    with _member_errors(path, name), _open_member(zf, path, name) as f:
        shape, fortran, dt = _read_header(f)
        if dt != np.uint8 or len(shape) != 3 or shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
            raise DSpritesFileError(f"dSprites file {path}: 'imgs' must be uint8 [N, 64, 64], got {dt} {list(shape)}")
        if fortran:  # images are streamed row by row, which needs C order
            raise DSpritesFileError(f"dSprites file {path}: 'imgs' is stored in Fortran order; expected C order")
        if shape[0] != n:
            raise DSpritesFileError(f"dSprites file {path}: 'imgs' has {shape[0]} rows but the latents have {n}")
        packed = np.empty((n, IMAGE_SIZE, IMAGE_SIZE // 8), np.uint8)
        per = IMAGE_SIZE * IMAGE_SIZE
        for start in tqdm(range(0, n, _CHUNK), desc="read dSprites", unit="chunk", disable=n <= _CHUNK):
            m = min(_CHUNK, n - start)
            buf = f.read(m * per)
            if len(buf) != m * per:
                raise DSpritesFileError(f"dSprites file {path}: 'imgs' is truncated at image "
                                        f"{start + len(buf) // per} of {n}")
            chunk = np.frombuffer(buf, np.uint8).reshape(m, IMAGE_SIZE, IMAGE_SIZE)
            if chunk.max(initial=0) > 1:
                raise DSpritesFileError(f"dSprites file {path}: 'imgs' must hold 0/1 values, found "
                                        f"{int(chunk.max())} in images {start}..{start + m - 1}")
            packed[start:start + m] = np.packbits(chunk, axis=-1)
        return packed


def _read_official(path: Path, expect_official: bool):
    if not path.exists():
        raise FileNotFoundError(f"dSprites file not found: {path} (expected {OFFICIAL_FILENAME}; unset {ENV_VAR} "
                                f"or pass no path to use the built-in renderer)")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise DSpritesFileError(f"dSprites file {path} is not a readable .npz (zip) archive: {e}") from e
    with zf:
        classes = _read_small(zf, path, "latents_classes", np.int64, len(FACTOR_NAMES))
        values = _read_small(zf, path, "latents_values", np.float64, len(FACTOR_NAMES))
        sizes, possible = _check_grid(path, classes, values, expect_official)
        packed = _read_images(zf, path, len(classes))
    return sizes, possible, packed
