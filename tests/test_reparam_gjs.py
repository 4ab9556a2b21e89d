"""The fused reparameterization + skew-geometric Jensen-Shannon op against independent references:
numerical quadrature of the definitions, the KL limits, the symmetries that hold, reparam_kl's z,
gradcheck, opcheck, and the CUDA kernels (on the CPU emulator, and on a GPU where there is one)."""
import math

import numpy as np
import pytest
import torch
from scipy import integrate

import cuda_emulator
from cuda_emulator import Guarded, acc_dtype, reordered_sum_bound, same_bits
from vaebench._extension import has_cuda_kernels
from vaebench.ops import philox_normal, reparam_gjs, reparam_gjs_eager, reparam_kl

HAVE_GPU = torch.cuda.is_available() and has_cuda_kernels("reparam_gjs")
cuda_only = pytest.mark.skipif(not HAVE_GPU, reason="needs a GPU and a CUDA build of vaebench")
DUAL = pytest.mark.parametrize("dual", [False, True], ids=["plain", "dual"])


def gaussians(b, d, dtype=torch.float64, seed=0, spread=1.5):
    g = torch.Generator().manual_seed(seed)
    mu = spread * torch.randn(b, d, generator=g, dtype=torch.float64)
    logvar = (spread * torch.randn(b, d, generator=g, dtype=torch.float64)).clamp(-4, 4)
    return mu.to(dtype), logvar.to(dtype)


def kl_q_p(mu, logvar):
    return 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(-1)


def kl_p_q(mu, logvar):
    w = torch.exp(-logvar)
    return 0.5 * (w - 1 + logvar + mu**2 * w).sum(-1)


def div_of(mu, logvar, alpha, dual, seed=0, offset=0):
    return reparam_gjs(mu, logvar, alpha, dual=dual, seed=seed, offset=offset)[1]


# ---- the definitions, by quadrature ------------------------------------------------------------


def gjs_quadrature(m, logvar, a, dual):
    """(1-a) KL(q||M) + a KL(p||M) (dual: KLs from M) for 1-D q = N(m, exp(logvar)), p = N(0, 1),
    M = q^a p^(1-a) / Z, every integral by adaptive quadrature on log-densities."""
    v = math.exp(logvar)
    logq = lambda x: -0.5 * math.log(2 * math.pi * v) - (x - m) ** 2 / (2 * v)  # noqa: E731
    logp = lambda x: -0.5 * math.log(2 * math.pi) - x * x / 2  # noqa: E731
    scale = max(1.0, math.sqrt(v))
    lo, hi = min(m, 0.0) - 40 * scale, max(m, 0.0) + 40 * scale
    quad = lambda f: integrate.quad(f, lo, hi, points=sorted({0.0, m}), limit=400, epsabs=1e-14, epsrel=1e-13)[0]  # noqa: E731
    log_z = math.log(quad(lambda x: math.exp(a * logq(x) + (1 - a) * logp(x))))
    logm = lambda x: a * logq(x) + (1 - a) * logp(x) - log_z  # noqa: E731
    kl = lambda lf, lg: quad(lambda x: math.exp(lf(x)) * (lf(x) - lg(x)))  # noqa: E731
    if dual:
        return (1 - a) * kl(logm, logq) + a * kl(logm, logp)
    return (1 - a) * kl(logq, logm) + a * kl(logp, logm)


@DUAL
@pytest.mark.parametrize("seed", [0, 1])
def test_closed_form_matches_quadrature_summed_over_dimensions(dual, seed):
    rng = np.random.default_rng(seed)
    b, d = 3, 4
    mu = torch.from_numpy(rng.normal(0, 1.5, (b, d)))
    logvar = torch.from_numpy(rng.uniform(-3, 3, (b, d)))
    for a in rng.uniform(0.02, 0.98, 3):
        div = div_of(mu, logvar, torch.tensor(a, dtype=torch.float64), dual)
        want = [sum(gjs_quadrature(mu[i, j].item(), logvar[i, j].item(), a, dual) for j in range(d)) for i in range(b)]
        np.testing.assert_allclose(div.numpy(), want, rtol=1e-9, atol=1e-11)


