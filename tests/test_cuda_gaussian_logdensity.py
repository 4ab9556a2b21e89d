"""The CUDA kernels of gaussian_logdensity_lse (csrc/cuda/gaussian_logdensity.cu) against the CPU op,
on the backends of test_cuda_kernels.py: the CPU emulator (marker ``cuda_emulated``, outputs in
guarded buffers, grids capped to force grid-stride loops) and the real device where there is one.

Both sides sum the same terms in different orders (the GPU streams the components one by one per
thread and merges segments, the CPU merges tiles of 256), so they agree within a few float32 (or
float64) roundings of the outputs' scale, not bit for bit.
"""
import pytest
import torch

import cuda_emulator
import vaebench.ops  # noqa: F401  (loads the CPU ops)
from vaebench._extension import has_cuda_kernels

HAVE_GPU = torch.cuda.is_available() and has_cuda_kernels("gaussian_logdensity_lse")
PAD = 64


class Guarded:
    """A tensor inside a buffer with PAD sentinel elements on both sides (writes outside are caught)."""

    def __init__(self, shape, dtype, fill):
        n = 1
        for s in shape:
            n *= s
        self.buf = torch.full((n + 2 * PAD,), 7.0, dtype=dtype)
        self.t = self.buf[PAD:PAD + n].view(shape)
        self.t.copy_(fill if torch.is_tensor(fill) else torch.full(shape, fill, dtype=dtype))

    def pads_intact(self):
        n = self.t.numel()
        return bool((torch.cat([self.buf[:PAD], self.buf[PAD + n:]]) == 7.0).all())


class Emulated:
    name = "emulated"

    def __init__(self, module):
        self.m = module

    def forward(self, z, mu, logvar):
        b, d = z.shape
        joint, marg = Guarded((b,), z.dtype, float("nan")), Guarded((b, d), z.dtype, float("nan"))
        ins = [Guarded(t.shape, t.dtype, t) for t in (z, mu, logvar)]
        self.m.gaussian_logdensity_forward(*(g.t for g in ins), joint.t, marg.t)
        assert all(g.pads_intact() for g in ins + [joint, marg]), "a write outside the outputs"
        return joint.t, marg.t

    def backward(self, gj, gm, z, mu, logvar, joint, marg):
        outs = [Guarded(t.shape, t.dtype, float("nan")) for t in (z, mu, mu)]
        ins = [Guarded(t.shape, t.dtype, t) for t in (gj, gm, z, mu, logvar, joint, marg)]
        self.m.gaussian_logdensity_backward(*(g.t for g in ins), *(g.t for g in outs))
        assert all(g.pads_intact() for g in ins + outs), "a write outside the outputs"
        return [g.t for g in outs]


class Device:
    name = "cuda"

    def forward(self, z, mu, logvar):
        return [t.cpu() for t in torch.ops.vaebench.gaussian_logdensity_lse(z.cuda(), mu.cuda(), logvar.cuda())]

    def backward(self, *args):
        out = torch.ops.vaebench.gaussian_logdensity_lse_backward(*(t.cuda() for t in args))
        return [t.cpu() for t in out]


@pytest.fixture(scope="module", params=[
    pytest.param("emulated", marks=pytest.mark.cuda_emulated),
    pytest.param("cuda", marks=pytest.mark.skipif(not HAVE_GPU, reason="needs a GPU and a CUDA build of vaebench")),
])
def backend(request):
    return Emulated(cuda_emulator.build()) if request.param == "emulated" else Device()


def inputs(b, m, d, dtype, seed=0, spread=1.0, lv_range=(-3.0, 3.0)):
    g = torch.Generator().manual_seed(seed)
    z = spread * torch.randn(b, d, generator=g, dtype=torch.float64)
    mu = torch.randn(m, d, generator=g, dtype=torch.float64)
    lo, hi = lv_range
    lv = lo + (hi - lo) * torch.rand(m, d, generator=g, dtype=torch.float64)
    gj = torch.randn(b, generator=g, dtype=torch.float64)
    gm = torch.randn(b, d, generator=g, dtype=torch.float64)
    return [t.to(dtype) for t in (z, mu, lv, gj, gm)]


