"""The BetaVAE score (Higgins et al. 2017), as disentanglement_lib computes it
(``evaluation/metrics/beta_vae.py``; study: batches of 64, 10,000 train and 5,000 eval points).

A point: draw a factor k uniformly, two batches of 64 factor draws that share factor k's value
image by image, and take the mean over the batch of |r(x1) - r(x2)| (r: the representation) as
the point's feature and k as its label. A scikit-learn ``LogisticRegression`` (its defaults,
seeded) fits the train points; the score is its accuracy on train and eval points.

Every draw is made first and the distinct images are encoded once (``Representation``), so the
cost is the encoder's on at most the grid, not 2 x 64 encodes per point."""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from vaebench.metrics.representation import Representation
from vaebench.metrics.sampling import sample_with_fixed, varying_factors


@dataclass(frozen=True)
class BetaVAEScoreResult:
    train_accuracy: float
    eval_accuracy: float


def features(rep: Representation, data, n: int, batch_size: int, rng: np.random.Generator):
    """``n`` points: features ``[n, D]`` and labels ``[n]`` (the index of the shared factor)."""
    labels = rng.integers(len(varying_factors(data)), size=n)
    classes1 = data.sample_factors(n * batch_size, rng).reshape(n, batch_size, -1)
    idx1 = data.factors_to_index(classes1.reshape(-1, classes1.shape[-1])).reshape(n, batch_size)
    idx2 = sample_with_fixed(data, labels, n, batch_size, rng, classes1)
    return np.abs(rep.codes(idx1) - rep.codes(idx2)).mean(axis=1, dtype=np.float64), labels


def _check(name: str, value: int, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def beta_vae_score(encode, data, *, seed: int = 0, batch_size: int = 64, num_train: int = 10_000,
                   num_eval: int = 5_000) -> BetaVAEScoreResult:
    """BetaVAE score of ``encode`` (images -> codes, or a ``Representation``) on ``data``."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    batch_size = _check("beta_vae_score: batch_size", batch_size, 1)
    num_train = _check("beta_vae_score: num_train", num_train, 2)
    num_eval = _check("beta_vae_score: num_eval", num_eval, 1)
    rep = Representation.of(encode, data)
    rng = np.random.default_rng(seed)
    x_train, y_train = features(rep, data, num_train, batch_size, rng)
    x_eval, y_eval = features(rep, data, num_eval, batch_size, rng)
    if len(np.unique(y_train)) < 2:
        raise ValueError(f"beta_vae_score: num_train = {num_train} drew a single factor; draw more points")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = LogisticRegression(random_state=seed).fit(x_train, y_train)
    return BetaVAEScoreResult(float(np.mean(model.predict(x_train) == y_train)),
                              float(np.mean(model.predict(x_eval) == y_eval)))