@DUAL
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 3e-6)])
def test_forward_matches_float64_eager(dual, dtype, tol):
    mu, logvar = gaussians(64, 10, dtype)
    z, div = reparam_gjs(mu, logvar, 0.3, dual=dual, seed=4, offset=3)
    eps = philox_normal((64, 10), 4, 3).double()
    z_ref, div_ref = reparam_gjs_eager(mu.double(), logvar.double(), 0.3, eps, dual)
    assert z.dtype == dtype and div.dtype == dtype and div.shape == (64,)
    torch.testing.assert_close(z.double(), z_ref, rtol=tol, atol=tol)
    torch.testing.assert_close(div.double(), div_ref, rtol=tol, atol=tol * 10)


# ---- the ends of alpha ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("dual,a", [(False, 0.0), (True, 1.0)], ids=["plain-at-0", "dual-at-1"])
def test_ends_are_reparam_kl_terms_bit_for_bit(dtype, dual, a):
    """Plain GJS at alpha = 0 and the dual at alpha = 1 are KL(q || p): each element's term is
    reparam_kl's, the same bits (one column: the row sum is the term). The CPU ops sum longer rows
    in different orders (reparam_kl: vector lanes; reparam_gjs: column order, as the CUDA kernel)."""
    alpha = torch.tensor(a, dtype=dtype)
    mu, logvar = gaussians(300, 1, dtype)
    z_kl, kl = reparam_kl(mu, logvar, seed=5, offset=7)
    z, div = reparam_gjs(mu, logvar, alpha, dual=dual, seed=5, offset=7)
    assert same_bits(z, z_kl) and same_bits(div, kl)
    mu, logvar = gaussians(300, 37, dtype)
    z_kl, kl = reparam_kl(mu, logvar, seed=5, offset=7)
    z, div = reparam_gjs(mu, logvar, alpha, dual=dual, seed=5, offset=7)
    bound = reordered_sum_bound(term_abs_sum(mu, logvar, a, dual), 37, dtype, dtype)
    assert same_bits(z, z_kl) and ((div.double() - kl.double()).abs() <= bound).all()


@pytest.mark.parametrize("dual,a", [(False, 1.0), (True, 0.0)], ids=["plain-at-1", "dual-at-0"])
def test_other_ends_are_reverse_kl(dual, a):
    mu, logvar = gaussians(50, 9)
    torch.testing.assert_close(div_of(mu, logvar, a, dual), kl_p_q(mu, logvar), rtol=1e-13, atol=1e-13)


