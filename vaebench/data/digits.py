"""Handwritten digits as 64 x 64 images, for the 2-D latent VAE of the documents' ``003``
("Testing", on MNIST): scikit-learn's bundled digits (1,797 images of 8 x 8, 17 grey levels),
which need no download, or a local MNIST ``.npz`` where a user has one (``x_train`` [N, 28, 28]
uint8 and ``y_train``, as Keras saves it). Images are scaled to [0, 1] and resized to the
models' 64 x 64 (nearest for the 8 x 8 digits: each pixel an 8 x 8 block; bilinear for MNIST); the
one factor is the digit's class. Same interface as ``vaebench.data.DSprites`` where the
training loop and MIG read it (``batch``, ``index_to_factors``, ``factor_names``, ``factor_sizes``).
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

SKLEARN_DIGITS = "sklearn-digits"  # the data_path that names scikit-learn's bundled digits


class DigitsFileError(ValueError):
    """A local MNIST file that cannot be read (one line: the path and why)."""


class Digits:
    factor_names = ("digit",)
    factor_sizes = (10,)

    def __init__(self, images: np.ndarray, labels: np.ndarray, source: str):
        self._images = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))  # [N, 64, 64] in [0, 1]
        self._labels = np.asarray(labels, dtype=np.int64)
        self.source = source
        self.mig_factor_indices = (0,)

    def __len__(self) -> int:
        return len(self._labels)

    def __repr__(self) -> str:
        return f"Digits(source={self.source!r}, n={len(self)})"

    def _check(self, indices) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"indices must lie in [0, {len(self)}), got [{idx.min()}, {idx.max()}]")
        return idx

    def index_to_factors(self, indices) -> np.ndarray:
        return self._labels[self._check(indices)][:, None]

    def batch(self, indices, device: torch.device | str | None = None) -> torch.Tensor:
        x = self._images[torch.from_numpy(self._check(indices))].unsqueeze(1)
        return x if device is None else x.to(device, non_blocking=True)


def load_sklearn_digits() -> Digits:
    from sklearn.datasets import load_digits

    d = load_digits()
    small = torch.from_numpy(d.images.astype(np.float32) / 16.0)  # [N, 8, 8], 0..16 grey levels
    images = small.repeat_interleave(8, 1).repeat_interleave(8, 2)
    return Digits(images.numpy(), d.target, SKLEARN_DIGITS)


def load_mnist(path: str | Path) -> Digits:
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            x, y = f["x_train"], f["y_train"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise DigitsFileError(f"{path}: not an MNIST .npz with x_train and y_train ({type(e).__name__}: {e})") from None
    if x.ndim != 3 or len(x) != len(y):
        raise DigitsFileError(f"{path}: x_train must be [N, H, W] with one y_train label each, got shapes "
                              f"{x.shape} and {y.shape}")
    t = torch.from_numpy(x.astype(np.float32) / 255.0).unsqueeze(1)
    images = F.interpolate(t, size=(64, 64), mode="bilinear", align_corners=False).squeeze(1).clamp(0, 1)
    return Digits(images.numpy(), y, str(path))


def load_digits(path: str | None = None) -> Digits:
    """scikit-learn's digits (``path`` None or ``SKLEARN_DIGITS``), else a local MNIST ``.npz``."""
    return load_sklearn_digits() if path in (None, SKLEARN_DIGITS) else load_mnist(path)
