"""The CUDA kernels (csrc/cuda/*.cu) against the CPU op, on two backends:

- ``emulated``: the .cu sources compiled as host C++ and run by the CPU emulator (csrc/emu), so they
  run in CI without a GPU (marker ``cuda_emulated``); outputs land in guarded buffers, and grids can
  be capped to force grid-stride loops;
- ``cuda``: the real device through the registered ops (skipped without a GPU and a CUDA build).

eps and z must equal the CPU op's bit for bit (the generator and the per-element math are the same
code). kl sums the same terms in another order, so it must agree within the bound of a reordered
float sum. MIG counts must be equal.
"""
import contextlib

import numpy as np
import pytest
import torch

import cuda_emulator
from cuda_emulator import Guarded, acc_dtype, reordered_sum_bound, same_bits
from vaebench._extension import has_cuda_kernels
from vaebench.ops import philox_normal

HAVE_GPU = torch.cuda.is_available() and has_cuda_kernels() and has_cuda_kernels("mig_histogram")


# ---- backends ---------------------------------------------------------------------------------


class Emulated:
    name = "emulated"

    def __init__(self, module):
        self.m = module

    def forward(self, mu, logvar, z, kl, seed, offset):
        self.m.reparam_kl_forward(mu, logvar, z, kl, seed, offset)

    def backward(self, gz, gk, mu, logvar, dmu, dlogvar, seed, offset):
        self.m.reparam_kl_backward(gz, gk, mu, logvar, dmu, dlogvar, seed, offset)

    def normal(self, out, seed, offset):
        self.m.philox_normal(out, seed, offset)

    def histogram(self, latents, factors, bins, classes):
        return self.m.mig_histogram(latents, factors, bins, classes)

    @contextlib.contextmanager
    def grid_cap(self, x=0, y=0, seed=1):
        """Runs at most x * y blocks (grid-stride loops must cover the rest), in a seed-shuffled order."""
        self.m.set_options(max_grid_x=x, max_grid_y=y, order_seed=seed)
        self.m.clear_launches()
        try:
            yield self.m.launches
        finally:
            self.m.set_options()


class Device:
    """The real GPU: inputs are copied keeping their offset from 16-byte alignment."""

    name = "cuda"

    @staticmethod
    def _to_cuda(t):
        shift = (t.data_ptr() % 16) // t.element_size()
        buf = torch.empty(t.numel() + 16, dtype=t.dtype, device="cuda")
        view = buf[shift:shift + t.numel()].view(t.shape)
        view.copy_(t)
        return view

    def forward(self, mu, logvar, z, kl, seed, offset):
        zd, kld = torch.ops.vaebench.reparam_kl(self._to_cuda(mu), self._to_cuda(logvar), seed, offset)
        z.copy_(zd.cpu())
        kl.copy_(kld.cpu())

    def backward(self, gz, gk, mu, logvar, dmu, dlogvar, seed, offset):
        d = [self._to_cuda(t) for t in (gz, gk, mu, logvar)]
        a, b = torch.ops.vaebench.reparam_kl_backward(*d, seed, offset)
        dmu.copy_(a.cpu())
        dlogvar.copy_(b.cpu())

    def normal(self, out, seed, offset):
        d = self._to_cuda(out)
        torch.ops.vaebench.philox_normal_(d, seed, offset)
        out.copy_(d.cpu())

    def histogram(self, latents, factors, bins, classes):
        return torch.ops.vaebench.mig_histogram(latents.cuda(), factors.cuda(), bins, classes)[0].cpu()


@pytest.fixture(scope="module", params=[
    pytest.param("emulated", marks=pytest.mark.cuda_emulated),
    pytest.param("cuda", marks=pytest.mark.skipif(not HAVE_GPU, reason="needs a GPU and a CUDA build of vaebench")),
])
def backend(request):
    return Emulated(cuda_emulator.build()) if request.param == "emulated" else Device()


@pytest.fixture(scope="module")
def emulated():
    return Emulated(cuda_emulator.build())


# ---- guarded buffers --------------------------------------------------------------------------


def guarded_inputs(b, d, dtype, shift, seed=0):
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(b, d, generator=g, dtype=torch.float64)
    logvar = torch.randn(b, d, generator=g, dtype=torch.float64).clamp(-6, 6)
    return Guarded((b, d), dtype, mu.to(dtype), shift), Guarded((b, d), dtype, logvar.to(dtype), shift)


