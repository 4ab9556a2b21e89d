// CPU kernel of vaebench::mig_histogram: every (latent dim, factor) joint
// histogram of MIG in one pass over the samples.
//
// counts[d, k, b, c] = #{n : bin of latents[n, d] == b and factors[n, k] == c},
// the bins being numpy's (see vaebench/histogram.h). Two passes over the rows:
// per-dimension min/max, then binning + counting. The rows are split into one
// chunk per thread; each chunk counts into its own private histogram (no
// atomics, no sharing), and the private histograms are summed at the end.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "vaebench/histogram.h"
#include "mig_histogram_checks.h"  // csrc/

namespace vaebench {
namespace {

// Private counts are 32-bit (half the cache footprint); a chunk never holds
// more rows than that can count.
constexpr int64_t kMaxChunkRows = int64_t{1} << 31;
// Element operations below which a second thread costs more than it saves
// (waking it, and waiting for it on a busy machine).
constexpr int64_t kMinChunkWork = int64_t{1} << 18;

// Splits n rows of `row_work` operations each into one chunk per thread, fewer
// for small inputs.
struct RowChunks {
  int64_t count, rows;
  RowChunks(int64_t n, int64_t row_work, int64_t max_rows) {
    const int64_t by_work = std::max<int64_t>(1, n * row_work / kMinChunkWork);
    count = std::max<int64_t>(std::min<int64_t>(at::get_num_threads(), by_work), (n + max_rows - 1) / max_rows);
    rows = (n + count - 1) / count;
  }
};

// Per-column min and max as float64 [D] tensors; false if any value is NaN or inf.
template <typename scalar_t>
bool column_ranges(const scalar_t* x, int64_t N, int64_t D, double* lo, double* hi) {
  const RowChunks chunks(N, D, N);
  std::vector<scalar_t> los(static_cast<size_t>(chunks.count * D)), his(los.size());
  std::vector<char> finite(static_cast<size_t>(chunks.count), 1);
  at::parallel_for(0, chunks.count, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t r0 = c * chunks.rows, r1 = std::min(N, r0 + chunks.rows);
      scalar_t* l = los.data() + c * D;
      scalar_t* h = his.data() + c * D;
      std::copy(x + r0 * D, x + (r0 + 1) * D, l);
      std::copy(x + r0 * D, x + (r0 + 1) * D, h);
      bool ok = true;
      for (int64_t r = r0; r < r1; ++r) {
        for (int64_t d = 0; d < D; ++d) {
          const scalar_t v = x[r * D + d];
          l[d] = v < l[d] ? v : l[d];
          h[d] = v > h[d] ? v : h[d];
          ok &= std::isfinite(v);
        }
      }
      finite[c] = ok;
    }
  });
  for (int64_t d = 0; d < D; ++d) {
    lo[d] = static_cast<double>(los[d]);
    hi[d] = static_cast<double>(his[d]);
    for (int64_t c = 1; c < chunks.count; ++c) {
      lo[d] = std::min(lo[d], static_cast<double>(los[c * D + d]));
      hi[d] = std::max(hi[d], static_cast<double>(his[c * D + d]));
    }
  }
  return std::all_of(finite.begin(), finite.end(), [](char ok) { return ok != 0; });
}

