"""The fused reparameterization + KL op against independent references."""
import math

import numpy as np
import pytest
import torch
from torch.distributions import Normal, kl_divergence

from vaebench._extension import has_cuda_kernels
from vaebench.ops import philox_normal, reparam_kl, reparam_kl_eager

cuda_only = pytest.mark.skipif(
    not (torch.cuda.is_available() and has_cuda_kernels()), reason="needs a GPU and a CUDA build of vaebench"
)


# ---- an independent Philox4x32-10 and Box-Muller in numpy -------------------

M0, M1, W0, W1 = 0xD2511F53, 0xCD9E8D57, 0x9E3779B9, 0xBB67AE85
MASK = 0xFFFFFFFF


def philox_ref(counter, key):
    """Philox4x32-10 on uint64 arrays holding 32-bit words (vectorised over blocks)."""
    c = [np.asarray(w, dtype=np.uint64) for w in counter]
    k0, k1 = np.uint64(key[0]), np.uint64(key[1])
    for _ in range(10):
        p0 = np.uint64(M0) * c[0]
        p1 = np.uint64(M1) * c[2]
        hi0, lo0 = p0 >> np.uint64(32), p0 & np.uint64(MASK)
        hi1, lo1 = p1 >> np.uint64(32), p1 & np.uint64(MASK)
        c = [hi1 ^ c[1] ^ k0, lo1, hi0 ^ c[3] ^ k1, lo0]
        k0 = (k0 + np.uint64(W0)) & np.uint64(MASK)
        k1 = (k1 + np.uint64(W1)) & np.uint64(MASK)
    return c


# Known-answer vectors of the Random123 distribution (kat_vectors, philox4x32_10).
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((MASK,) * 4, (MASK, MASK), (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
]


@pytest.mark.parametrize("counter,key,expected", KAT)
def test_reference_philox_matches_random123_vectors(counter, key, expected):
    out = philox_ref([[w] for w in counter], key)
    assert tuple(int(w[0]) for w in out) == expected


def normals_ref(n, seed, offset):
    """float64 Box-Muller of the reference Philox words at positions [offset, offset+n)."""
    first, last = offset // 4, (offset + n + 3) // 4
    blocks = np.arange(first, last, dtype=np.uint64)
    w = philox_ref([blocks & np.uint64(MASK), blocks >> np.uint64(32), 0 * blocks, 0 * blocks],
                   (seed & MASK, (seed >> 32) & MASK))
    u = lambda x: ((x >> np.uint64(8)).astype(np.float64) + 0.5) * 2.0**-24  # noqa: E731
    t = lambda x: x.astype(np.float64) * 2.0**-32  # noqa: E731
    r01, r23 = np.sqrt(-2 * np.log(u(w[0]))), np.sqrt(-2 * np.log(u(w[2])))
    quad = np.stack([r01 * np.cos(2 * np.pi * t(w[1])), r01 * np.sin(2 * np.pi * t(w[1])),
                     r23 * np.cos(2 * np.pi * t(w[3])), r23 * np.sin(2 * np.pi * t(w[3]))], axis=1).reshape(-1)
    return quad[offset - 4 * first: offset - 4 * first + n]


@pytest.mark.parametrize("seed,offset,n", [(0, 0, 1000), (123456789012345, 3, 777), (2**63 - 1, 2**40 + 1, 64)])
def test_philox_normal_matches_float64_reference(seed, offset, n):
    got = philox_normal(n, seed, offset).double().numpy()
    want = normals_ref(n, seed, offset)
    # The kernel's float32 polynomials are accurate to a few ulp of |n| <= 5.9.
    np.testing.assert_allclose(got, want, rtol=0, atol=5e-6)


# ---- statistics of the stream -------------------------------------------------

N_STAT = 1 << 20


def test_normal_moments_and_ks():
    x = philox_normal(N_STAT, seed=2024).double()
    se = 1 / math.sqrt(N_STAT)
    # 6 standard errors: exact to rerun (fixed seed) and far from flaky for any seed.
    assert abs(x.mean().item()) < 6 * se
    assert abs(x.var().item() - 1) < 6 * math.sqrt(2) * se
    assert abs((x**3).mean().item()) < 6 * math.sqrt(15) * se
    assert abs((x**4).mean().item() - 3) < 6 * math.sqrt(96) * se
    # Kolmogorov-Smirnov distance to Phi; the alpha=1e-6 critical value is sqrt(ln(2/alpha) / 2n).
    xs, _ = torch.sort(x)
    cdf = 0.5 * torch.erfc(-xs / math.sqrt(2))
    i = torch.arange(1, N_STAT + 1, dtype=torch.float64)
    d = torch.maximum(i / N_STAT - cdf, cdf - (i - 1) / N_STAT).max().item()
    assert d < math.sqrt(math.log(2 / 1e-6) / (2 * N_STAT))


def test_streams_are_uncorrelated():
    n = 1 << 18
    bound = 6 / math.sqrt(n)
    a = philox_normal(n, seed=1)
    for other in (philox_normal(n, seed=2), philox_normal(n, seed=1, offset=n), philox_normal(n, seed=1 << 32)):
        assert abs(torch.corrcoef(torch.stack([a, other]))[0, 1].item()) < bound
    # Lag-1 autocorrelation within a stream (Box-Muller pairs share a radius).
    assert abs(torch.corrcoef(torch.stack([a[:-1], a[1:]]))[0, 1].item()) < bound


def test_same_seed_same_numbers_and_offsets_index_one_stream():
    full = philox_normal(1000, seed=77)
    assert torch.equal(full, philox_normal(1000, seed=77))
    for k in range(9):  # every alignment inside a Philox block
        assert torch.equal(philox_normal(1000 - k, seed=77, offset=k), full[k:])


def test_reparam_uses_stream_positions_row_major():
    mu, logvar = torch.zeros(7, 5), torch.zeros(7, 5)
    z, _ = reparam_kl(mu, logvar, seed=9, offset=6)
    assert torch.equal(z, philox_normal((7, 5), 9, 6))  # exp(0) = 1 exactly, so z == eps
    assert torch.equal(z.flatten(), philox_normal(41, 9, 0)[6:])


def test_manual_seed_makes_default_seed_repeatable():
    mu, logvar = torch.randn(4, 3), torch.randn(4, 3)
    torch.manual_seed(5)
    z1, _ = reparam_kl(mu, logvar)
    torch.manual_seed(5)
    z2, _ = reparam_kl(mu, logvar)
    z3, _ = reparam_kl(mu, logvar)
    assert torch.equal(z1, z2) and not torch.equal(z2, z3)


# ---- values and gradients --------------------------------------------------------


def inputs(b, d, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(b, d, generator=g, dtype=torch.float64)
    logvar = torch.randn(b, d, generator=g, dtype=torch.float64).clamp(-4, 4)
    return mu.to(dtype), logvar.to(dtype)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 2e-6)])
