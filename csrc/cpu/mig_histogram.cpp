// CPU kernel of vaebench::mig_histogram: every (latent dim, factor) joint
// histogram of MIG in one pass over the samples.
//
// counts[d, k, b, c] = #{n : bin of latents[n, d] == b and factors[n, k] == c},
// the bins being numpy's (see vaebench/histogram.h). The rows are split into one
// chunk per thread; each chunk counts into its own private histogram (no
// atomics, no sharing), and the private histograms are summed at the end.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "vaebench/histogram.h"
#include "mig_histogram_checks.h"  // csrc/

namespace vaebench {
namespace {

// Private counts are 32-bit (half the cache footprint); a chunk never holds
// more rows than that can count.
constexpr int64_t kMaxChunkRows = int64_t{1} << 31;

template <typename scalar_t>
void count_chunk(const scalar_t* x, const int64_t* f, int64_t r0, int64_t r1, int64_t D,
                 int64_t K, const std::vector<BinSpec>& specs, int64_t C, uint32_t* hist) {
  const int64_t bins = specs.empty() ? 0 : specs[0].bins;
  const int64_t table = bins * C;  // one (d, k) histogram
  std::vector<int64_t> bin_off(static_cast<size_t>(D)), cls_off(static_cast<size_t>(K));
  for (int64_t r = r0; r < r1; ++r) {
    for (int64_t d = 0; d < D; ++d) {
      const int32_t b = bin_index(specs[d], static_cast<double>(x[r * D + d]));
      bin_off[d] = d * K * table + b * C;
    }
    for (int64_t k = 0; k < K; ++k) cls_off[k] = k * table + f[r * K + k];
    for (int64_t d = 0; d < D; ++d) {
      uint32_t* h = hist + bin_off[d];
      for (int64_t k = 0; k < K; ++k) ++h[cls_off[k]];
    }
  }
}

at::Tensor mig_histogram_cpu(const at::Tensor& latents, const at::Tensor& factors,
                             int64_t num_bins, int64_t num_classes) {
  const MigHistogramInputs in = prepare_mig_histogram(latents, factors, num_bins, num_classes);
  const int64_t N = in.latents.size(0), D = in.latents.size(1), K = in.factors.size(1);
  at::Tensor counts = at::zeros({D, K, num_bins, num_classes}, in.factors.options());
  const int64_t total = counts.numel();
  if (total == 0) return counts;

  std::vector<BinSpec> specs(static_cast<size_t>(D));
  const double* lo = in.lo.const_data_ptr<double>();
  const double* hi = in.hi.const_data_ptr<double>();
  for (int64_t d = 0; d < D; ++d) specs[d] = make_bin_spec(lo[d], hi[d], static_cast<int32_t>(num_bins));

  // Chunks are indexed, not tied to thread ids, so nested or concurrent calls stay safe.
  const int64_t chunks = std::max<int64_t>(
      std::min<int64_t>(at::get_num_threads(), N), (N + kMaxChunkRows - 1) / kMaxChunkRows);
  const int64_t rows = (N + chunks - 1) / chunks;
  std::vector<std::vector<uint32_t>> hists(static_cast<size_t>(chunks));
  const int64_t* f = in.factors.const_data_ptr<int64_t>();
  AT_DISPATCH_FLOATING_TYPES(in.latents.scalar_type(), "mig_histogram_cpu", [&] {
    const scalar_t* x = in.latents.const_data_ptr<scalar_t>();
    at::parallel_for(0, chunks, 1, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) {
        hists[c].assign(static_cast<size_t>(total), 0u);
        count_chunk<scalar_t>(x, f, c * rows, std::min(N, (c + 1) * rows), D, K, specs,
                              num_classes, hists[c].data());
      }
    });
  });

  int64_t* out = counts.mutable_data_ptr<int64_t>();
  at::parallel_for(0, total, 1 << 14, [&](int64_t i0, int64_t i1) {
    for (const auto& h : hists)
      for (int64_t i = i0; i < i1; ++i) out[i] += h[i];
  });
  return counts;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(vaebench, m) {
  // counts[d, k, b, c]: samples whose latent d falls in numpy's equal-width bin b
  // (np.digitize(x, np.histogram(x, num_bins)[1][:-1]) - 1, in float64) and whose
  // factor k has class c. int64 [D, K, num_bins, num_classes].
  m.def("mig_histogram(Tensor latents, Tensor factors, int num_bins, int num_classes) -> Tensor");
}

TORCH_LIBRARY_IMPL(vaebench, CPU, m) { m.impl("mig_histogram", &mig_histogram_cpu); }

}  // namespace vaebench