@DUAL
def test_limits_are_approached_with_the_ends_one_sided_derivative(dual):
    """div(a) -> div(end) as a -> end, with slope the op's alpha gradient at the end (a one-sided
    second-order difference, error O(h^2))."""
    mu, logvar = gaussians(20, 6, spread=1.0)
    h = 1e-5
    for end, step in ((0.0, 1.0), (1.0, -1.0)):
        at_end = torch.tensor(end, dtype=torch.float64, requires_grad=True)
        f0 = div_of(mu, logvar, at_end, dual).sum()
        (slope,) = torch.autograd.grad(f0, at_end)
        f1, f2 = (div_of(mu, logvar, end + step * k * h, dual).sum() for k in (1, 2))
        fd = step * (-3 * f0.detach() + 4 * f1 - f2) / (2 * h)
        torch.testing.assert_close(fd, slope, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(div_of(mu, logvar, 1e-9, False), kl_q_p(mu, logvar), rtol=1e-7, atol=1e-7)
    torch.testing.assert_close(div_of(mu, logvar, 1e-9, True), kl_p_q(mu, logvar), rtol=1e-7, atol=1e-7)


# ---- symmetries ------------------------------------------------------------------------------


@DUAL
def test_zero_exactly_when_q_is_the_prior(dual):
    zeros = torch.zeros(4, 5, dtype=torch.float64)
    for a in (0.0, 0.2, 0.5, 0.9, 1.0):
        mu, logvar = zeros.clone().requires_grad_(), zeros.clone().requires_grad_()
        alpha = torch.tensor(a, dtype=torch.float64, requires_grad=True)
        div = div_of(mu, logvar, alpha, dual)
        assert div.abs().max() < 1e-15
        div.sum().backward()  # a minimum in mu and logvar, and zero for every alpha
        for g in (mu.grad, logvar.grad, alpha.grad):
            assert g.abs().max() < 1e-14
    mu, logvar = gaussians(30, 4)
    assert (div_of(mu, logvar, 0.4, dual) > 0).all()


@DUAL
def test_skew_swaps_with_the_arguments(dual):
    """GJS_a(q || p) = GJS_(1-a)(p || q), for the plain and the dual alike (M_a is the same
    geometric mean), and both are invariant under x -> (x - mu) / sigma, which maps q to p and p
    to N(-mu / sigma, 1 / v): so div(mu, logvar, a) = div(-mu exp(-logvar / 2), -logvar, 1 - a)."""
    mu, logvar = gaussians(40, 7)
    for a in (0.1, 0.35, 0.5, 0.8):
        swapped = div_of(-mu * torch.exp(-0.5 * logvar), -logvar, 1 - a, dual)
        torch.testing.assert_close(div_of(mu, logvar, a, dual), swapped, rtol=1e-12, atol=1e-12)


@DUAL
def test_even_in_mu(dual):
    mu, logvar = gaussians(16, 8, torch.float32)
    assert same_bits(div_of(mu, logvar, 0.3, dual), div_of(-mu, logvar, 0.3, dual))


def test_plain_and_dual_differ():
    """No identity ties the plain divergence to its dual (except at q = p); GJS_a is symmetric in
    its arguments only at a = 1/2 (the swap above)."""
    mu, logvar = gaussians(16, 8)
    assert (div_of(mu, logvar, 0.3, False) - div_of(mu, logvar, 0.3, True)).abs().min() > 1e-3


# ---- the sample -------------------------------------------------------------------------------


@DUAL
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=str)
@pytest.mark.parametrize("offset", [0, 3, 2**33 + 1])
def test_z_is_reparam_kl_z_bit_for_bit(dual, dtype, offset):
    mu, logvar = gaussians(33, 13, dtype)
    z_kl, _ = reparam_kl(mu, logvar, seed=123, offset=offset)
    z, _ = reparam_gjs(mu, logvar, 0.7, dual=dual, seed=123, offset=offset)
    assert same_bits(z, z_kl)


def test_manual_seed_makes_default_seed_repeatable():
    mu, logvar = gaussians(4, 3, torch.float32)
    torch.manual_seed(5)
    z1, _ = reparam_gjs(mu, logvar, 0.5)
    torch.manual_seed(5)
    z2, _ = reparam_gjs(mu, logvar, 0.5)
    assert torch.equal(z1, z2)


# ---- gradients --------------------------------------------------------------------------------


@DUAL
@pytest.mark.parametrize("a", [0.03, 0.5, 0.97])
def test_gradcheck_mu_logvar_alpha(dual, a):
    mu, logvar = gaussians(4, 5)
    mu.requires_grad_()
    logvar.requires_grad_()
    alpha = torch.tensor(a, dtype=torch.float64, requires_grad=True)
    fn = lambda m, lv, al: reparam_gjs(m, lv, al, dual=dual, seed=21, offset=2)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (mu, logvar, alpha))


@DUAL
@pytest.mark.parametrize("use", ["both", "z", "div"])
def test_gradients_equal_autograd_of_eager(dual, use):
    mu, logvar = gaussians(40, 13)
    g = torch.Generator().manual_seed(1)
    wz, wd = torch.randn(40, 13, generator=g, dtype=torch.float64), torch.randn(40, generator=g, dtype=torch.float64)
    grads = []
    for fused in (True, False):
        m, lv = mu.clone().requires_grad_(), logvar.clone().requires_grad_()
        alpha = torch.tensor(0.4, dtype=torch.float64, requires_grad=True)
        if fused:
            z, div = reparam_gjs(m, lv, alpha, dual=dual, seed=8, offset=100)
        else:
            z, div = reparam_gjs_eager(m, lv, alpha, philox_normal((40, 13), 8, 100).double(), dual)
        loss = {"both": (z * wz).sum() + (div * wd).sum(), "z": (z * wz).sum(), "div": (div * wd).sum()}[use]
        grads.append(torch.autograd.grad(loss, (m, lv, alpha), allow_unused=True))
    for got, want in zip(*grads):
        if want is None:  # only z used: no path from alpha in the eager graph
            assert got.abs().max() == 0
        else:
            torch.testing.assert_close(got, want, rtol=1e-11, atol=1e-11)


