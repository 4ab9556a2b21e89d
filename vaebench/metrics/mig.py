"""Mutual Information Gap (MIG), exactly as disentanglement_lib computes it.

Each latent dimension is discretized on its own into ``num_bins`` equal-width
bins over its min..max (``np.digitize(x, np.histogram(x, num_bins)[1][:-1])``,
in float64: float32 latents are upcast first). ``I(z_j; v_k)`` is scikit-learn's
``mutual_info_score`` (nats) of the binned latent and the factor, ``H(v_k)`` the
factor's entropy, and

    MIG = mean_k (largest_j I(z_j; v_k) - second largest) / H(v_k).

Three implementations of the same numbers:
- ``mig``: one fused custom op (``torch.ops.vaebench.mig_histogram``, C++ or
  CUDA) bins every dimension and builds all D x K joint histograms in one pass;
- ``mig_vectorized``: plain torch (searchsorted + bincount), no custom kernel;
- ``mig_reference``: numpy binning and one scikit-learn call per pair.
The first two share the float64 MI formula below, a copy of scikit-learn's.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from vaebench._extension import has_cuda_kernels, load_extension

load_extension()
log = logging.getLogger(__name__)

# Factors with more distinct class ids than this are relabelled 0..n-1 first,
# so that sparse ids (e.g. 10**6) do not blow up the histograms.
_MAX_DENSE_CLASSES = 4096
# Cells of the (row chunk x D x K) index tensor of mig_vectorized, bounding its memory.
_VECTORIZED_CHUNK = 1 << 22


@dataclass(frozen=True)
class MIGResult:
    score: float  # mean of gaps
    gaps: np.ndarray  # [K] (top-1 minus top-2 mutual information) / entropy, per factor
    mutual_info: np.ndarray  # [D, K] I(z_j; v_k) in nats
    factor_entropy: np.ndarray  # [K] H(v_k) in nats


# ---- input checks, shared by all three implementations ----------------------


def _as_tensor(name: str, a) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        return a.detach()
    if isinstance(a, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(a))
    raise TypeError(f"mig: {name} must be a numpy array or torch tensor, got {type(a).__name__}")


def _check_inputs(latents, factors, num_bins) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Validated ``latents`` [N, D] (floating), ``factors`` [N, K] (int64, on
    latents' device) and the number of classes C (every class id is < C)."""
    if isinstance(num_bins, bool) or not isinstance(num_bins, (int, np.integer)) or num_bins < 2:
        raise ValueError(f"mig: num_bins must be an integer >= 2, got {num_bins!r}")
    lat, fac = _as_tensor("latents", latents), _as_tensor("factors", factors)
    if lat.dim() != 2:
        raise ValueError(f"mig: latents must be 2-D [N, D], got shape {tuple(lat.shape)}")
    if fac.dim() != 2:
        raise ValueError(f"mig: factors must be 2-D [N, K], got shape {tuple(fac.shape)}")
    if lat.shape[0] != fac.shape[0]:
        raise ValueError(f"mig: latents and factors must have the same N, got {lat.shape[0]} and {fac.shape[0]}")
    if lat.shape[0] == 0:
        raise ValueError("mig: need at least one sample, got N = 0")
    if lat.shape[1] < 2:
        raise ValueError(f"mig: the gap needs at least 2 latent dimensions, got D = {lat.shape[1]}")
    if fac.shape[1] < 1:
        raise ValueError("mig: need at least one factor, got K = 0")
    if lat.dtype == torch.bool or lat.is_complex():
        raise TypeError(f"mig: latents must be real numbers, got dtype {lat.dtype}")
    if not lat.is_floating_point():
        lat = lat.double()
    # min and max propagate NaN and show inf: a cheap all-finite test; count only on failure
    if not all(torch.isfinite(t).item() for t in torch.aminmax(lat)):
        bad = (~torch.isfinite(lat)).sum().item()
        raise ValueError(f"mig: latents must be finite, found {bad} NaN or inf values")
    fac = fac.to(lat.device)
    if fac.dtype == torch.bool or fac.is_complex():
        raise TypeError(f"mig: factors must hold integer class ids, got dtype {fac.dtype}")
    if fac.is_floating_point():
        frac = (~torch.isfinite(fac) | (fac != fac.round())).nonzero()
        if len(frac):
            n, k = frac[0].tolist()
            raise ValueError(
                f"mig: factors must hold integer class ids, got {fac[n, k].item()} at row {n}, factor {k}"
            )
    fac = fac.long()
    lo, hi = torch.aminmax(fac)
    if lo.item() < 0:
        raise ValueError(f"mig: factor classes must be >= 0, got minimum {lo.item()}")
    num_classes = int(hi.item()) + 1
    if num_classes > _MAX_DENSE_CLASSES:
        fac = torch.stack([torch.unique(col, return_inverse=True)[1] for col in fac.T], dim=1)
        num_classes = int(fac.max().item()) + 1
    return lat, fac, num_classes