def close(got, want, dtype, scale_tol=None):
    """Within a few roundings of each output's scale (float32 accumulation for 16-bit inputs)."""
    acc_eps = torch.finfo(torch.float64 if dtype == torch.float64 else torch.float32).eps
    tol = scale_tol or max(64 * acc_eps, 2 * torch.finfo(dtype).eps)
    for g, w in zip(got, want):
        assert not g.isnan().any(), "an output not written"
        torch.testing.assert_close(g.double(), w.double(), rtol=tol, atol=tol * max(1.0, float(w.double().abs().max())))


# (B, M, D): single rows / components, one dimension; more than 16 dimensions (two register
# chunks, the joint's row sum across them); M above the segment length (the merge of segments).
SHAPES = [(1, 1, 1), (1, 5, 3), (6, 1, 2), (7, 40, 1), (5, 70, 10), (3, 37, 19), (33, 4, 33)]


@pytest.mark.parametrize("b,m,d", SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_forward_and_backward_match_cpu(backend, b, m, d, dtype):
    z, mu, lv, gj, gm = inputs(b, m, d, dtype)
    joint, marg = torch.ops.vaebench.gaussian_logdensity_lse(z, mu, lv)
    close(backend.forward(z, mu, lv), (joint, marg), dtype)
    want = torch.ops.vaebench.gaussian_logdensity_lse_backward(gj, gm, z, mu, lv, joint, marg)
    close(backend.backward(gj, gm, z, mu, lv, joint, marg), want, dtype)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_low_precision_match_cpu(backend, dtype):
    z, mu, lv, gj, gm = inputs(5, 30, 4, dtype)
    joint, marg = torch.ops.vaebench.gaussian_logdensity_lse(z, mu, lv)
    close(backend.forward(z, mu, lv), (joint, marg), dtype)
    want = torch.ops.vaebench.gaussian_logdensity_lse_backward(gj, gm, z, mu, lv, joint, marg)
    close(backend.backward(gj, gm, z, mu, lv, joint, marg), want, dtype)


@pytest.mark.parametrize("case", ["far", "logvar+20", "logvar-20"])
def test_extremes_match_cpu(backend, case):
    spread, lv_range = {"far": (300.0, (-1.0, 1.0)), "logvar+20": (1.0, (19.5, 20.0)),
                        "logvar-20": (1.0, (-20.0, -19.5))}[case]
    z, mu, lv, gj, gm = inputs(6, 35, 3, torch.float32, seed=4, spread=spread, lv_range=lv_range)
    joint, marg = torch.ops.vaebench.gaussian_logdensity_lse(z, mu, lv)
    got = backend.forward(z, mu, lv)
    assert all(torch.isfinite(t).all() for t in got)
    close(got, (joint, marg), torch.float32)
    want = torch.ops.vaebench.gaussian_logdensity_lse_backward(gj, gm, z, mu, lv, joint, marg)
    # Far codes: the weights exp(term - output) carry eps * |term| (terms near -1e4): see
    # test_gaussian_logdensity.py::test_extremes.
    close(backend.backward(gj, gm, z, mu, lv, joint, marg), want, torch.float32,
          scale_tol=2e-4 if case == "far" else None)


def test_empty_mixture_is_minus_infinity(backend):
    z = torch.randn(3, 2)
    joint, marg = backend.forward(z, torch.zeros(0, 2), torch.zeros(0, 2))
    assert (joint == float("-inf")).all() and (marg == float("-inf")).all()


@pytest.mark.cuda_emulated
def test_capped_grids_give_the_same_bits():
    em = Emulated(cuda_emulator.build())
    z, mu, lv, gj, gm = inputs(9, 50, 5, torch.float32, seed=2)
    ref = em.forward(z, mu, lv)
    ref_b = em.backward(gj, gm, z, mu, lv, *ref)
    em.m.set_options(max_grid_x=1, order_seed=3)
    em.m.clear_launches()
    try:
        got = em.forward(z, mu, lv)
        got_b = em.backward(gj, gm, z, mu, lv, *ref)
        launches = em.m.launches()
    finally:
        em.m.set_options()
    for a, b in zip(list(ref) + list(ref_b), list(got) + list(got_b)):
        assert torch.equal(a, b), "the result depends on the grid or the block order"
    assert len(launches) == 3 + 6  # tables, partials, merge; tables, 2 x (partials, reduce), reduce