@DUAL
def test_float32_gradients_close_to_float64(dual):
    mu, logvar = gaussians(256, 10, torch.float32)
    out = []
    for dtype in (torch.float32, torch.float64):
        m, lv = mu.to(dtype, copy=True).requires_grad_(), logvar.to(dtype, copy=True).requires_grad_()
        alpha = torch.tensor(0.25, dtype=dtype, requires_grad=True)
        z, div = reparam_gjs(m, lv, alpha, dual=dual, seed=3)
        (z.sum() + div.sum()).backward()
        out.append([t.grad.double() for t in (m, lv, alpha)])
    for g32, g64 in zip(*out):
        torch.testing.assert_close(g32, g64, rtol=2e-5, atol=2e-5 * g64.abs().max().item())


# ---- dtypes, shapes, torch.library ----------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_low_precision_inputs_accumulate_in_float32(dtype):
    mu, logvar = gaussians(16, 8, dtype)
    alpha = torch.tensor(0.6, requires_grad=True)
    m = mu.clone().requires_grad_()
    z, div = reparam_gjs(m, logvar, alpha, seed=3)
    eps = philox_normal((16, 8), 3).double()
    z_ref, div_ref = reparam_gjs_eager(mu.double(), logvar.double(), 0.6, eps)
    assert z.dtype == dtype and div.dtype == dtype
    rel = 1e-2 if dtype == torch.bfloat16 else 2e-3  # one rounding of the output
    torch.testing.assert_close(z.double(), z_ref, rtol=rel, atol=rel)
    torch.testing.assert_close(div.double(), div_ref, rtol=rel, atol=rel)
    div.sum().backward()
    assert m.grad.dtype == dtype and alpha.grad.dtype == torch.float32 and alpha.grad.isfinite()


@DUAL
def test_opcheck(dual):
    mu, logvar = gaussians(6, 4)
    alpha = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    args = (mu.requires_grad_(), logvar.requires_grad_(), alpha, dual, 3, 1)
    torch.library.opcheck(torch.ops.vaebench.reparam_gjs.default, args)
    gz, gd = torch.randn(6, 4, dtype=torch.float64), torch.randn(6, dtype=torch.float64)
    torch.library.opcheck(torch.ops.vaebench.reparam_gjs_backward.default,
                          (gz, gd, mu.detach(), logvar.detach(), alpha.detach(), dual, 3, 1))


def test_torch_compile_fullgraph():
    def loss_terms(mu, logvar, alpha, seed, offset):
        z, div = reparam_gjs(mu, logvar, alpha, dual=True, seed=seed, offset=offset)
        return (z**2).sum(-1) + 2.0 * div

    mu, logvar = gaussians(8, 5, torch.float32)
    mu.requires_grad_()
    alpha = torch.tensor(0.3, requires_grad=True)
    compiled = torch.compile(loss_terms, fullgraph=True, backend="aot_eager")
    out = compiled(mu, logvar, alpha, 4, 16)
    want = loss_terms(mu, logvar, alpha, 4, 16)
    torch.testing.assert_close(out, want)
    for a, b in zip(torch.autograd.grad(out.sum(), (mu, alpha)), torch.autograd.grad(want.sum(), (mu, alpha))):
        torch.testing.assert_close(a, b)


@DUAL
def test_empty_batch_and_no_columns(dual):
    mu = torch.zeros(0, 10, requires_grad=True)
    alpha = torch.tensor(0.5, requires_grad=True)
    z, div = reparam_gjs(mu, torch.zeros(0, 10), alpha, dual=dual, seed=1)
    assert z.shape == (0, 10) and div.shape == (0,)
    (z.sum() + div.sum()).backward()
    assert mu.grad.shape == (0, 10) and alpha.grad == 0
    z, div = reparam_gjs(torch.zeros(3, 0), torch.zeros(3, 0), 0.5, dual=dual, seed=1)
    assert z.shape == (3, 0) and torch.equal(div, torch.zeros(3))


# ---- bad input --------------------------------------------------------------------------------

