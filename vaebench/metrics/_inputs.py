"""Input checks shared by the metrics that take arrays: codes ``[N, D]`` and factor classes
``[N, K]``. Each error names the metric, the argument, what was expected and what was given."""
from __future__ import annotations

import numpy as np


def _array(metric: str, name: str, a) -> np.ndarray:
    try:
        import torch

        if isinstance(a, torch.Tensor):
            a = a.detach().cpu().numpy()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{metric}: {name} must be a numpy array or torch tensor, got {type(a).__name__}")
    return a


def codes(metric: str, name: str, a, *, min_dims: int = 1) -> np.ndarray:
    """float64 ``[N, D]`` codes, finite."""
    a = _array(metric, name, a)
    if a.ndim != 2:
        raise ValueError(f"{metric}: {name} must be 2-D [N, D], got shape {a.shape}")
    if a.shape[0] < 2:
        raise ValueError(f"{metric}: {name} needs at least 2 samples, got N = {a.shape[0]}")
    if a.shape[1] < min_dims:
        raise ValueError(f"{metric}: {name} needs at least {min_dims} code dimension(s), got D = {a.shape[1]}")
    if a.dtype == bool or np.iscomplexobj(a) or not np.issubdtype(a.dtype, np.number):
        raise TypeError(f"{metric}: {name} must hold real numbers, got dtype {a.dtype}")
    a = a.astype(np.float64, copy=False)
    if not np.isfinite(a).all():
        raise ValueError(f"{metric}: {name} must be finite, found {int((~np.isfinite(a)).sum())} NaN or inf values")
    return a


def factors(metric: str, name: str, a, n: int) -> np.ndarray:
    """int64 ``[n, K]`` factor classes (>= 0)."""
    a = _array(metric, name, a)
    if a.ndim != 2:
        raise ValueError(f"{metric}: {name} must be 2-D [N, K], got shape {a.shape}")
    if a.shape[0] != n:
        raise ValueError(f"{metric}: {name} must have one row per code (N = {n}), got {a.shape[0]} rows")
    if a.shape[1] < 1:
        raise ValueError(f"{metric}: {name} needs at least one factor, got K = 0")
    if a.dtype == bool or not np.issubdtype(a.dtype, np.number):
        raise TypeError(f"{metric}: {name} must hold integer class ids, got dtype {a.dtype}")
    if not np.issubdtype(a.dtype, np.integer):
        bad = ~np.isfinite(a) | (a != np.round(a))
        if bad.any():
            r, k = np.argwhere(bad)[0]
            raise ValueError(f"{metric}: {name} must hold integer class ids, got {a[r, k]} at row {r}, factor {k}")
    a = a.astype(np.int64)
    if a.min() < 0:
        raise ValueError(f"{metric}: {name} must hold class ids >= 0, got minimum {a.min()}")
    return a


def pair(metric: str, codes_name: str, c, factors_name: str, f) -> tuple[np.ndarray, np.ndarray]:
    c = codes(metric, codes_name, c)
    return c, factors(metric, factors_name, f, c.shape[0])


def split(metric: str, codes_train, factors_train, codes_test, factors_test):
    """The (train, test) arrays of a metric that fits on one half and scores the other."""
    ctr, ftr = pair(metric, "codes_train", codes_train, "factors_train", factors_train)
    cte, fte = pair(metric, "codes_test", codes_test, "factors_test", factors_test)
    if cte.shape[1] != ctr.shape[1]:
        raise ValueError(f"{metric}: codes_test must have the D = {ctr.shape[1]} columns of codes_train, "
                         f"got {cte.shape[1]}")
    if fte.shape[1] != ftr.shape[1]:
        raise ValueError(f"{metric}: factors_test must have the K = {ftr.shape[1]} columns of factors_train, "
                         f"got {fte.shape[1]}")
    return ctr, ftr, cte, fte
