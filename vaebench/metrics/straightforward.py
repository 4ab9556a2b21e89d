"""The interventional metrics written as their definitions read, one point at a time: per
BetaVAE point two batches of 64 images rendered and encoded in two calls, per FactorVAE vote one
batch, as disentanglement_lib loops. The baseline that ``python -m vaebench bench`` and the
benchmarks time the suite against, and an independent check of ``beta_vae_score`` and
``factor_vae_score`` in the tests (its draws are its own, so the two agree within sampling error)."""
from __future__ import annotations

import warnings

import numpy as np
import torch


def _codes(encode, data, classes: np.ndarray) -> np.ndarray:
    out = encode(data.batch(data.factors_to_index(classes)))
    return (out.detach().cpu().numpy() if isinstance(out, torch.Tensor) else np.asarray(out)).astype(np.float64)


def beta_vae_score(encode, data, *, seed: int = 0, batch_size: int = 64, num_train: int = 10_000,
                   num_eval: int = 5_000) -> tuple[float, float]:
    """(train accuracy, eval accuracy)."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    varying = [k for k, s in enumerate(data.factor_sizes) if s > 1]

    def points(n):
        x, y = [], []
        for _ in range(n):
            k = int(rng.integers(len(varying)))
            f1 = data.sample_factors(batch_size, rng)
            f2 = data.sample_factors(batch_size, rng)
            f2[:, varying[k]] = f1[:, varying[k]]
            x.append(np.mean(np.abs(_codes(encode, data, f1) - _codes(encode, data, f2)), axis=0))
            y.append(k)
        return np.array(x), np.array(y)

    x_train, y_train = points(num_train)
    x_eval, y_eval = points(num_eval)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = LogisticRegression(random_state=seed).fit(x_train, y_train)
    return float(model.score(x_train, y_train)), float(model.score(x_eval, y_eval))


def factor_vae_score(encode, data, *, seed: int = 0, batch_size: int = 64, num_train: int = 10_000,
                     num_eval: int = 5_000, num_variance_estimate: int = 10_000,
                     threshold: float = 0.05) -> tuple[float, float, int]:
    """(train accuracy, eval accuracy, active dimensions)."""
    rng = np.random.default_rng(seed)
    varying = [k for k, s in enumerate(data.factor_sizes) if s > 1]
    reps = np.concatenate([_codes(encode, data, data.sample_factors(min(batch_size, num_variance_estimate - s), rng))
                           for s in range(0, num_variance_estimate, batch_size)])
    global_var = np.var(reps, axis=0, ddof=1)
    active = np.flatnonzero(np.sqrt(global_var) >= threshold)
    if len(active) == 0:
        return 0.0, 0.0, 0

    def vote_table(n):
        votes = np.zeros((len(varying), len(global_var)), dtype=np.int64)
        for _ in range(n):
            k = int(rng.integers(len(varying)))
            f = data.sample_factors(batch_size, rng)
            f[:, varying[k]] = f[0, varying[k]]
            local = np.var(_codes(encode, data, f), axis=0, ddof=1)
            votes[k, active[np.argmin(local[active] / global_var[active])]] += 1
        return votes

    train = vote_table(num_train)
    classifier = np.argmax(train, axis=0)
    cols = np.arange(train.shape[1])
    evaluation = vote_table(num_eval)
    return (float(train[classifier, cols].sum() / train.sum()), float(evaluation[classifier, cols].sum() / evaluation.sum()),
            len(active))