BAD_INPUTS = [
    (torch.zeros(3, 4), torch.zeros(3, 5), 0.5, ValueError, r"reparam_gjs: mu and logvar must have the same shape.*\(3, 4\).*\(3, 5\)"),
    (torch.zeros(3, 4, dtype=torch.int64), torch.zeros(3, 4), 0.5, TypeError, r"mu must be a floating.*int64"),
    (torch.zeros(3, 4), torch.zeros(3, 4, dtype=torch.float64), 0.5, TypeError, r"same dtype.*float32.*float64"),
    (torch.zeros(3, 4), torch.zeros(3, 4, device="meta"), 0.5, ValueError, r"same device.*cpu.*meta"),
    (torch.zeros(12), torch.zeros(12), 0.5, ValueError, r"mu must be 2-D \[B, D\], got shape \(12,\)"),
    (torch.zeros(3, 4), torch.zeros(3, 4), torch.tensor([0.5]), ValueError, r"alpha must be a 0-dim \(scalar\) tensor, got shape \(1,\)"),
    (torch.zeros(3, 4), torch.zeros(3, 4), torch.tensor(1), TypeError, r"alpha must be a floating-point tensor, got dtype torch.int64"),
    (torch.zeros(3, 4), torch.zeros(3, 4), torch.tensor(0.5, device="meta"), ValueError, r"alpha must be on mu's device cpu, got meta"),
    (torch.zeros(3, 4), torch.zeros(3, 4), "0.5", TypeError, r"alpha must be a 0-dim tensor or a float, got str"),
    (torch.zeros(3, 4), torch.zeros(3, 4), -0.1, ValueError, r"alpha must be in \[0, 1\], got -0.1"),
    (torch.zeros(3, 4), torch.zeros(3, 4), torch.tensor(1.5), ValueError, r"reparam_gjs: alpha must be in \[0, 1\], got 1.5"),
    (torch.zeros(3, 4), torch.zeros(3, 4), torch.tensor(float("nan")), ValueError, r"alpha must be in \[0, 1\], got nan"),
]


@pytest.mark.parametrize("mu,logvar,alpha,exc,match", BAD_INPUTS)
def test_bad_input_errors(mu, logvar, alpha, exc, match):
    with pytest.raises(exc, match=match):
        reparam_gjs(mu, logvar, alpha, seed=0)


def test_bad_stream_arguments():
    with pytest.raises(ValueError, match="offset must be >= 0, got -1"):
        reparam_gjs(torch.zeros(2, 2), torch.zeros(2, 2), 0.5, seed=0, offset=-1)


def test_direct_op_calls_check_in_cpp():
    ops = torch.ops.vaebench
    with pytest.raises(RuntimeError, match="reparam_gjs: logvar must have mu's shape"):
        ops.reparam_gjs(torch.zeros(2, 3), torch.zeros(3, 2), torch.tensor(0.5), False, 0, 0)
    with pytest.raises(RuntimeError, match="reparam_gjs: alpha must be a 0-dim"):
        ops.reparam_gjs(torch.zeros(2, 3), torch.zeros(2, 3), torch.tensor([0.5]), False, 0, 0)
    with pytest.raises(RuntimeError, match="reparam_gjs_backward: grad_div must be \\[B\\] = \\[2\\]"):
        ops.reparam_gjs_backward(torch.zeros(2, 3), torch.zeros(3), torch.zeros(2, 3), torch.zeros(2, 3),
                                 torch.tensor(0.5), False, 0, 0)
    with pytest.raises(ValueError, match="reparam_gjs_backward: alpha must be in \\[0, 1\\], got 2"):
        ops.reparam_gjs_backward(torch.zeros(2, 3), torch.zeros(2), torch.zeros(2, 3), torch.zeros(2, 3),
                                 torch.tensor(2.0), True, 0, 0)


# ---- the CUDA kernels: emulated, and on a GPU -----------------------------------------------------