def kl_bound(mu, logvar, acc_dtype, out_dtype):
    """Bound on |kl_a - kl_b| for two summation orders of the same float terms."""
    m, lv = mu.double(), logvar.double()
    abs_sum = (0.5 * (m * m + lv.exp() - 1 - lv)).abs().sum(1)
    return reordered_sum_bound(abs_sum, mu.shape[1], acc_dtype, out_dtype)


def exact_z(backend, dtype):
    # float64 exp is the platform's: glibc's on the CPU and in the emulator, CUDA's on the device.
    return not (backend.name == "cuda" and dtype == torch.float64)


# ---- philox_normal ------------------------------------------------------------------------------

# (n, offset): partial Philox blocks at both ends, offsets not multiples of 4, sizes not multiples
# of the block size (256 threads x 4 elements), a counter past 32 bits.
NORMAL_CASES = [(0, 3), (1, 0), (1, 3), (3, 1), (4, 0), (5, 2), (1023, 1), (1029, 6), (10_007, 2**34 + 5)]


@pytest.mark.parametrize("n,offset", NORMAL_CASES)
@pytest.mark.parametrize("shift", [0, 1])
def test_philox_normal_is_the_cpu_stream(backend, n, offset, shift):
    out = Guarded((n,), torch.float32, float("nan"), shift)
    backend.normal(out.t, 42, offset)
    assert same_bits(out.t, philox_normal(n, 42, offset))
    assert out.pads_intact()


# ---- reparam_kl forward and backward --------------------------------------------------------------

# (B, D, offset): see the module doc; the kernel sums rows of up to 32 columns per thread, longer
# ones per warp, and rows over 2048 columns in several chunks.
SHAPES = [
    (1, 1, 0), (1, 1, 3), (7, 13, 5), (3, 0, 2), (0, 5, 1), (1, 9000, 6), (5000, 1, 1),
    (300, 37, 9), (129, 32, 0), (70, 33, 4), (16, 40, 2**34 + 6),
]
DTYPE_SHAPES = [(7, 13, 5), (70, 33, 4), (1, 2100, 2)]


def run_forward(backend, b, d, offset, dtype=torch.float32, shift=0):
    mu, logvar = guarded_inputs(b, d, dtype, shift)
    z = Guarded((b, d), dtype, float("nan"), shift)
    kl = Guarded((b,), dtype, float("nan"), shift)
    backend.forward(mu.t, logvar.t, z.t, kl.t, 11, offset)
    assert all(g.pads_intact() for g in (mu, logvar, z, kl)), "a write outside the outputs"
    return mu.t, logvar.t, z.t, kl.t


def check_forward(backend, b, d, offset, dtype, shift=0):
    mu, logvar, z, kl = run_forward(backend, b, d, offset, dtype, shift)
    z_cpu, kl_cpu = torch.ops.vaebench.reparam_kl(mu, logvar, 11, offset)
    if exact_z(backend, dtype):
        assert same_bits(z, z_cpu)
    else:
        torch.testing.assert_close(z, z_cpu, rtol=1e-14, atol=1e-14)
    assert not kl.isnan().any(), "kl not written"
    assert ((kl.double() - kl_cpu.double()).abs() <= kl_bound(mu, logvar, acc_dtype(dtype), dtype)).all()


@pytest.mark.parametrize("b,d,offset", SHAPES)
def test_forward_float32(backend, b, d, offset):
    check_forward(backend, b, d, offset, torch.float32)


@pytest.mark.parametrize("b,d,offset", DTYPE_SHAPES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16], ids=str)
def test_forward_other_dtypes(backend, b, d, offset, dtype):
    check_forward(backend, b, d, offset, dtype)


@pytest.mark.parametrize("b,d,offset", [(7, 13, 4), (70, 33, 0), (1, 2100, 2)])
def test_forward_misaligned_buffers_take_the_scalar_path_alike(backend, b, d, offset):
    check_forward(backend, b, d, offset, torch.float32, shift=1)
    check_forward(backend, b, d, offset, torch.float16, shift=1)


def test_forward_without_columns_zeroes_kl(backend):
    _, _, z, kl = run_forward(backend, 5, 0, 3)
    assert z.shape == (5, 0) and torch.equal(kl, torch.zeros(5))


