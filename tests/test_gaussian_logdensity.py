"""The fused pairwise Gaussian log-density + log-sum-exp op against a float64 brute force."""
import math

import numpy as np
import pytest
import torch
from torch.distributions import Normal

from vaebench.ops import gaussian_logdensity_lse, gaussian_logdensity_lse_eager

OP = torch.ops.vaebench.gaussian_logdensity_lse


# ---- an independent float64 brute force (numpy, [B, M, D] terms) ----------------


def _lse(a, axis):
    m = a.max(axis=axis, keepdims=True)
    return (m + np.log(np.exp(a - m).sum(axis=axis, keepdims=True))).squeeze(axis)


def brute_force(z, mu, logvar, gj, gm):
    """Values and the three gradients of sum(gj * joint) + sum(gm * marginal), from the formulas."""
    z, mu, lv, gj, gm = (np.asarray(t.detach().double().numpy()) for t in (z, mu, logvar, gj, gm))
    diff = z[:, None, :] - mu[None]  # [B, M, D]
    var = np.exp(lv)[None]
    logp = -0.5 * (np.log(2 * np.pi) + lv[None] + diff**2 / var)
    s = logp.sum(-1)
    joint, marg = _lse(s, 1), _lse(logp, 1)
    w = np.exp(s - joint[:, None])  # softmax over components of the joint
    v = np.exp(logp - marg[:, None, :])  # ... and of each dimension's marginal
    c = gj[:, None, None] * w[:, :, None] + gm[:, None, :] * v
    gz = (c * (-diff / var)).sum(1)
    gmu = (c * (diff / var)).sum(0)
    glv = (c * (-0.5 + 0.5 * diff**2 / var)).sum(0)
    return [torch.from_numpy(a) for a in (joint, marg, gz, gmu, glv)]


def inputs(b, m, d, dtype=torch.float64, seed=0, spread=1.0, lv_range=(-3, 3)):
    g = torch.Generator().manual_seed(seed)
    z = spread * torch.randn(b, d, generator=g, dtype=torch.float64)
    mu = torch.randn(m, d, generator=g, dtype=torch.float64)
    lo, hi = lv_range
    logvar = lo + (hi - lo) * torch.rand(m, d, generator=g, dtype=torch.float64)
    gj = torch.randn(b, generator=g, dtype=torch.float64)
    gm = torch.randn(b, d, generator=g, dtype=torch.float64)
    return [t.to(dtype) for t in (z, mu, logvar)] + [gj.to(dtype), gm.to(dtype)]


def fused(z, mu, logvar, gj, gm):
    z, mu, logvar = (t.detach().clone().requires_grad_() for t in (z, mu, logvar))
    joint, marg = gaussian_logdensity_lse(z, mu, logvar)
    grads = torch.autograd.grad((joint * gj).sum() + (marg * gm).sum(), (z, mu, logvar))
    return [joint.detach(), marg.detach(), *grads]


NAMES = ["joint", "marginal", "grad_z", "grad_mu", "grad_logvar"]


def assert_all_close(got, want, rtol, atol):
    for name, g, w in zip(NAMES, got, want):
        torch.testing.assert_close(g.double(), w, rtol=rtol, atol=atol, msg=lambda m, n=name: f"{n}: {m}")


# (B, M, D): single rows and components, one dimension, and sizes off the kernels' 256-tile.
SHAPES = [(1, 1, 1), (1, 7, 3), (9, 1, 4), (5, 6, 1), (257, 300, 10), (3, 513, 2), (600, 2, 3)]