@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (256, 10), (33, 129)])
def test_forward_matches_float64_eager(dtype, tol, shape):
    mu, logvar = inputs(*shape, dtype=dtype)
    z, kl = reparam_kl(mu, logvar, seed=11, offset=5)
    eps = philox_normal(shape, 11, 5).double()
    z_ref, kl_ref = reparam_kl_eager(mu.double(), logvar.double(), eps)
    assert z.dtype == dtype and kl.dtype == dtype and kl.shape == (shape[0],)
    torch.testing.assert_close(z.double(), z_ref, rtol=tol, atol=tol)
    torch.testing.assert_close(kl.double(), kl_ref, rtol=tol, atol=tol * shape[1])


def test_kl_matches_torch_distributions():
    mu, logvar = inputs(64, 10)
    _, kl = reparam_kl(mu, logvar, seed=0)
    q = Normal(mu, torch.exp(0.5 * logvar))
    p = Normal(torch.zeros_like(mu), torch.ones_like(mu))
    torch.testing.assert_close(kl, kl_divergence(q, p).sum(-1), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_inputs_accepted(dtype):
    mu, logvar = inputs(16, 8)
    z, kl = reparam_kl(mu.to(dtype), logvar.to(dtype), seed=3)
    z_ref, kl_ref = reparam_kl_eager(mu.to(dtype).double(), logvar.to(dtype).double(), philox_normal((16, 8), 3).double())
    assert z.dtype == dtype and kl.dtype == dtype
    rel = 1e-2 if dtype == torch.bfloat16 else 2e-3  # one rounding of the output
    torch.testing.assert_close(z.double(), z_ref, rtol=rel, atol=rel)
    torch.testing.assert_close(kl.double(), kl_ref, rtol=rel, atol=rel)


def test_gradcheck_through_z_and_kl():
    mu, logvar = inputs(5, 6)
    mu.requires_grad_()
    logvar.requires_grad_()
    assert torch.autograd.gradcheck(lambda m, lv: reparam_kl(m, lv, seed=21, offset=2), (mu, logvar))


@pytest.mark.parametrize("use", ["both", "z", "kl"])
def test_gradients_equal_autograd_of_eager(use):
    mu, logvar = inputs(40, 13)
    mu1, lv1 = mu.clone().requires_grad_(), logvar.clone().requires_grad_()
    mu2, lv2 = mu.clone().requires_grad_(), logvar.clone().requires_grad_()
    g = torch.Generator().manual_seed(1)
    wz, wk = torch.randn(40, 13, generator=g, dtype=torch.float64), torch.randn(40, generator=g, dtype=torch.float64)

    def loss(z, kl):
        return {"both": (z * wz).sum() + (kl * wk).sum(), "z": (z * wz).sum(), "kl": (kl * wk).sum()}[use]

    loss(*reparam_kl(mu1, lv1, seed=8, offset=100)).backward()
    loss(*reparam_kl_eager(mu2, lv2, philox_normal((40, 13), 8, 100).double())).backward()
    torch.testing.assert_close(mu1.grad, mu2.grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(lv1.grad, lv2.grad, rtol=1e-12, atol=1e-12)


# ---- torch.library integration ---------------------------------------------------


def test_opcheck():
    mu, logvar = inputs(6, 4)
    torch.library.opcheck(torch.ops.vaebench.reparam_kl.default, (mu.requires_grad_(), logvar.requires_grad_(), 3, 1))
    gz, gk = torch.randn(6, 4, dtype=torch.float64), torch.randn(6, dtype=torch.float64)
    torch.library.opcheck(torch.ops.vaebench.reparam_kl_backward.default, (gz, gk, mu.detach(), logvar.detach(), 3, 1))
    torch.library.opcheck(torch.ops.vaebench.philox_normal_.default, (torch.empty(3, 5), 3, 1))


def test_torch_compile_fullgraph():
    def elbo_terms(mu, logvar, seed, offset):
        z, kl = reparam_kl(mu, logvar, seed=seed, offset=offset)
        return (z**2).sum(-1) + 2.0 * kl

    mu, logvar = inputs(8, 5, dtype=torch.float32)
    mu.requires_grad_()
    compiled = torch.compile(elbo_terms, fullgraph=True, backend="aot_eager")
    out = compiled(mu, logvar, 4, 16)
    torch.testing.assert_close(out, elbo_terms(mu, logvar, 4, 16))
    (g_c,) = torch.autograd.grad(out.sum(), mu)
    (g_e,) = torch.autograd.grad(elbo_terms(mu, logvar, 4, 16).sum(), mu)
    torch.testing.assert_close(g_c, g_e)


# ---- bad input -------------------------------------------------------------------


@pytest.mark.parametrize(
    "mu,logvar,exc,match",
    [
        (torch.zeros(3, 4), torch.zeros(3, 5), ValueError, r"same shape.*\(3, 4\).*\(3, 5\)"),
        (torch.zeros(3, 4, dtype=torch.int64), torch.zeros(3, 4), TypeError, r"mu must be a floating.*int64"),
        (torch.zeros(3, 4), torch.zeros(3, 4, dtype=torch.int32), TypeError, r"logvar must be a floating.*int32"),
        (torch.zeros(3, 4), torch.zeros(3, 4, dtype=torch.float64), TypeError, r"same dtype.*float32.*float64"),
        (torch.zeros(3, 4), torch.zeros(3, 4, device="meta"), ValueError, r"same device.*cpu.*meta"),
        (torch.zeros(12), torch.zeros(12), ValueError, r"mu must be 2-D \[B, D\], got shape \(12,\)"),
        (torch.zeros(2, 3, 4), torch.zeros(2, 3, 4), ValueError, r"2-D"),
    ],
)
def test_bad_input_errors(mu, logvar, exc, match):
    with pytest.raises(exc, match=match):
        reparam_kl(mu, logvar, seed=0)


def test_bad_stream_arguments():
    with pytest.raises(ValueError, match="offset must be >= 0, got -1"):
        reparam_kl(torch.zeros(2, 2), torch.zeros(2, 2), seed=0, offset=-1)
    with pytest.raises(ValueError, match="seed must fit in int64"):
        philox_normal(3, seed=2**64)


def test_direct_op_call_checks_in_cpp():
    with pytest.raises(RuntimeError, match="logvar must have mu's shape"):
        torch.ops.vaebench.reparam_kl(torch.zeros(2, 3), torch.zeros(3, 2), 0, 0)


def test_empty_batch():
    mu = torch.zeros(0, 10, requires_grad=True)
    z, kl = reparam_kl(mu, torch.zeros(0, 10), seed=1)
    assert z.shape == (0, 10) and kl.shape == (0,)
    (z.sum() + kl.sum()).backward()
    assert mu.grad.shape == (0, 10)


# ---- CUDA (skips without a GPU) -----------------------------------------------------


@cuda_only
def test_cuda_noise_is_bitwise_equal_to_cpu():
    for offset in (0, 1, 3, 2**33 + 2):
        assert torch.equal(philox_normal(100_003, 42, offset, "cuda").cpu(), philox_normal(100_003, 42, offset))


@cuda_only
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_matches_cpu(dtype):
    mu, logvar = inputs(300, 37, dtype=dtype)
    mu_c, lv_c = mu.cuda().requires_grad_(), logvar.cuda().requires_grad_()
    mu.requires_grad_()
    logvar.requires_grad_()
    z, kl = reparam_kl(mu, logvar, seed=5, offset=9)
    zc, klc = reparam_kl(mu_c, lv_c, seed=5, offset=9)
    tol = 1e-12 if dtype == torch.float64 else 1e-6
    torch.testing.assert_close(zc.cpu(), z, rtol=tol, atol=tol)
    torch.testing.assert_close(klc.cpu(), kl, rtol=tol, atol=tol * 37)
    (z.sum() + kl.sum()).backward()
    (zc.sum() + klc.sum()).backward()
    torch.testing.assert_close(mu_c.grad.cpu(), mu.grad, rtol=tol, atol=tol)
    torch.testing.assert_close(lv_c.grad.cpu(), logvar.grad, rtol=tol, atol=tol)


@cuda_only
def test_cuda_opcheck():
    mu, logvar = inputs(6, 4, dtype=torch.float32)
    torch.library.opcheck(torch.ops.vaebench.reparam_kl.default, (mu.cuda().requires_grad_(), logvar.cuda(), 3, 1))
