"""The reparam+KL and reparam+GJS workloads timed by ``benchmarks/`` and ``python -m vaebench bench``.

Each case is a zero-argument callable doing one forward (or forward+backward)
pass of one implementation on fixed inputs, so both harnesses time exactly the
same work:

- ``eager``: plain PyTorch, ``torch.randn_like`` noise then the formulas;
- ``compile``: ``torch.compile`` of that same function (inductor);
- ``fused``: ``vaebench.ops.reparam_kl`` (noise made in-kernel, recomputed in backward);
- ``fused_uncached``: the same with the CPU output cache off, so every output
  lands on fresh pages that the OS zero-fills on first touch (CPU only; the
  gap to ``fused`` is what the cache saves).

``op`` picks the divergence: ``reparam_kl`` (the default), or ``reparam_gjs`` /
``reparam_gjs_dual`` (``vaebench.ops.reparam_gjs`` against ``reparam_gjs_eager``,
at a trainable skew alpha = 0.3 whose gradient the backward also computes).
"""
from __future__ import annotations

from typing import Callable

import torch

from vaebench.ops import cpu_output_cache_limit, reparam_gjs, reparam_gjs_eager, reparam_kl, reparam_kl_eager

IMPLS = ("eager", "compile", "fused", "fused_uncached")
MODES = ("forward", "forward_backward")
OPS = ("reparam_kl", "reparam_gjs", "reparam_gjs_dual")
GJS_ALPHA = 0.3


def eager_sample_kl(mu: torch.Tensor, logvar: torch.Tensor):
    return reparam_kl_eager(mu, logvar, torch.randn_like(mu))


def eager_sample_gjs(mu: torch.Tensor, logvar: torch.Tensor, alpha: torch.Tensor):
    return reparam_gjs_eager(mu, logvar, alpha, torch.randn_like(mu))


def eager_sample_gjs_dual(mu: torch.Tensor, logvar: torch.Tensor, alpha: torch.Tensor):
    return reparam_gjs_eager(mu, logvar, alpha, torch.randn_like(mu), dual=True)


_EAGER = {"reparam_kl": eager_sample_kl, "reparam_gjs": eager_sample_gjs, "reparam_gjs_dual": eager_sample_gjs_dual}
_compiled: dict[tuple[str, str], Callable] = {}


def _compiled_eager(device: str, op: str = "reparam_kl") -> Callable:
    # One compiled function per (device, op); shapes specialise inside torch.compile's cache.
    if (device, op) not in _compiled:
        _compiled[device, op] = torch.compile(_EAGER[op], fullgraph=True)
    return _compiled[device, op]


def make_case(impl: str, mode: str, batch: int, dim: int, device: str = "cpu", dtype=torch.float32, seed: int = 0,
              op: str = "reparam_kl") -> Callable[[], object]:
    """A callable running ``impl`` of ``op`` in ``mode`` on fresh [batch, dim] inputs."""
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if op not in OPS:
        raise ValueError(f"op must be one of {OPS}, got {op!r}")
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(batch, dim, generator=g, dtype=dtype).to(device)
    logvar = (0.5 * torch.randn(batch, dim, generator=g, dtype=dtype)).to(device)
    grad_z = torch.randn(batch, dim, generator=g, dtype=dtype).to(device)
    grad_kl = torch.randn(batch, generator=g, dtype=dtype).to(device)
    backward = mode == "forward_backward"
    mu.requires_grad_(backward)
    logvar.requires_grad_(backward)
    # The GJS ops' skew: a trainable scalar in the accumulation dtype.
    alpha = torch.tensor(GJS_ALPHA, dtype=torch.float64 if dtype == torch.float64 else torch.float32,
                         device=device, requires_grad=backward)
    inputs = (mu, logvar) if op == "reparam_kl" else (mu, logvar, alpha)

    if impl == "fused_uncached" and device != "cpu":
        raise ValueError("fused_uncached is a CPU case (the output cache is the CPU op's)")
    if impl in ("fused", "fused_uncached") and op == "reparam_kl":
        fn = lambda: reparam_kl(mu, logvar, seed=1234, offset=0)  # noqa: E731
    elif impl in ("fused", "fused_uncached"):
        fn = lambda: reparam_gjs(mu, logvar, alpha, dual=op == "reparam_gjs_dual", seed=1234, offset=0)  # noqa: E731
    elif impl == "eager":
        fn = lambda: _EAGER[op](*inputs)  # noqa: E731
    else:
        compiled = _compiled_eager(device, op)
        fn = lambda: compiled(*inputs)  # noqa: E731

    if not backward:
        def run():
            with torch.no_grad():
                return fn()
    else:
        def run():
            z, kl = fn()
            torch.autograd.backward((z, kl), (grad_z, grad_kl))
            mu.grad = logvar.grad = alpha.grad = None

    if impl != "fused_uncached":
        return run

    def run_uncached():
        with cpu_output_cache_limit(0):  # also frees what an earlier call left held
            return run()
    return run_uncached


def bytes_moved(mode: str, batch: int, dim: int, itemsize: int = 4) -> int:
    """Minimal DRAM traffic of the fused op: forward reads mu, logvar and writes z
    (+ kl); backward reads grad_z, mu, logvar (+ grad_kl) and writes dmu, dlogvar.

    It is also what the kernels move, on both devices: (3 n + B) elements forward and
    (5 n + B) backward, n = B * D. The CUDA forward is one pass over mu and logvar (z and the
    per-row KL sums together; it read them twice before, 5 n + B), with 16-byte accesses where
    aligned, so its ``fraction_of_floor`` compares like for like with the CPU rows."""
    n, rows = batch * dim, batch
    fwd = (3 * n + rows) * itemsize
    bwd = (5 * n + rows) * itemsize
    return fwd + (bwd if mode == "forward_backward" else 0)
