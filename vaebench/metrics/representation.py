"""A representation of the dSprites grid, encoded once per image.

The interventional metrics draw hundreds of thousands of 64-image batches from a grid of 737,280
images, and the suite's metrics draw over the same grid again and again: about 2.9 million images
at the study's sizes, of which only about 720,000 are distinct. The codes of an image do not
depend on the batch it comes in (encoder means of a model in eval mode), so ``Representation``
keeps every image's code the first time it is needed, in one ``[len(data), D]`` table, and encodes
only what it has not seen, in large batches."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch


class Representation:
    """``codes(indices)``: the codes ``[n, D]`` of the grid images ``indices``, computed by
    ``encode`` (float32 images ``[b, 1, 64, 64]`` -> codes ``[b, D]``, numpy or torch) at most once
    per image, ``batch_size`` images per call."""

    def __init__(self, encode: Callable, data, *, batch_size: int = 1024):
        if not callable(encode):
            raise TypeError(f"Representation: encode must be a function images -> codes, got {type(encode).__name__}")
        if int(batch_size) < 1:
            raise ValueError(f"Representation: batch_size must be >= 1, got {batch_size}")
        self.encode, self.data, self.batch_size = encode, data, int(batch_size)
        self._table: np.ndarray | None = None
        self._known = np.zeros(len(data), dtype=bool)
        self.encoded = 0  # images encoded so far (each at most once)

    @classmethod
    def of(cls, encode, data) -> "Representation":
        """``encode`` itself when it is a Representation of ``data``, else a new one around it."""
        if isinstance(encode, Representation):
            if encode.data is not data:
                raise ValueError("Representation: the representation given belongs to another dataset")
            return encode
        return cls(encode, data)

    def _encode(self, idx: np.ndarray) -> np.ndarray:
        out = self.encode(self.data.batch(idx))
        out = out.detach().float().cpu().numpy() if isinstance(out, torch.Tensor) else np.asarray(out, np.float32)
        if out.ndim != 2 or out.shape[0] != len(idx):
            raise ValueError(f"Representation: encode must return codes [{len(idx)}, D] for {len(idx)} images, "
                             f"got shape {out.shape}")
        if not np.isfinite(out).all():
            raise ValueError(f"Representation: encode returned {int((~np.isfinite(out)).sum())} NaN or inf codes")
        return out

    def codes(self, indices) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64)
        flat = idx.reshape(-1)
        todo = np.unique(flat[~self._known[flat]])
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start:start + self.batch_size]
            out = self._encode(chunk)
            if self._table is None:
                self._table = np.zeros((len(self.data), out.shape[1]), dtype=np.float32)
            elif out.shape[1] != self._table.shape[1]:
                raise ValueError(f"Representation: encode returned {out.shape[1]} code dimensions, "
                                 f"earlier {self._table.shape[1]}")
            self._table[chunk] = out
            self._known[chunk] = True
            self.encoded += len(chunk)
        if self._table is None:  # nothing asked for yet
            return np.zeros((*idx.shape, 0), dtype=np.float32)
        return self._table[idx]


def model_encoder(model, *, device: str = "cpu", precision: str = "fp32", channels_last: bool = False) -> Callable:
    """images -> encoder means of a vaebench ``VAE`` (eval mode, no gradients)."""
    from vaebench.models import precision as prec

    model.eval()
    arch = model.config.arch

    @torch.inference_mode()
    def encode(x: torch.Tensor) -> torch.Tensor:
        x = prec.prepare_input(x.to(device), arch, channels_last)
        with prec.autocast(precision, device):
            mu, _ = model.encode(x)
        return mu.float()

    return encode
