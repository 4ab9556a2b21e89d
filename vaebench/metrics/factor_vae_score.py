"""The FactorVAE score (Kim & Mnih 2018), as disentanglement_lib computes it
(``evaluation/metrics/factor_vae.py``; study: global variances from 10,000 images, batches of 64,
10,000 train and 5,000 eval votes, dimensions with std >= 0.05 active).

Global variances (ddof 1) of the codes of i.i.d. images; the active dimensions are those whose
standard deviation is at least ``threshold``. A vote: draw a factor k, a batch of 64 factor draws
all sharing the first draw's value of k, and vote (k, j) for the active dimension j with the
smallest variance over the batch (ddof 1) relative to its global variance. The classifier gives
each dimension the factor with most train votes; the score is the share of votes it gets right,
on train and eval votes. No active dimension: both accuracies 0.

Every draw is made first and the distinct images are encoded once (``Representation``)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vaebench.metrics.beta_vae_score import _check
from vaebench.metrics.representation import Representation
from vaebench.metrics.sampling import sample_indices, sample_with_fixed, varying_factors


@dataclass(frozen=True)
class FactorVAEScoreResult:
    train_accuracy: float
    eval_accuracy: float
    num_active_dims: int  # the reference records the code size here, a slip not copied


def votes(rep: Representation, data, n: int, batch_size: int, rng: np.random.Generator,
          global_var: np.ndarray, active: np.ndarray) -> np.ndarray:
    """``[K, D]`` vote counts of ``n`` batches."""
    k = len(varying_factors(data))
    labels = rng.integers(k, size=n)
    first = data.sample_factors(n, rng)  # the fixed value comes from each batch's first draw
    idx = sample_with_fixed(data, labels, n, batch_size, rng, first)
    idx[:, 0] = data.factors_to_index(first)
    local = rep.codes(idx).astype(np.float64).var(axis=1, ddof=1)  # [n, D]
    ratio = local[:, active] / global_var[active]
    chosen = np.flatnonzero(active)[ratio.argmin(axis=1)]
    out = np.zeros((k, len(global_var)), dtype=np.int64)
    np.add.at(out, (labels, chosen), 1)
    return out


def factor_vae_score(encode, data, *, seed: int = 0, batch_size: int = 64, num_train: int = 10_000,
                     num_eval: int = 5_000, num_variance_estimate: int = 10_000,
                     threshold: float = 0.05) -> FactorVAEScoreResult:
    """FactorVAE score of ``encode`` (images -> codes, or a ``Representation``) on ``data``."""
    batch_size = _check("factor_vae_score: batch_size", batch_size, 2)
    num_train = _check("factor_vae_score: num_train", num_train, 1)
    num_eval = _check("factor_vae_score: num_eval", num_eval, 1)
    num_variance_estimate = _check("factor_vae_score: num_variance_estimate", num_variance_estimate, 2)
    rep = Representation.of(encode, data)
    rng = np.random.default_rng(seed)
    idx, _ = sample_indices(data, num_variance_estimate, rng)
    global_var = rep.codes(idx).astype(np.float64).var(axis=0, ddof=1)
    active = np.sqrt(global_var) >= threshold
    if not active.any():
        return FactorVAEScoreResult(0.0, 0.0, 0)
    train = votes(rep, data, num_train, batch_size, rng, global_var, active)
    classifier = train.argmax(axis=0)
    cols = np.arange(train.shape[1])
    evaluation = votes(rep, data, num_eval, batch_size, rng, global_var, active)
    return FactorVAEScoreResult(float(train[classifier, cols].sum() / train.sum()),
                                float(evaluation[classifier, cols].sum() / evaluation.sum()), int(active.sum()))