// Counts rows [r0, r1) into hist; returns false if a factor class is outside [0, C).
template <typename scalar_t>
bool count_chunk(const scalar_t* x, const int64_t* f, int64_t r0, int64_t r1, int64_t D,
                 int64_t K, const std::vector<BinSpec>& specs, int64_t C, uint32_t* hist) {
  const int64_t table = specs[0].bins * C;  // one (d, k) histogram
  std::vector<int64_t> bin_off(static_cast<size_t>(D)), cls_off(static_cast<size_t>(K));
  bool ok = true;
  for (int64_t r = r0; r < r1; ++r) {
    for (int64_t d = 0; d < D; ++d) {
      const int32_t b = bin_index(specs[d], static_cast<double>(x[r * D + d]));
      bin_off[d] = d * K * table + b * C;
    }
    for (int64_t k = 0; k < K; ++k) {
      const int64_t c = f[r * K + k];
      const bool in_range = static_cast<uint64_t>(c) < static_cast<uint64_t>(C);
      ok &= in_range;
      cls_off[k] = k * table + (in_range ? c : 0);
    }
    for (int64_t d = 0; d < D; ++d) {
      uint32_t* h = hist + bin_off[d];
      for (int64_t k = 0; k < K; ++k) ++h[cls_off[k]];
    }
  }
  return ok;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> mig_histogram_cpu(const at::Tensor& latents_in,
                                                                 const at::Tensor& factors_in,
                                                                 int64_t num_bins,
                                                                 int64_t num_classes) {
  at::Tensor latents, factors;  // (not structured bindings: C++17 lambdas cannot capture those)
  std::tie(latents, factors) = prepare_mig_histogram(latents_in, factors_in, num_bins, num_classes);
  const int64_t N = latents.size(0), D = latents.size(1), K = factors.size(1);
  const auto f64 = latents.options().dtype(at::kDouble);
  at::Tensor lo = at::empty({D}, f64), hi = at::empty({D}, f64);
  at::Tensor counts = at::zeros({D, K, num_bins, num_classes}, factors.options());
  if (D == 0) return {counts, lo, hi};
  AT_DISPATCH_FLOATING_TYPES(latents.scalar_type(), "mig_histogram_ranges", [&] {
    TORCH_CHECK(column_ranges(latents.const_data_ptr<scalar_t>(), N, D, lo.mutable_data_ptr<double>(),
                              hi.mutable_data_ptr<double>()),
                "mig_histogram: latents must be finite (found NaN or inf)");
  });
  const auto [first, last] = numpy_outer_edges(lo, hi);
  if (K == 0) return {counts, lo, hi};

  std::vector<BinSpec> specs(static_cast<size_t>(D));
  for (int64_t d = 0; d < D; ++d)
    specs[d] = make_bin_spec(first.const_data_ptr<double>()[d], last.const_data_ptr<double>()[d],
                             static_cast<int32_t>(num_bins));
  // Chunks are indexed, not tied to thread ids, so nested or concurrent calls stay safe.
  const RowChunks chunks(N, D * (K + 1), kMaxChunkRows);
  const int64_t total = counts.numel();
  std::vector<std::vector<uint32_t>> hists(static_cast<size_t>(chunks.count));
  std::vector<char> in_range(static_cast<size_t>(chunks.count), 1);
  const int64_t* f = factors.const_data_ptr<int64_t>();
  AT_DISPATCH_FLOATING_TYPES(latents.scalar_type(), "mig_histogram_cpu", [&] {
    const scalar_t* x = latents.const_data_ptr<scalar_t>();
    at::parallel_for(0, chunks.count, 1, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) {
        hists[c].assign(static_cast<size_t>(total), 0u);
        in_range[c] = count_chunk<scalar_t>(x, f, c * chunks.rows, std::min(N, (c + 1) * chunks.rows),
                                            D, K, specs, num_classes, hists[c].data());
      }
    });
  });
  if (!std::all_of(in_range.begin(), in_range.end(), [](char ok) { return ok != 0; })) {
    const auto [mn, mx] = at::aminmax(factors);
    TORCH_CHECK(false, factor_range_message(num_classes, mn.item<int64_t>(), mx.item<int64_t>()));
  }

  int64_t* out = counts.mutable_data_ptr<int64_t>();
  at::parallel_for(0, total, kMinChunkWork / chunks.count, [&](int64_t i0, int64_t i1) {
    for (const auto& h : hists)
      for (int64_t i = i0; i < i1; ++i) out[i] += h[i];
  });
  return {counts, lo, hi};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(vaebench, m) {
  // counts[d, k, b, c]: samples whose latent d falls in numpy's equal-width bin b
  // (np.digitize(x, np.histogram(x, num_bins)[1][:-1]) - 1, in float64) and whose
  // factor k has class c: int64 [D, K, num_bins, num_classes]. lo, hi: each latent
  // dimension's min and max, float64 [D] (np.histogram widens a constant one by 0.5).
  m.def(
      "mig_histogram(Tensor latents, Tensor factors, int num_bins, int num_classes) "
      "-> (Tensor counts, Tensor lo, Tensor hi)");
}

TORCH_LIBRARY_IMPL(vaebench, CPU, m) { m.impl("mig_histogram", &mig_histogram_cpu); }

}  // namespace vaebench