def _numpy_edges(lo: torch.Tensor, hi: torch.Tensor, num_bins: int) -> torch.Tensor:
    """``np.histogram(x, num_bins)[1][:-1]`` of every column from its min and max
    ([D] each), [D, num_bins] float64 on CPU; raises where np.histogram would
    (edges not distinct).
    Scalar linspace per column: numpy's vectorised linspace switches every
    column to its denormal branch when one column needs it."""
    rows = []
    for j, (a, b) in enumerate(zip(lo.tolist(), hi.tolist())):
        if a == b:
            a, b = a - 0.5, b + 0.5
        e = np.linspace(a, b, num_bins + 1)
        if np.any(e[:-1] >= e[1:]):
            raise ValueError(
                f"mig: latent dimension {j} spans [{lo[j].item()!r}, {hi[j].item()!r}], too narrow for "
                f"{num_bins} distinct float64 bin edges (np.histogram refuses it too)"
            )
        rows.append(e[:-1])
    return torch.from_numpy(np.stack(rows))


# ---- from joint counts to MIG (float64, scikit-learn's formula) -------------


def _mi_terms(c: np.ndarray, pi: np.ndarray, pj: np.ndarray, n: np.ndarray) -> np.ndarray:
    """scikit-learn's per-cell MI terms, zero where a cell is empty or below eps.
    ``c`` cell counts, ``pi``/``pj`` their row/column totals (int64), ``n`` the total."""
    cf = c.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        c_nm = cf / n
        log_outer = -np.log((pi * pj).astype(np.float64)) + np.log(n) + np.log(n)
        terms = c_nm * (np.log(cf) - np.log(n)) + c_nm * log_outer
    return np.where((c > 0) & (np.abs(terms) >= np.finfo(np.float64).eps), terms, 0.0)


def _mutual_info(counts: np.ndarray) -> np.ndarray:
    """``mutual_info_score`` of every contingency table ``counts[..., rows, cols]``."""
    n = counts.sum(axis=(-2, -1), keepdims=True).astype(np.float64)
    rows, cols = counts.sum(-1), counts.sum(-2)
    mi = np.clip(_mi_terms(counts, rows[..., :, None], cols[..., None, :], n).sum(axis=(-2, -1)), 0.0, None)
    # scikit-learn: a labelling with a single occupied value has MI exactly 0
    single = ((rows > 0).sum(-1) == 1) | ((cols > 0).sum(-1) == 1)
    return np.where(single, 0.0, mi)


def _entropy(class_counts: np.ndarray) -> np.ndarray:
    """H(v) as disentanglement_lib takes it, ``mutual_info_score(v, v)``: the MI of
    the diagonal contingency table of ``class_counts[..., C]``."""
    n = class_counts.sum(-1, keepdims=True).astype(np.float64)
    h = np.clip(_mi_terms(class_counts, class_counts, class_counts, n).sum(-1), 0.0, None)
    return np.where((class_counts > 0).sum(-1) == 1, 0.0, h)


def _result(mutual_info: np.ndarray, entropy: np.ndarray) -> MIGResult:
    flat = np.flatnonzero(entropy <= 0.0)
    if flat.size:
        raise ValueError(
            f"mig: factor(s) {flat.tolist()} take a single value, so their entropy is 0 and the gap "
            "is undefined; drop constant factors (e.g. dSprites' color) before calling mig"
        )
    top = np.sort(mutual_info, axis=0)[::-1]
    gaps = (top[0] - top[1]) / entropy
    return MIGResult(float(gaps.mean()), gaps, mutual_info, entropy)


def _result_from_counts(counts: np.ndarray) -> MIGResult:
    """MIG from the joint counts ``[D, K, bins, C]``."""
    return _result(_mutual_info(counts), _entropy(counts[0].sum(axis=1)))


# ---- the three implementations ----------------------------------------------