def check_backward(backend, b, d, offset, dtype, shift=0):
    mu, logvar = guarded_inputs(b, d, dtype, shift, seed=1)
    g = torch.Generator().manual_seed(2)
    gz = Guarded((b, d), dtype, torch.randn(b, d, generator=g).to(dtype), shift)
    gk = Guarded((b,), dtype, torch.randn(b, generator=g).to(dtype), shift)
    dmu = Guarded((b, d), dtype, float("nan"), shift)
    dlv = Guarded((b, d), dtype, float("nan"), shift)
    backend.backward(gz.t, gk.t, mu.t, logvar.t, dmu.t, dlv.t, 11, offset)
    assert all(x.pads_intact() for x in (gz, gk, mu, logvar, dmu, dlv)), "a write outside the outputs"
    dmu_cpu, dlv_cpu = torch.ops.vaebench.reparam_kl_backward(gz.t, gk.t, mu.t, logvar.t, 11, offset)
    assert same_bits(dmu.t, dmu_cpu)  # no exp in dmu
    if exact_z(backend, dtype):
        assert same_bits(dlv.t, dlv_cpu)
    else:
        torch.testing.assert_close(dlv.t, dlv_cpu, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("b,d,offset", SHAPES)
def test_backward_float32(backend, b, d, offset):
    check_backward(backend, b, d, offset, torch.float32)


@pytest.mark.parametrize("b,d,offset", DTYPE_SHAPES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16], ids=str)
def test_backward_other_dtypes(backend, b, d, offset, dtype):
    check_backward(backend, b, d, offset, dtype)


def test_backward_misaligned(backend):
    check_backward(backend, 70, 33, 0, torch.float32, shift=1)


# ---- grid-stride loops and determinism (emulated: the grid can be capped) ------------------------


@pytest.mark.cuda_emulated
@pytest.mark.parametrize("b,d,offset", [(5000, 1, 1), (300, 37, 9), (1, 9000, 6)])
def test_capped_grids_cover_everything_and_kl_is_deterministic(emulated, b, d, offset):
    _, _, z, kl = run_forward(emulated, b, d, offset)
    for cap, seed in ((1, 3), (2, 5)):
        with emulated.grid_cap(x=cap, seed=seed) as launches:
            _, _, z2, kl2 = run_forward(emulated, b, d, offset)
            check_backward(emulated, b, d, offset, torch.float32)
            out = Guarded((b * d,), torch.float32, float("nan"))
            emulated.normal(out.t, 42, offset)
            assert same_bits(out.t, philox_normal(b * d, 42, offset))
        assert same_bits(z2, z)
        assert same_bits(kl2, kl), "kl depends on the grid or the block order"
        fwd, bwd, normal = (rec[0] for rec in launches())
        assert bwd > cap and normal > cap and (fwd > cap or b == 1)  # the cap forced grid-stride iterations


# ---- MIG histograms -------------------------------------------------------------------------------


def mig_inputs(n, d, k, classes, dtype, seed=0):
    rng = np.random.default_rng(seed)
    f = rng.integers(0, classes, size=(n, k))
    x = rng.normal(size=(n, d)) + f[:, np.arange(d) % k] * 0.3
    if d > 1:
        x[:, 1] = 3.0  # a constant column: numpy widens its range by 0.5
    return torch.from_numpy(x).to(dtype), torch.from_numpy(f)


# (N, D, K, bins, classes): one (d, k) table is bins * classes * 4 bytes of shared memory; 48 KB
# hold all factors of a dimension, a group of 2 (with a partial last group), or not even one
# (the kernel counts in global memory).
MIG_CASES = {
    "all-factors-shared": (2001, 3, 5, 20, 10),
    "groups-of-2": (1500, 2, 5, 20, 300),
    "global-fallback": (1200, 3, 2, 20, 4000),
    "one-sample": (1, 2, 2, 5, 3),
}


@pytest.mark.parametrize("case", MIG_CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_mig_counts_equal_cpu(backend, case, dtype):
    n, d, k, bins, classes = MIG_CASES[case]
    x, f = mig_inputs(n, d, k, classes, dtype)
    expected = torch.ops.vaebench.mig_histogram(x, f, bins, classes)[0]
    assert torch.equal(backend.histogram(x, f, bins, classes), expected)
    assert int(expected.sum()) == n * d * k


@pytest.mark.cuda_emulated
@pytest.mark.parametrize("case", ["groups-of-2", "global-fallback"])
def test_mig_capped_grids_and_path_taken(emulated, case):
    n, d, k, bins, classes = MIG_CASES[case]
    x, f = mig_inputs(n, d, k, classes, torch.float32, seed=1)
    expected = torch.ops.vaebench.mig_histogram(x, f, bins, classes)[0]
    with emulated.grid_cap(x=2, y=2, seed=7) as launches:
        assert torch.equal(emulated.histogram(x, f, bins, classes), expected)
    (grid_x, grid_y, _, _, _, _, smem), = launches()
    assert grid_x > 2 and grid_y > 2  # rows and (dimension, factor group) pairs both looped
    table = bins * classes * 4
    assert smem == (0 if case == "global-fallback" else 2 * table)
