"""pytest-benchmark: the BetaVAE + FactorVAE scores on the committed conv model (or a conv VAE at
its seeded initialisation), one point at a time as the definitions read
(``vaebench.metrics.straightforward``) against vaebench's (every draw first, each distinct image
encoded once), at the same sizes; and DCI's boosted-tree fits in one process and in two.

Run: ``pytest benchmarks/bench_metrics.py --benchmark-only --benchmark-group-by=group``.
``python -m vaebench bench --set metric_scale=1`` times the same pair and the whole suite at the
study's sizes side by side (bench_metrics.csv). Each round starts from nothing encoded."""
import numpy as np
import pytest

from vaebench.bench.metric_cases import model
from vaebench.data.dsprites import load_dsprites
from vaebench.experiments.scoring import representation
from vaebench.metrics import SuiteSizes, beta_vae_score, dci, factor_vae_score, model_encoder, straightforward

SCALE = 0.02  # of the study's sizes: 200 / 100 points, seconds per round


@pytest.fixture(scope="module")
def setup():
    data = load_dsprites()
    net, _ = model()
    return data, net, SuiteSizes().scaled(SCALE)


def _pair(fns, encode, data, s):
    b, f = fns
    b(encode, data, seed=0, batch_size=s.batch_size, num_train=s.beta_vae_train, num_eval=s.beta_vae_eval)
    f(encode, data, seed=0, batch_size=s.batch_size, num_train=s.factor_vae_train, num_eval=s.factor_vae_eval,
      num_variance_estimate=s.factor_vae_variance)


@pytest.mark.parametrize("impl", ["straightforward", "vaebench"])
def test_beta_vae_and_factor_vae_scores(benchmark, setup, impl):
    data, net, s = setup
    benchmark.group = f"BetaVAE + FactorVAE scores, study sizes x {SCALE}"
    if impl == "straightforward":
        encode = model_encoder(net, channels_last=True)
        benchmark.pedantic(_pair, args=((straightforward.beta_vae_score, straightforward.factor_vae_score), encode,
                                        data, s), rounds=2, iterations=1)
    else:  # a fresh representation per round: nothing cached between rounds
        benchmark.pedantic(lambda: _pair((beta_vae_score, factor_vae_score), representation(net, data), data, s),
                           rounds=2, iterations=1)


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_dci_fits(benchmark, setup, n_jobs):
    data, net, _ = setup
    rng = np.random.default_rng(0)
    classes = data.sample_factors(3000, rng)
    idx = data.factors_to_index(classes)
    codes = representation(net, data).codes(idx).astype(np.float64)
    f = classes[:, 1:]
    benchmark.group = "DCI, 2,000 / 1,000 points, GradientBoostingClassifier per factor"
    benchmark.pedantic(dci, args=(codes[:2000], f[:2000], codes[2000:], f[2000:]), kwargs={"n_jobs": n_jobs},
                       rounds=1, iterations=1)


def main() -> None:
    """``python benchmarks/bench_metrics.py [SCALE] [CSV]``: the bench's metric cases side by side
    at the study's sizes times SCALE (default 1), printed and written to CSV (default
    bench_metrics.csv), without the rest of ``python -m vaebench bench``."""
    import sys

    import pandas as pd

    from vaebench.bench.metric_cases import time_cases

    scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    path = sys.argv[2] if len(sys.argv) > 2 else "bench_metrics.csv"
    rows = pd.DataFrame(time_cases(scale))
    from vaebench.utils import io

    io.write_csv(path, rows)
    print(rows[["case", "impl", "seconds", "images", "speedup_vs_straightforward", "beta_vae", "factor_vae"]]
          .to_string(index=False))


if __name__ == "__main__":
    main()