def mig(latents, factors, *, num_bins: int = 20) -> MIGResult:
    """MIG of ``latents`` [N, D] (encoder means) against integer ``factors`` [N, K].

    numpy arrays or tensors (CPU or CUDA). The joint histograms come from the
    fused op ``torch.ops.vaebench.mig_histogram`` on the latents' device (CPU
    when this build has no CUDA kernels); the MI from them in float64 on CPU.
    """
    lat, fac, num_classes = _check_inputs(latents, factors, num_bins)
    if lat.is_cuda and not has_cuda_kernels("mig_histogram"):
        log.warning("mig: this vaebench build has no CUDA kernels; counting on the CPU")
        lat, fac = lat.cpu(), fac.cpu()
    counts, lo, hi = torch.ops.vaebench.mig_histogram(lat, fac, int(num_bins), num_classes)
    _numpy_edges(lo.cpu(), hi.cpu(), int(num_bins))  # raises where np.histogram would
    return _result_from_counts(counts.cpu().numpy())


def mig_vectorized(latents, factors, *, num_bins: int = 20) -> MIGResult:
    """The same MIG with plain torch ops (searchsorted + bincount), no custom kernel.
    Runs on the latents' device."""
    lat, fac, num_classes = _check_inputs(latents, factors, num_bins)
    n, d = lat.shape
    k = fac.shape[1]
    lo, hi = torch.aminmax(lat.double(), dim=0)
    edges = _numpy_edges(lo.cpu(), hi.cpu(), int(num_bins)).to(lat.device)
    # searchsorted(right=True) counts the edges <= x: np.digitize's index, 1..num_bins
    bins = torch.searchsorted(edges, lat.double().T.contiguous(), right=True) - 1  # [D, N]
    table = num_bins * num_classes
    cell_base = (torch.arange(d, device=lat.device) * k * table)[:, None, None]  # [D, 1, 1]
    class_off = (torch.arange(k, device=lat.device) * table)[None, None, :] + fac[None]  # [1, N, K]
    counts = torch.zeros(d * k * table, dtype=torch.int64, device=lat.device)
    step = max(1, _VECTORIZED_CHUNK // (d * k))
    for r0 in range(0, n, step):
        r1 = min(n, r0 + step)
        idx = cell_base + bins[:, r0:r1, None] * num_classes + class_off[:, r0:r1]
        counts += torch.bincount(idx.reshape(-1), minlength=counts.numel())
    return _result_from_counts(counts.view(d, k, num_bins, num_classes).cpu().numpy())


def mig_reference(latents, factors, *, num_bins: int = 20) -> MIGResult:
    """disentanglement_lib's computation: numpy histogram binning per dimension
    and one ``sklearn.metrics.mutual_info_score`` call per (latent, factor) pair."""
    from sklearn.metrics import mutual_info_score

    lat, fac, _ = _check_inputs(latents, factors, num_bins)
    _numpy_edges(*torch.aminmax(lat.double().cpu(), dim=0), int(num_bins))  # np.histogram's refusal, our words
    lat = lat.cpu().double().numpy()
    fac = fac.cpu().numpy()
    d, k = lat.shape[1], fac.shape[1]
    binned = np.empty(lat.shape, dtype=np.int64)
    for j in range(d):
        binned[:, j] = np.digitize(lat[:, j], np.histogram(lat[:, j], num_bins)[1][:-1])
    mi = np.array([[mutual_info_score(fac[:, i], binned[:, j]) for i in range(k)] for j in range(d)])
    entropy = np.array([mutual_info_score(fac[:, i], fac[:, i]) for i in range(k)])
    # The gap and its normalisation in disentanglement_lib's own steps, not _result's: a reference
    # that shared them with the implementations it checks could not catch a mistake there.
    constant = [i for i in range(k) if np.unique(fac[:, i]).size == 1]
    if constant:
        raise ValueError(f"mig: factor(s) {constant} take a single value, so their entropy is 0 and the gap is "
                         "undefined; drop constant factors (e.g. dSprites' color) before calling mig")
    sorted_mi = np.sort(mi, axis=0)[::-1]  # per factor, the latents' MI from the largest down
    gaps = np.divide(sorted_mi[0, :] - sorted_mi[1, :], entropy)
    return MIGResult(float(np.mean(gaps)), gaps, mi, entropy)


# ---- torch.library registration: shapes for tracing -------------------------


@torch.library.register_fake("vaebench::mig_histogram")
def _mig_histogram_fake(latents, factors, num_bins, num_classes):
    torch._check(latents.dim() == 2 and factors.dim() == 2, lambda: "mig_histogram: latents and factors must be 2-D")
    d, k = latents.shape[1], factors.shape[1]
    counts = latents.new_empty((d, k, num_bins, num_classes), dtype=torch.int64)
    return counts, latents.new_empty((d,), dtype=torch.float64), latents.new_empty((d,), dtype=torch.float64)

