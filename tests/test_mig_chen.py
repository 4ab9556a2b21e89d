"""Chen et al.'s MIG estimator against a brute force and a grid with a known answer."""
import itertools
import math

import numpy as np
import pytest
import torch

from vaebench.metrics.mig_chen import draw_codes, mig_chen


def grid(*sizes):
    return np.array(list(itertools.product(*[range(s) for s in sizes])), dtype=np.int64)


def _lse(a, axis):
    m = a.max(axis=axis, keepdims=True)
    return (m + np.log(np.exp(a - m).sum(axis=axis, keepdims=True))).squeeze(axis)


def brute_entropy(z, mu, lv):
    """-mean_n log (1/N sum_m N(z_nj; mu_mj, exp(lv_mj))) over all N codes, from [N, N, D] terms."""
    logp = -0.5 * (np.log(2 * np.pi) + lv[None] + (z[:, None, :] - mu[None]) ** 2 / np.exp(lv)[None])
    return -(_lse(logp, 1) - np.log(len(mu))).mean(0)


def brute_mig(z, mu, lv, factors, used):
    h = brute_entropy(z, mu, lv)
    gaps, cond = [], []
    for k in used:
        values = np.unique(factors[:, k])
        c = sum((factors[:, k] == v).mean() * brute_entropy(*(a[factors[:, k] == v] for a in (z, mu, lv)))
                for v in values)
        cond.append(c)
        mi = np.sort(np.clip(h - c, 0, None))[::-1] / np.log(len(values))
        gaps.append(mi[0] - mi[1])
    return float(np.mean(gaps)), h, np.array(cond)


def overlapping_posteriors(factors, d, seed=0):
    rng = np.random.default_rng(seed)
    n, k = factors.shape
    mu = rng.normal(size=(n, d)) * 0.7 + factors[:, np.arange(d) % k] * 0.8
    lv = rng.uniform(-1.5, 0.5, size=(n, d))
    return mu, lv


def test_matches_brute_force_when_every_code_is_used():
    f = grid(3, 4, 2)
    mu, lv = overlapping_posteriors(f, 4)
    res = mig_chen(mu, lv, f, samples=10_000, seed=5)
    z = draw_codes(torch.from_numpy(mu), torch.from_numpy(lv), torch.Generator().manual_seed(5)).numpy()
    score, h, cond = brute_mig(z, mu, lv, f, used=(0, 1, 2))
    np.testing.assert_allclose(res.marginal_entropies, h, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(res.conditional_entropies, cond, rtol=1e-12, atol=1e-12)
    assert res.score == pytest.approx(score, abs=1e-12)
    assert 0 < res.score < 1


def test_codes_that_copy_the_factors_score_one():
    # Narrow posteriors at 10 x the factor's class, well apart: I(z_j; v_k) = log |V_k| for the
    # copying dimension and 0 for every other (a third dimension is pure noise).
    f = grid(4, 3)
    mu = np.stack([10.0 * f[:, 0], 10.0 * f[:, 1], np.zeros(len(f))], axis=1)
    lv = np.stack([np.full(len(f), -8.0), np.full(len(f), -8.0), np.zeros(len(f))], axis=1)
    res = mig_chen(mu, lv, f, samples=10_000)
    np.testing.assert_allclose(res.normalized_mi, [[1, 0, 0], [0, 1, 0]], atol=1e-9)
    assert res.score == pytest.approx(1.0, abs=1e-9)
    np.testing.assert_allclose(res.marginal_entropies[:2] - res.conditional_entropies.diagonal(),
                               [math.log(4), math.log(3)], atol=1e-9)


def test_left_out_factor_and_subsampled_codes():
    f = grid(3, 8, 6)
    mu = np.stack([10.0 * f[:, 1], 10.0 * f[:, 2]], axis=1) + 0.01 * f[:, :1]
    lv = np.full(mu.shape, -8.0)
    res = mig_chen(mu, lv, f, samples=40, leave_out=(0,))  # 40 of 144 codes, 40 of each subset's 24
    assert res.factors == (1, 2)
    assert res.score == pytest.approx(1.0, abs=0.05)  # Monte Carlo error of the subsample only


def test_invariant_to_permuting_code_dimensions():
    f = grid(3, 4, 5)
    mu, lv = overlapping_posteriors(f, 5, seed=1)
    perm = [3, 0, 4, 1, 2]
    mu_t, lv_t = torch.from_numpy(mu), torch.from_numpy(lv)
    a = mig_chen(mu, lv, f, samples=25, seed=2)
    b = mig_chen(mu[:, perm], lv[:, perm], f, samples=25, seed=2, codes=draw_codes(
        mu_t, lv_t, torch.Generator().manual_seed(2))[:, perm])
    assert a.score == pytest.approx(b.score, abs=1e-12)
    np.testing.assert_allclose(b.normalized_mi, a.normalized_mi[:, perm], atol=1e-12)
    # Without the codes given, the permuted dimensions draw other noise: equal within Monte Carlo error.
    c = mig_chen(mu[:, perm], lv[:, perm], f, samples=25, seed=2)
    assert c.score == pytest.approx(a.score, abs=0.1)


def test_float32_inputs_close_to_float64():
    f = grid(3, 4, 2)
    mu, lv = overlapping_posteriors(f, 3)
    a = mig_chen(mu, lv, f)
    b = mig_chen(mu.astype(np.float32), lv.astype(np.float32), f)
    assert b.score == pytest.approx(a.score, abs=1e-4)


@pytest.mark.parametrize("kwargs,match", [
    (dict(samples=0), "samples must be >= 1"),
    (dict(leave_out=(0, 1)), "no factor left"),
])
def test_bad_arguments(kwargs, match):
    f = grid(2, 2)
    with pytest.raises(ValueError, match=match):
        mig_chen(np.zeros((4, 2)), np.zeros((4, 2)), f, **kwargs)
    with pytest.raises(ValueError, match="must share N"):
        mig_chen(np.zeros((3, 2)), np.zeros((3, 2)), f)
