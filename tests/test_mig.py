"""MIG: the fused joint-histogram op against numpy's binning, and all three MIG
implementations against disentanglement_lib's per-pair scikit-learn computation."""
import importlib

import numpy as np
import pytest
import torch

from vaebench._extension import has_cuda_kernels
from vaebench.metrics import MIGResult, mig, mig_reference, mig_vectorized

mig_module = importlib.import_module("vaebench.metrics.mig")  # the package's `mig` is the function

TOL = 1e-9


def numpy_counts(latents, factors, num_bins, num_classes):
    """The joint counts by numpy's own histogram + digitize, in float64."""
    x = np.asarray(latents, dtype=np.float64)
    d, k = x.shape[1], factors.shape[1]
    out = np.zeros((d, k, num_bins, num_classes), dtype=np.int64)
    for j in range(d):
        try:
            edges = np.histogram(x[:, j], num_bins)[1]
        except ValueError:  # numpy refuses ranges too narrow for distinct edges; the op
            lo, hi = x[:, j].min(), x[:, j].max()  # bins them like digitize on linspace
            lo, hi = (lo - 0.5, hi + 0.5) if lo == hi else (lo, hi)
            edges = np.linspace(lo, hi, num_bins + 1)
        b = np.digitize(x[:, j], edges[:-1]) - 1
        for i in range(k):
            np.add.at(out[j, i], (b, factors[:, i]), 1)
    return out


def op_counts(latents, factors, num_bins, num_classes, device="cpu"):
    lat = torch.as_tensor(latents, device=device)
    fac = torch.as_tensor(factors, device=device)
    counts, lo, hi = torch.ops.vaebench.mig_histogram(lat, fac, num_bins, num_classes)
    x = lat.double().cpu()
    assert torch.equal(lo.cpu(), x.amin(0)) and torch.equal(hi.cpu(), x.amax(0))
    return counts.cpu().numpy()


def adversarial_latents(rng, n=3000, degenerate=True):
    """Columns whose values sit exactly on numpy's bin edges and one ulp either
    side, a constant column, and (degenerate) a huge constant and a denormal
    range, whose edges are not distinct (np.histogram refuses those)."""
    cols = []
    base = rng.normal(size=n) * 3.7 + 1.1
    edges = np.histogram(base, 20)[1]
    on_edges = np.concatenate([edges, np.nextafter(edges, -np.inf), np.nextafter(edges, np.inf)])
    on_edges = np.clip(on_edges, base.min(), base.max())
    col = base.copy()
    col[: on_edges.size] = on_edges
    cols.append(col)
    grid = np.linspace(-1, 1, 21)  # values on a numpy-like grid: many exact ties with edges
    cols.append(rng.choice(grid, size=n))
    cols.append(np.full(n, 0.3))  # constant: numpy widens to [x - 0.5, x + 0.5]
    if degenerate:
        cols.append(np.full(n, 1e17))  # constant where x +- 0.5 == x: every edge equal
        cols.append(rng.choice([0.0, 1e-323, 2e-323, 5e-323], size=n))  # linspace step underflows to 0
    cols.append(rng.integers(-5, 6, size=n).astype(np.float64))
    return np.stack(cols, axis=1)


def random_factors(rng, n, sizes=(3, 6, 10)):
    return np.stack([rng.integers(0, s, size=n) for s in sizes], axis=1)


def grid_factors(sizes, repeat=1):
    """The full factorial grid (as dSprites): factors exactly independent."""
    g = np.stack(np.meshgrid(*[np.arange(s) for s in sizes], indexing="ij"), -1).reshape(-1, len(sizes))
    return np.tile(g, (repeat, 1))


def assert_same(a: MIGResult, b: MIGResult):
    np.testing.assert_allclose(a.mutual_info, b.mutual_info, rtol=0, atol=TOL)
    np.testing.assert_allclose(a.factor_entropy, b.factor_entropy, rtol=0, atol=TOL)
    np.testing.assert_allclose(a.gaps, b.gaps, rtol=0, atol=TOL)
    assert abs(a.score - b.score) <= TOL


# ---- the op's counts are numpy's, bit for bit --------------------------------


def test_op_counts_match_numpy_on_edges_and_corner_columns():
    rng = np.random.default_rng(0)
    x = adversarial_latents(rng)
    f = random_factors(rng, len(x))
    for bins in (2, 7, 20):
        np.testing.assert_array_equal(op_counts(x, f, bins, 10), numpy_counts(x, f, bins, 10))


