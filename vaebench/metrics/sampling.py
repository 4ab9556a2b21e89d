"""The draws of the metrics that sample the ground-truth grid: factor classes over the factors
that vary (dSprites: shape, scale, orientation, posX, posY; its one-valued color is left out, as
disentanglement_lib does), each uniform and independent, turned into grid indices."""
from __future__ import annotations

import numpy as np


def varying_factors(data) -> list[int]:
    """Columns of ``data``'s factors that take more than one value."""
    return [k for k, size in enumerate(data.factor_sizes) if size > 1]


def sample_indices(data, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` i.i.d. grid indices and their classes of the varying factors ``[n, K]``."""
    classes = data.sample_factors(n, rng)
    return data.factors_to_index(classes), classes[:, varying_factors(data)]


def sample_with_fixed(data, factor: np.ndarray, n_batches: int, batch: int, rng: np.random.Generator,
                      fixed_from: np.ndarray) -> np.ndarray:
    """Grid indices ``[n_batches, batch]`` whose classes are i.i.d. except the varying factor
    ``factor[b]`` of batch b, which is set to ``fixed_from[b]`` (classes ``[n_batches, batch, 6]``
    or ``[n_batches, 6]``, broadcast over the batch)."""
    classes = data.sample_factors(n_batches * batch, rng).reshape(n_batches, batch, -1)
    cols = np.asarray(varying_factors(data))[factor]
    b = np.arange(n_batches)
    if fixed_from.ndim == 3:  # image by image
        classes[b, :, cols] = fixed_from[b, :, cols]
    else:  # one value per batch
        classes[b, :, cols] = fixed_from[b, cols][:, None]
    return data.factors_to_index(classes.reshape(-1, classes.shape[-1])).reshape(n_batches, batch)
