"""pytest-benchmark: MIG by per-pair scikit-learn (disentanglement_lib's way), by
vectorised torch (searchsorted + bincount), and by the fused joint-histogram op.

Inputs are dSprites-shaped: the full factor grid 3 x 6 x 40 x 32 x 32 (N = 737,280,
K = 5) or a random n of its rows, and D = 10 float32 latents (noisy copies of the
factors, then pure noise); smaller n are random subsets of the grid.

Run: ``pytest benchmarks/bench_mig.py --benchmark-only --benchmark-group-by=param:n``
(the reference runs once per size: it takes seconds). ``python benchmarks/bench_mig.py``
times the three side by side at full size and prints the speed-ups.
"""
import time

import numpy as np
import pytest
import sklearn.metrics  # noqa: F401  (imported here so no timing includes the import)
import torch

from vaebench.metrics import mig, mig_reference, mig_vectorized

SIZES = (3, 6, 40, 32, 32)
IMPLS = {"reference": mig_reference, "vectorized": mig_vectorized, "fused": mig}


def dsprites_like(n: int | None = None, dim: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    grids = np.meshgrid(*[np.arange(s) for s in SIZES], indexing="ij")
    factors = np.stack(grids, axis=-1).reshape(-1, len(SIZES))
    rng = np.random.default_rng(seed)
    if n is not None and n < len(factors):  # a random subset, as people subsample
        factors = factors[np.sort(rng.choice(len(factors), n, replace=False))]
    latents = rng.normal(size=(len(factors), dim)).astype(np.float32)
    latents[:, : len(SIZES)] += factors / np.array(SIZES, dtype=np.float32)
    return latents, factors


@pytest.fixture(scope="module", params=[10_000, 737_280], ids=lambda n: f"n={n}")
def inputs(request):
    return request.param, dsprites_like(request.param)


@pytest.mark.parametrize("impl", list(IMPLS))
def test_mig(benchmark, impl, inputs):
    n, (latents, factors) = inputs
    benchmark.group = f"MIG n={n}, D=10, K=5, {torch.get_num_threads()} threads"
    fn = IMPLS[impl]
    if impl == "reference":
        benchmark.pedantic(fn, args=(latents, factors), rounds=1, iterations=1)
    else:
        benchmark(fn, latents, factors)


def main() -> None:
    latents, factors = dsprites_like()
    print(f"N={len(latents):,} D={latents.shape[1]} K={factors.shape[1]}, torch threads={torch.get_num_threads()}")
    times = {name: [] for name in IMPLS}
    scores = {}
    # interleaved so that the machine's load hits all three alike; the reference once per round
    for _ in range(3):
        for name, fn in IMPLS.items():
            t = time.perf_counter()
            scores[name] = fn(latents, factors).score
            times[name].append(time.perf_counter() - t)
    best = {name: min(ts) for name, ts in times.items()}
    for name in IMPLS:
        print(f"{name:>10}: best {best[name] * 1e3:9.1f} ms  (runs {', '.join(f'{t * 1e3:.0f}' for t in times[name])})"
              f"  score {scores[name]:.12f}  speed-up vs reference {best['reference'] / best[name]:6.1f}x")


if __name__ == "__main__":
    main()