def test_op_counts_with_several_private_histograms():
    """Enough rows for one private histogram per thread (then summed)."""
    rng = np.random.default_rng(11)
    x = adversarial_latents(rng, n=60000)
    f = random_factors(rng, len(x))
    threads = torch.get_num_threads()
    torch.set_num_threads(3)  # chunks follow the thread count; 3 even on a 1-core runner
    try:
        np.testing.assert_array_equal(op_counts(x, f, 20, 10), numpy_counts(x, f, 20, 10))
    finally:
        torch.set_num_threads(threads)


def test_op_counts_float32_are_binned_as_the_float64_upcast():
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(4000, 5)) * [1, 10, 1e-3, 1e4, 1]).astype(np.float32)
    edges = np.histogram(x[:, 0].astype(np.float64), 20)[1]  # float32 values nearest the edges
    x[:21, 0] = np.clip(edges.astype(np.float32), x[:, 0].min(), x[:, 0].max())
    f = random_factors(rng, len(x))
    np.testing.assert_array_equal(op_counts(x, f, 20, 10), numpy_counts(x.astype(np.float64), f, 20, 10))
    half = torch.from_numpy(x).to(torch.bfloat16)
    np.testing.assert_array_equal(
        op_counts(half, f, 20, 10), numpy_counts(half.double().numpy(), f, 20, 10)
    )


def test_op_rejects_bad_direct_calls():
    x, f = torch.randn(10, 3), torch.randint(0, 4, (10, 2))
    with pytest.raises(RuntimeError, match="factor classes must be in"):
        torch.ops.vaebench.mig_histogram(x, f, 20, 3)
    with pytest.raises(RuntimeError, match="num_bins"):
        torch.ops.vaebench.mig_histogram(x, f, 1, 4)
    x[3, 1] = float("nan")
    with pytest.raises(RuntimeError, match="finite"):
        torch.ops.vaebench.mig_histogram(x, f, 20, 4)


def test_opcheck():
    rng = np.random.default_rng(2)
    lat = torch.from_numpy(rng.normal(size=(300, 4)))
    fac = torch.from_numpy(random_factors(rng, 300))
    torch.library.opcheck(torch.ops.vaebench.mig_histogram.default, (lat, fac, 20, 10))
    torch.library.opcheck(torch.ops.vaebench.mig_histogram.default, (lat.float(), fac.int(), 5, 12))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_counts_equal_cpu_counts():
    if not has_cuda_kernels("mig_histogram"):
        pytest.skip("this vaebench build has no CUDA kernels")
    rng = np.random.default_rng(3)
    x = adversarial_latents(rng, n=20000)  # degenerate columns too: the op bins them alike
    f = random_factors(rng, len(x))
    for lat in (x, x.astype(np.float32)):
        np.testing.assert_array_equal(op_counts(lat, f, 20, 10, "cuda"), op_counts(lat, f, 20, 10))
    # many classes: one (d, k) table exceeds shared memory, the kernel counts in global memory
    f_big = rng.integers(0, 4000, size=(len(x), 2))
    np.testing.assert_array_equal(op_counts(x, f_big, 20, 4000, "cuda"), op_counts(x, f_big, 20, 4000))
    x = adversarial_latents(rng, n=20000, degenerate=False)  # MIG refuses degenerate columns, as numpy does
    r = mig(torch.from_numpy(x).cuda(), torch.from_numpy(f).cuda())
    assert_same(r, mig_reference(x, f))


# ---- MIG equals the scikit-learn reference ----------------------------------


IMPLEMENTATIONS = [mig, mig_vectorized]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_random_data_matches_reference(impl):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2000, 6)).astype(np.float32)
    f = random_factors(rng, 2000)
    assert_same(impl(x, f), mig_reference(x, f))
    assert_same(impl(x, f, num_bins=3), mig_reference(x, f, num_bins=3))


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_structured_data_matches_reference(impl):
    rng = np.random.default_rng(5)
    f = grid_factors((3, 6, 10, 8), repeat=2)
    n = len(f)
    noisy = f + rng.normal(scale=[0.1, 0.5, 1.0, 3.0], size=f.shape)  # noisy copies of the factors
    x = np.concatenate([noisy, noisy[:, :2], np.full((n, 1), -2.0), rng.normal(size=(n, 1))], axis=1)
    x = x[:, rng.permutation(x.shape[1])]  # permuted dims; duplicated ones tie for the top MI
    for lat in (x, adversarial_latents(rng, n, degenerate=False)):
        ref = mig_reference(lat, f)
        assert_same(impl(lat, f), ref)
        assert_same(impl(torch.from_numpy(lat), torch.from_numpy(f).to(torch.int32)), ref)
    # duplicated dimensions: the top two MI are equal, the gaps of those factors are 0
    assert np.allclose(impl(x, f).gaps[:2], 0.0, atol=TOL)