@pytest.mark.parametrize("b,m,d", SHAPES)
def test_values_and_gradients_match_float64_brute_force(b, m, d):
    args = inputs(b, m, d)
    assert_all_close(fused(*args), brute_force(*args), rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("b,m,d", [(1, 1, 1), (257, 300, 10), (3, 513, 2)])
def test_float32_matches_float64_brute_force(b, m, d):
    args = inputs(b, m, d, dtype=torch.float32)
    got = fused(*args)
    assert all(t.dtype == torch.float32 for t in got)
    assert_all_close(got, brute_force(*args), rtol=2e-5, atol=2e-5)


def test_gaussian_constant_is_included_mixture_constant_is_not():
    z, mu, logvar, _, _ = inputs(6, 1, 4)
    joint, marg = gaussian_logdensity_lse(z, mu, logvar)
    logp = Normal(mu, torch.exp(0.5 * logvar)).log_prob(z)  # one component: a true log-density
    torch.testing.assert_close(marg, logp, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(joint, logp.sum(-1), rtol=1e-13, atol=1e-13)
    # M identical components: log M more than one of them (no 1/M).
    j3, m3 = gaussian_logdensity_lse(z, mu.expand(3, 4), logvar.expand(3, 4))
    torch.testing.assert_close(j3, joint + math.log(3), rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(m3, marg + math.log(3), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("dtype,rtol", [(torch.float64, 1e-11), (torch.float32, 2e-5)])
@pytest.mark.parametrize("case", ["far", "logvar+20", "logvar-20", "mixed"])
def test_extremes(case, dtype, rtol):
    spread, lv_range = {"far": (300.0, (-1, 1)), "logvar+20": (1.0, (19.5, 20)), "logvar-20": (1.0, (-20, -19.5)),
                        "mixed": (30.0, (-20, 20))}[case]
    args = inputs(40, 290, 5, dtype=dtype, seed=3, spread=spread, lv_range=lv_range)
    got, want = fused(*args), brute_force(*args)
    assert all(torch.isfinite(t).all() for t in got)
    # Far codes: the softmax weights exp(term - joint) inherit the terms' absolute rounding error,
    # eps * |term| with terms near -1e4, so float32 gradients lose about 3 more digits.
    scale = 2e-4 if case == "far" and dtype == torch.float32 else rtol
    for name, g, w in zip(NAMES, got, want):
        # Terms reach 1e10 and beyond here: the tolerance is relative to each output's scale.
        torch.testing.assert_close(g.double(), w, rtol=rtol, atol=scale * float(w.abs().max()),
                                   msg=lambda m, n=name: f"{n}: {m}")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_inputs(dtype):
    args = inputs(33, 270, 6, dtype=dtype)
    got = fused(*args)
    assert all(t.dtype == dtype for t in got)
    # float32 accumulation of the rounded inputs, then one rounding of each output.
    want = brute_force(*args)
    rel = 2 * torch.finfo(dtype).eps
    for name, g, w in zip(NAMES, got, want):
        torch.testing.assert_close(g.double(), w, rtol=rel, atol=rel * float(w.abs().max()),
                                   msg=lambda m, n=name: f"{n}: {m}")


def test_gradcheck_float64():
    z, mu, logvar, _, _ = inputs(4, 5, 3)
    z, mu, logvar = (t.requires_grad_() for t in (z, mu, logvar))
    assert torch.autograd.gradcheck(gaussian_logdensity_lse, (z, mu, logvar))


@pytest.mark.parametrize("use", ["joint", "marginal"])
def test_one_output_used(use):
    z, mu, logvar, _, _ = inputs(7, 300, 4)
    z1, mu1, lv1 = (t.clone().requires_grad_() for t in (z, mu, logvar))
    z2, mu2, lv2 = (t.clone().requires_grad_() for t in (z, mu, logvar))
    k = 0 if use == "joint" else 1
    gaussian_logdensity_lse(z1, mu1, lv1)[k].sum().backward()
    gaussian_logdensity_lse_eager(z2, mu2, lv2)[k].sum().backward()
    for a, b in ((z1, z2), (mu1, mu2), (lv1, lv2)):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-11, atol=1e-12)


def test_eager_reference_matches_brute_force():
    args = inputs(5, 8, 3)
    z, mu, logvar = (t.clone().requires_grad_() for t in args[:3])
    joint, marg = gaussian_logdensity_lse_eager(z, mu, logvar)
    grads = torch.autograd.grad((joint * args[3]).sum() + (marg * args[4]).sum(), (z, mu, logvar))
    assert_all_close([joint, marg, *grads], brute_force(*args), rtol=1e-12, atol=1e-12)


# ---- torch.library integration ---------------------------------------------------


def test_opcheck():
    z, mu, logvar, gj, gm = inputs(5, 7, 3)
    torch.library.opcheck(OP.default, (z.requires_grad_(), mu.requires_grad_(), logvar.requires_grad_()))
    joint, marg = OP(z.detach(), mu.detach(), logvar.detach())
    torch.library.opcheck(torch.ops.vaebench.gaussian_logdensity_lse_backward.default,
                          (gj, gm, z.detach(), mu.detach(), logvar.detach(), joint, marg))


def test_torch_compile_fullgraph():
    def tc_terms(z, mu, logvar):
        joint, marg = gaussian_logdensity_lse(z, mu, logvar)
        return joint - marg.sum(-1)

    z, mu, logvar, _, _ = inputs(6, 9, 3, dtype=torch.float32)
    z.requires_grad_()
    out = torch.compile(tc_terms, fullgraph=True, backend="aot_eager")(z, mu, logvar)
    torch.testing.assert_close(out, tc_terms(z, mu, logvar))
    (g_c,) = torch.autograd.grad(out.sum(), z)
    (g_e,) = torch.autograd.grad(tc_terms(z, mu, logvar).sum(), z)
    torch.testing.assert_close(g_c, g_e)


def test_empty_rows_and_no_components():
    z = torch.zeros(0, 3, requires_grad=True)
    joint, marg = gaussian_logdensity_lse(z, torch.zeros(4, 3), torch.zeros(4, 3))
    assert joint.shape == (0,) and marg.shape == (0, 3)
    (joint.sum() + marg.sum()).backward()
    assert z.grad.shape == (0, 3)
    joint, marg = gaussian_logdensity_lse(torch.zeros(2, 3), torch.zeros(0, 3), torch.zeros(0, 3))
    assert (joint == -math.inf).all() and (marg == -math.inf).all()  # the empty mixture


# ---- bad input -------------------------------------------------------------------

Z, P = torch.zeros(3, 4), torch.zeros(5, 4)


@pytest.mark.parametrize(
    "z,mu,logvar,exc,match",
    [
        (torch.zeros(12), P, P, ValueError, r"z must be 2-D \[B, D\], got shape \(12,\)"),
        (Z, torch.zeros(5, 4, 1), P, ValueError, r"mu must be 2-D \[M, D\], got shape \(5, 4, 1\)"),
        (Z, P, torch.zeros(5, 3), ValueError, r"logvar must have mu's shape \(5, 4\), got \(5, 3\)"),
        (Z, torch.zeros(5, 3), torch.zeros(5, 3), ValueError, r"mu must have z's D = 4 columns, got shape \(5, 3\)"),
        (Z.long(), P, P, TypeError, r"z must be a floating-point tensor, got dtype torch.int64"),
        (Z, P.double(), P, TypeError, r"mu must have z's dtype torch.float32, got torch.float64"),
        (Z, P, P.half(), TypeError, r"logvar must have z's dtype torch.float32, got torch.float16"),
        (Z, P.to("meta"), P, ValueError, r"mu must be on z's device cpu, got meta"),
        (Z, P, [[0.0]], TypeError, r"logvar must be a torch.Tensor, got list"),
    ],
)
def test_bad_input_errors(z, mu, logvar, exc, match):
    with pytest.raises(exc, match=match):
        gaussian_logdensity_lse(z, mu, logvar)


def test_direct_op_call_checks_in_cpp():
    with pytest.raises(RuntimeError, match="mu must have z's D = 4 columns, got 3"):
        OP(Z, torch.zeros(5, 3), torch.zeros(5, 3))
    with pytest.raises(RuntimeError, match=r"grad_marginal must be \[3, 4\] of z's dtype"):
        torch.ops.vaebench.gaussian_logdensity_lse_backward(torch.zeros(3), torch.zeros(3, 5), Z, P, P,
                                                            torch.zeros(3), torch.zeros(3, 4))
