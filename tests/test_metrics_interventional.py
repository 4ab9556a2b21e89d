"""The BetaVAE and FactorVAE scores and the suite: on a small ground-truth grid whose "images" are
their own grid indices (so a test encoder can read the factors back exactly), against the
one-point-at-a-time implementation of ``vaebench.metrics.straightforward`` (its own draws: the two
agree within the sampling error of their sizes), and on a trained model over the dSprites renderer."""
import math

import numpy as np
import pytest
import torch

from vaebench.metrics import Representation, SuiteSizes, beta_vae_score, factor_vae_score, parse_metrics, score_suite
from vaebench.metrics import straightforward


class Grid:
    """The dSprites grid's interface over small factor sizes; ``batch`` returns the indices."""

    factor_names = ("color", "shape", "scale", "orientation", "posX", "posY")

    def __init__(self, sizes=(1, 3, 4, 6, 5, 5)):
        self.factor_sizes = sizes
        self._bases = np.array([math.prod(sizes[k + 1:]) for k in range(len(sizes))])

    def __len__(self):
        return math.prod(self.factor_sizes)

    def sample_factors(self, n, rng):
        rng = np.random.default_rng(rng)
        return np.stack([rng.integers(0, s, size=int(n)) for s in self.factor_sizes], axis=1).astype(np.int64)

    def factors_to_index(self, classes):
        return np.asarray(classes, dtype=np.int64) @ self._bases

    def index_to_factors(self, idx):
        return (np.asarray(idx)[:, None] // self._bases[None, :]) % np.asarray(self.factor_sizes)[None, :]

    def batch(self, idx):
        return torch.as_tensor(np.asarray(idx), dtype=torch.float64)[:, None]


GRID = Grid()


def factor_codes(mixing=None, noise=0.0, seed=0):
    """An encoder from indices: the varying factors' classes (times ``mixing``) plus fixed noise."""
    rng = np.random.default_rng(seed)
    table = GRID.index_to_factors(np.arange(len(GRID)))[:, 1:].astype(np.float64)
    if mixing is not None:
        table = table @ mixing
    table = table + noise * rng.normal(size=table.shape)
    return lambda x: table[x[:, 0].numpy().astype(np.int64)]


def within(a, b, n, sd=4.0):
    """|a - b| within sd standard errors of a difference of two accuracies on n points each."""
    p = min(max((a + b) / 2, 0.02), 0.98)
    return abs(a - b) <= sd * math.sqrt(2 * p * (1 - p) / n)


def test_perfect_codes_score_one():
    enc = factor_codes()
    r = beta_vae_score(enc, GRID, seed=0, num_train=500, num_eval=300)
    assert r.train_accuracy == 1.0 and r.eval_accuracy == 1.0
    r = factor_vae_score(enc, GRID, seed=0, num_train=300, num_eval=200, num_variance_estimate=1000)
    assert r.train_accuracy == 1.0 and r.eval_accuracy == 1.0 and r.num_active_dims == 5


def test_random_codes_score_at_chance():
    rng = np.random.default_rng(5)
    table = rng.normal(size=(len(GRID), 6))
    enc = lambda x: table[x[:, 0].numpy().astype(np.int64)]  # noqa: E731
    r = beta_vae_score(enc, GRID, seed=1, num_train=1000, num_eval=1000)
    assert abs(r.eval_accuracy - 0.2) < 4 * math.sqrt(0.2 * 0.8 / 1000)  # 5 factors
    f = factor_vae_score(enc, GRID, seed=1, num_train=1000, num_eval=1000, num_variance_estimate=1000)
    # majority vote over 6 codes and 5 factors fits noise: eval near chance, at most a little above
    assert f.eval_accuracy < 0.2 + 4 * math.sqrt(0.2 * 0.8 / 1000) + 0.05


def test_collapsed_codes_have_no_active_dimension():
    enc = lambda x: np.full((len(x), 4), 0.3) + 1e-5 * x.numpy()  # noqa: E731 - std 0.005, below 0.05
    r = factor_vae_score(enc, GRID, seed=0, num_train=50, num_eval=50, num_variance_estimate=500)
    assert (r.train_accuracy, r.eval_accuracy, r.num_active_dims) == (0.0, 0.0, 0)


def test_agree_with_the_one_point_at_a_time_implementation():
    mixing = np.random.default_rng(3).normal(size=(5, 6)) * 0.4 + np.eye(5, 6)
    enc = factor_codes(mixing, noise=0.8)
    n_train, n_eval = 2000, 2000
    fast = beta_vae_score(enc, GRID, seed=0, num_train=n_train, num_eval=n_eval)
    slow = straightforward.beta_vae_score(enc, GRID, seed=7, num_train=n_train, num_eval=n_eval)
    assert 0.3 < fast.eval_accuracy < 0.99  # neither trivial nor perfect: the comparison means something
    assert within(fast.eval_accuracy, slow[1], n_eval)
    fast = factor_vae_score(enc, GRID, seed=0, num_train=n_train, num_eval=n_eval, num_variance_estimate=2000)
    slow = straightforward.factor_vae_score(enc, GRID, seed=7, num_train=n_train, num_eval=n_eval,
                                            num_variance_estimate=2000)
    assert 0.3 < fast.eval_accuracy < 0.99 and fast.num_active_dims == slow[2]
    assert within(fast.eval_accuracy, slow[1], n_eval)


def test_same_seed_same_scores_and_each_image_encoded_once():
    calls = []
    table_enc = factor_codes(noise=0.5)

    def enc(x):
        calls.append(len(x))
        return table_enc(x)

    rep = Representation(enc, GRID, batch_size=64)
    a = beta_vae_score(rep, GRID, seed=2, num_train=300, num_eval=100)
    b = factor_vae_score(rep, GRID, seed=2, num_train=300, num_eval=100, num_variance_estimate=500)
    assert sum(calls) == rep.encoded <= len(GRID) and max(calls) <= 64
    assert a == beta_vae_score(factor_codes(noise=0.5), GRID, seed=2, num_train=300, num_eval=100)
    assert b == factor_vae_score(factor_codes(noise=0.5), GRID, seed=2, num_train=300, num_eval=100,
                                 num_variance_estimate=500)


def test_encoder_output_is_checked():
    with pytest.raises(ValueError, match="encode must return codes"):
        beta_vae_score(lambda x: np.zeros((len(x) + 1, 3)), GRID, num_train=10, num_eval=10)
    with pytest.raises(ValueError, match="NaN or inf"):
        beta_vae_score(lambda x: np.full((len(x), 3), np.nan), GRID, num_train=10, num_eval=10)
    with pytest.raises(ValueError, match="num_train must be an integer >= 2"):
        beta_vae_score(factor_codes(), GRID, num_train=1)


def test_suite_row_has_every_metric_and_is_deterministic():
    sizes = SuiteSizes().scaled(0.03)
    enc = factor_codes(np.eye(5, 6) + 0.1, noise=0.3)
    row = score_suite(enc, GRID, seed=0, sizes=sizes, n_jobs=1)
    for col in ("mig", "gap_shape", "beta_vae_eval_accuracy", "factor_vae_eval_accuracy", "dci_disentanglement",
                "dci_completeness", "dci_informativeness_test", "dci_accuracy_orientation", "sap", "modularity",
                "explicitness_test", "gaussian_total_correlation", "gaussian_wasserstein_correlation_norm",
                "mutual_info_score", "irs", "mig_sup", "dcimig", "jemmig"):
        assert np.isfinite(row[col]), col
    again = score_suite(enc, GRID, seed=0, sizes=sizes, n_jobs=1)
    assert {k: v for k, v in row.items() if not k.startswith("seconds")} == \
        {k: v for k, v in again.items() if not k.startswith("seconds")}
    assert set(score_suite(enc, GRID, seed=0, sizes=sizes, metrics="mig,sap")) >= {"mig", "sap"}
    assert "dci_disentanglement" not in score_suite(enc, GRID, seed=0, sizes=sizes, metrics="mig")


def test_suite_in_worker_processes_gives_the_same_row_in_the_same_order():
    # n_jobs > 1 fits DCI in the background while the interventional metrics encode
    sizes = SuiteSizes().scaled(0.03)
    enc = factor_codes(np.eye(5, 6) + 0.1, noise=0.3)
    one = score_suite(enc, GRID, seed=4, sizes=sizes, n_jobs=1)
    two = score_suite(enc, GRID, seed=4, sizes=sizes, n_jobs=2)
    drop = lambda r: {k: v for k, v in r.items() if not k.startswith("seconds")}  # noqa: E731
    assert list(drop(one)) == list(drop(two)) and drop(one) == drop(two)


def test_parse_metrics_names_what_is_unknown():
    assert parse_metrics("all") == parse_metrics(list(parse_metrics("all")))
    assert parse_metrics("sap,mig") == ("mig", "sap")
    with pytest.raises(ValueError, match="unknown: mgi"):
        parse_metrics("mig,mgi")


def test_suite_on_a_model_over_the_renderer():
    """The encoder path a user takes: a VAE, the dSprites renderer, small sizes."""
    from vaebench.data.dsprites import load_dsprites
    from vaebench.metrics import model_encoder
    from vaebench.models import VAE

    torch.manual_seed(0)
    data = load_dsprites()
    model = VAE(arch="mlp", latent_dim=4, mlp_hidden=32)
    row = score_suite(model_encoder(model), data, seed=0, sizes=SuiteSizes().scaled(0.01),
                      metrics="beta_vae,factor_vae,sap,mig", n_jobs=1)
    assert 0.0 <= row["beta_vae_eval_accuracy"] <= 1.0 and 0.0 <= row["mig"] <= 1.0
    assert row["images_encoded"] <= len(data)


def test_the_cli_lists_the_suites_metrics():
    from vaebench.cli import METRIC_NAMES
    from vaebench.metrics import METRICS
    from vaebench.metrics.suite import OPTIONAL

    assert METRIC_NAMES == METRICS + OPTIONAL
    assert "mig_chen" not in parse_metrics("all") and parse_metrics("mig_chen,mig") == ("mig", "mig_chen")