def test_vectorized_row_chunks_and_sparse_class_ids(monkeypatch):
    rng = np.random.default_rng(6)
    x = rng.normal(size=(3000, 4))
    f = random_factors(rng, 3000)
    f_sparse = f * 100_003  # ids far above the dense limit are relabelled first
    ref = mig_reference(x, f)
    assert_same(mig(x, f_sparse), ref)
    monkeypatch.setattr(mig_module, "_VECTORIZED_CHUNK", 1000)  # 1000 // (4*3) rows per chunk
    assert_same(mig_vectorized(x, f_sparse), ref)
    assert_same(mig_vectorized(x, f.astype(np.float64)), ref)  # integral floats are class ids


def mi_bias(num_bins, num_classes, n):
    """Expected plug-in MI of independent variables: (bins-1)(classes-1) / (2N) nats."""
    return (num_bins - 1) * (num_classes - 1) / (2 * n)


def test_identity_representation_scores_near_one():
    rng = np.random.default_rng(7)
    sizes = (3, 6, 10, 8)
    f = grid_factors(sizes, repeat=10)
    x = np.concatenate([f + rng.normal(scale=0.01, size=f.shape), rng.normal(size=(len(f), 2))], axis=1)
    r = mig(x, f)
    # each factor's own dim carries all of H (classes <= bins, noise << spacing); the
    # runner-up has only the chance MI of independent variables
    np.testing.assert_allclose(np.diag(r.mutual_info[:4]), r.factor_entropy, rtol=1e-12)
    slack = 4 * mi_bias(20, max(sizes), len(f)) / r.factor_entropy.min()
    assert r.score > 1 - slack
    assert_same(r, mig_reference(x, f))


def test_pure_noise_scores_near_zero():
    rng = np.random.default_rng(8)
    sizes = (3, 6, 10, 8)
    f = grid_factors(sizes, repeat=10)
    r = mig(rng.normal(size=(len(f), 8)), f)
    assert 0 <= r.score < 4 * mi_bias(20, max(sizes), len(f)) / r.factor_entropy.min()


def test_constant_latent_dimension_has_zero_mi():
    rng = np.random.default_rng(9)
    f = random_factors(rng, 500)
    x = np.concatenate([f[:, :1] + 0.0, np.full((500, 1), 7.0)], axis=1)
    r = mig(x, f)
    assert np.all(r.mutual_info[1] == 0.0)
    assert_same(r, mig_reference(x, f))


# ---- bad input ---------------------------------------------------------------


@pytest.mark.parametrize("impl", [mig, mig_vectorized, mig_reference])
def test_bad_input_is_rejected_clearly(impl):
    rng = np.random.default_rng(10)
    x, f = rng.normal(size=(50, 3)), random_factors(rng, 50)
    with pytest.raises(ValueError, match="N = 0"):
        impl(x[:0], f[:0])
    with pytest.raises(ValueError, match="same N, got 50 and 49"):
        impl(x, f[:49])
    with pytest.raises(ValueError, match=r"integer class ids, got 0.5 at row 2, factor 1"):
        g = f.astype(np.float64)
        g[2, 1] = 0.5
        impl(x, g)
    with pytest.raises(ValueError, match=">= 0, got minimum -1"):
        g = f.copy()
        g[4, 0] = -1
        impl(x, g)
    for bad in (np.nan, np.inf):
        y = x.copy()
        y[7, 2] = bad
        with pytest.raises(ValueError, match="finite, found 1 NaN or inf"):
            impl(y, f)
    for bins in (1, 0, 2.5):
        with pytest.raises(ValueError, match="num_bins must be an integer >= 2"):
            impl(x, f, num_bins=bins)
    with pytest.raises(ValueError, match=r"factor\(s\) \[1\] take a single value"):
        g = f.copy()
        g[:, 1] = 2
        impl(x, g)
    with pytest.raises(ValueError, match=r"latent dimension 1 spans \[1e\+17, 1e\+17\]"):
        y = x.copy()
        y[:, 1] = 1e17  # as np.histogram: too narrow a range for distinct bin edges
        impl(y, f)
    with pytest.raises(ValueError, match="at least 2 latent dimensions"):
        impl(x[:, :1], f)
    with pytest.raises(ValueError, match=r"factors must be 2-D \[N, K\]"):
        impl(x, f[:, 0])
    with pytest.raises(TypeError, match="numpy array or torch tensor"):
        impl(x.tolist(), f)