class Emulated:
    """csrc/cuda/reparam_gjs.cu run by the CPU emulator, outputs in guarded buffers."""

    name = "emulated"

    def __init__(self):
        self.m = cuda_emulator.build()

    def forward(self, mu, logvar, alpha, dual, seed, offset, shift=0):
        b, d = mu.shape
        ins = [Guarded((b, d), mu.dtype, t, shift) for t in (mu, logvar)]
        z, div = Guarded((b, d), mu.dtype, float("nan"), shift), Guarded((b,), mu.dtype, float("nan"), shift)
        self.m.reparam_gjs_forward(ins[0].t, ins[1].t, alpha, dual, z.t, div.t, seed, offset)
        assert all(g.pads_intact() for g in ins + [z, div]), "a write outside the outputs"
        return z.t, div.t

    def backward(self, gz, gd, mu, logvar, alpha, dual, seed, offset, shift=0):
        b, d = mu.shape
        ins = [Guarded(t.shape, t.dtype, t, shift) for t in (gz, gd, mu, logvar)]
        outs = [Guarded((b, d), mu.dtype, float("nan"), shift) for _ in range(2)]
        rows = Guarded((b,), acc_dtype(mu.dtype), float("nan"), shift)
        self.m.reparam_gjs_backward(*(g.t for g in ins), alpha, dual, outs[0].t, outs[1].t, rows.t, seed, offset)
        assert all(g.pads_intact() for g in ins + outs + [rows]), "a write outside the outputs"
        return outs[0].t, outs[1].t, rows.t.sum(dtype=torch.float64).to(alpha.dtype)

    def kl_forward(self, mu, logvar, seed, offset):
        z, kl = torch.empty_like(mu), mu.new_empty(mu.shape[:1])
        self.m.reparam_kl_forward(mu, logvar, z, kl, seed, offset)
        return z, kl

    def grid_cap(self, x, seed):
        self.m.set_options(max_grid_x=x, order_seed=seed)


class Device:
    name = "cuda"

    def forward(self, mu, logvar, alpha, dual, seed, offset, shift=0):
        z, div = torch.ops.vaebench.reparam_gjs(mu.cuda(), logvar.cuda(), alpha.cuda(), dual, seed, offset)
        return z.cpu(), div.cpu()

    def backward(self, gz, gd, mu, logvar, alpha, dual, seed, offset, shift=0):
        d = [t.cuda() for t in (gz, gd, mu, logvar, alpha)]
        return [t.cpu() for t in torch.ops.vaebench.reparam_gjs_backward(*d[:4], d[4], dual, seed, offset)]

    def kl_forward(self, mu, logvar, seed, offset):
        return [t.cpu() for t in torch.ops.vaebench.reparam_kl(mu.cuda(), logvar.cuda(), seed, offset)]


@pytest.fixture(scope="module", params=[
    pytest.param("emulated", marks=pytest.mark.cuda_emulated),
    pytest.param("cuda", marks=cuda_only),
])
def backend(request):
    return Emulated() if request.param == "emulated" else Device()


def term_abs_sum(mu, logvar, alpha, dual):
    """Per row, the sum of |element terms| in float64 (the eager divergence's terms)."""
    m, lv = mu.double(), logvar.double()
    total = torch.zeros(m.shape[0], dtype=torch.float64)
    for j in range(m.shape[1]):
        total += reparam_gjs_eager(m[:, j:j + 1], lv[:, j:j + 1], alpha, 0.0, dual)[1].abs()
    return total


# (B, D, offset): rows summed per thread (D <= 32) and per warp, a row over several chunks
# (D > 2048), partial Philox groups at the ends, a counter past 32 bits.
KERNEL_SHAPES = [(1, 1, 3), (7, 13, 5), (300, 37, 9), (70, 33, 4), (1, 2100, 2), (129, 10, 2**34 + 6), (3, 0, 1)]


