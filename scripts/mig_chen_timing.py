"""Times Chen et al.'s MIG (vaebench.metrics.mig_chen) on one committed model, and extrapolates.

    python scripts/mig_chen_timing.py results/cpu/models/beta4_seed0.pt --samples 500 1000

Encodes the whole dSprites grid once (means and log-variances, cached in --cache), then runs
mig_chen at each sample count. The work is samples x N x D log-density terms per entropy (every
subset of the grid holds more images than the counts timed here and Chen's 10,000), so the time
is linear in the samples: the script prints the per-sample slope and the time it implies at 10,000.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from vaebench.data.dsprites import DSprites
from vaebench.metrics.mig_chen import mig_chen
from vaebench.models import load_vae


def encode_grid(model_path: str, cache: Path, batch: int = 2048):
    if cache.exists():
        f = np.load(cache)
        return f["mu"], f["logvar"], f["factors"], 0.0
    data = DSprites()
    model = load_vae(model_path)
    model.eval()
    n = len(data)
    mus, lvs = [], []
    t0 = time.perf_counter()
    with torch.inference_mode():
        for s in range(0, n, batch):
            mu, lv = model.encode(data.batch(np.arange(s, min(n, s + batch))))
            mus.append(mu.float().numpy())
            lvs.append(lv.float().numpy())
    seconds = time.perf_counter() - t0
    mu, lv = np.concatenate(mus), np.concatenate(lvs)
    factors = data.index_to_factors(np.arange(n))
    np.savez(cache, mu=mu, logvar=lv, factors=factors)
    return mu, lv, factors, seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("--samples", type=int, nargs="+", default=[500, 1000])
    p.add_argument("--cache", type=Path, default=Path("/tmp/mig_chen_grid.npz"))
    args = p.parse_args()
    mu, lv, factors, enc_s = encode_grid(args.model, args.cache)
    print(f"grid {mu.shape}, encoded in {enc_s:.1f} s (0: from the cache), torch threads {torch.get_num_threads()}")
    times = []
    for s in args.samples:
        t0 = time.perf_counter()
        res = mig_chen(mu, lv, factors, samples=s, leave_out=(0, 1))  # color (constant) and shape, as Chen et al.
        times.append(time.perf_counter() - t0)
        print(f"samples {s}: {times[-1]:.1f} s, MIG {res.score:.4f}, gaps {np.round(res.gaps, 4)}")
    if len(times) >= 2:
        slope = (times[-1] - times[0]) / (args.samples[-1] - args.samples[0])
        base = times[0] - slope * args.samples[0]
        print(f"linear fit: {base:.1f} s + {1e3 * slope:.2f} ms per sample -> {base + slope * 10_000:.0f} s at 10,000")
    else:
        print(f"proportional: {times[0] * 10_000 / args.samples[0]:.0f} s at 10,000")


if __name__ == "__main__":
    main()