def check_kernel(backend, b, d, offset, dtype, dual, shift=0, alpha=0.35):
    mu, logvar = gaussians(b, d, dtype, seed=b + d)
    a = torch.tensor(alpha, dtype=torch.float64 if dtype == torch.float64 else torch.float32)
    z, div = backend.forward(mu, logvar, a, dual, 11, offset, shift)
    z_cpu, div_cpu = torch.ops.vaebench.reparam_gjs(mu, logvar, a, dual, 11, offset)
    exact = not (backend.name == "cuda" and dtype == torch.float64)  # float64 exp: the platform's
    if exact:
        assert same_bits(z, z_cpu)
    else:
        torch.testing.assert_close(z, z_cpu, rtol=1e-14, atol=1e-14)
    if exact and d <= 32:  # both sum a row's terms in column order
        assert same_bits(div, div_cpu)
    else:
        bound = reordered_sum_bound(term_abs_sum(mu, logvar, alpha, dual), d, acc_dtype(dtype), dtype)
        assert ((div.double() - div_cpu.double()).abs() <= bound + (0 if exact else 1e-13)).all()

    g = torch.Generator().manual_seed(2)
    gz, gd = torch.randn(b, d, generator=g).to(dtype), torch.randn(b, generator=g).to(dtype)
    dmu, dlv, da = backend.backward(gz, gd, mu, logvar, a, dual, 11, offset, shift)
    dmu_cpu, dlv_cpu, da_cpu = torch.ops.vaebench.reparam_gjs_backward(gz, gd, mu, logvar, a, dual, 11, offset)
    if exact:  # the same per-element code and rounding
        assert same_bits(dmu, dmu_cpu) and same_bits(dlv, dlv_cpu)
    else:
        torch.testing.assert_close(dmu, dmu_cpu, rtol=1e-13, atol=1e-13)
        torch.testing.assert_close(dlv, dlv_cpu, rtol=1e-13, atol=1e-13)
    # alpha's gradient sums the same terms in another order (rows, then the rows' sums).
    tol = 64 * b * d * torch.finfo(acc_dtype(dtype)).eps
    torch.testing.assert_close(da.double(), da_cpu.double(), rtol=tol, atol=tol)
    return z, div, dmu, dlv, da


@DUAL
@pytest.mark.parametrize("b,d,offset", KERNEL_SHAPES)
def test_kernel_float32(backend, b, d, offset, dual):
    check_kernel(backend, b, d, offset, torch.float32, dual)


@DUAL
@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16], ids=str)
def test_kernel_other_dtypes(backend, dtype, dual):
    check_kernel(backend, 70, 33, 4, dtype, dual)


@pytest.mark.parametrize("alpha,dual", [(0.0, False), (1.0, True), (1.0, False), (0.0, True)])
def test_kernel_at_the_ends(backend, alpha, dual):
    z, div, *_ = check_kernel(backend, 70, 33, 5, torch.float32, dual, alpha=alpha)
    if alpha == float(dual):  # KL(q || p): reparam_kl's kernel gives the same bits (one row kernel)
        mu, logvar = gaussians(70, 33, torch.float32, seed=70 + 33)
        z_kl, kl = backend.kl_forward(mu, logvar, 11, 5)
        assert same_bits(z, z_kl) and same_bits(div, kl)


def test_kernel_misaligned_buffers(backend):
    check_kernel(backend, 70, 33, 0, torch.float32, False, shift=1)
    check_kernel(backend, 7, 13, 4, torch.float16, True, shift=1)


@pytest.mark.cuda_emulated
def test_emulated_capped_grids_give_the_same_bits():
    emulated = Emulated()
    first = check_kernel(emulated, 5000, 3, 1, torch.float32, True)
    try:
        for cap, seed in ((1, 3), (2, 5)):
            emulated.grid_cap(cap, seed)
            again = check_kernel(emulated, 5000, 3, 1, torch.float32, True)
            assert all(same_bits(x, y) for x, y in zip(first, again)), "results depend on the grid or block order"
    finally:
        emulated.m.set_options()


@cuda_only
@DUAL
def test_cuda_op_end_to_end(dual):
    mu, logvar = gaussians(300, 37, torch.float32)
    alpha = torch.tensor(0.3, requires_grad=True)
    alpha_c = alpha.detach().cuda().requires_grad_()
    mu_c, lv_c = mu.cuda().requires_grad_(), logvar.cuda().requires_grad_()
    mu.requires_grad_()
    logvar.requires_grad_()
    z, div = reparam_gjs(mu, logvar, alpha, dual=dual, seed=5, offset=9)
    zc, divc = reparam_gjs(mu_c, lv_c, alpha_c, dual=dual, seed=5, offset=9)
    assert same_bits(zc.cpu(), z)
    torch.testing.assert_close(divc.cpu(), div, rtol=1e-5, atol=1e-5)
    (z.sum() + div.sum()).backward()
    (zc.sum() + divc.sum()).backward()
    for a, b in ((mu_c, mu), (lv_c, logvar), (alpha_c, alpha)):
        torch.testing.assert_close(a.grad.cpu(), b.grad, rtol=1e-5, atol=1e-4)
    torch.library.opcheck(torch.ops.vaebench.reparam_gjs.default, (mu_c, lv_c, alpha_c, dual, 3, 1))
