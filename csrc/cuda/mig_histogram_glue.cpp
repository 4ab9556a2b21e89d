// Registers the CUDA kernel of vaebench::mig_histogram (compiled only in CUDA
// builds). Checks and numpy's outer edges come from the shared header; the
// kernel itself is the torch-free launcher in mig_histogram.cu.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <tuple>

#include "cuda/mig_histogram.h"
#include "mig_histogram_checks.h"

namespace vaebench {
namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor> mig_histogram_cuda(const at::Tensor& latents_in,
                                                                  const at::Tensor& factors_in,
                                                                  int64_t num_bins,
                                                                  int64_t num_classes) {
  const c10::cuda::CUDAGuard guard(latents_in.device());
  at::Tensor latents, factors;
  std::tie(latents, factors) = prepare_mig_histogram(latents_in, factors_in, num_bins, num_classes);
  const int64_t N = latents.size(0), D = latents.size(1), K = factors.size(1);
  at::Tensor counts = at::zeros({D, K, num_bins, num_classes}, factors.options());
  if (D == 0) {
    const at::Tensor none = at::empty({0}, latents.options().dtype(at::kDouble));
    return {counts, none, none.clone()};
  }
  if (K > 0) {
    const auto [mn, mx] = at::aminmax(factors);
    const int64_t lo_c = mn.item<int64_t>(), hi_c = mx.item<int64_t>();
    TORCH_CHECK(lo_c >= 0 && hi_c < num_classes, factor_range_message(num_classes, lo_c, hi_c));
  }
  auto [lo, hi] = at::aminmax(latents, /*dim=*/0);  // exact: min/max do not round
  lo = lo.to(at::kDouble);
  hi = hi.to(at::kDouble);
  const auto [first, last] = numpy_outer_edges(lo, hi);
  if (K == 0) return {counts, lo, hi};
  auto* out = reinterpret_cast<unsigned long long*>(counts.mutable_data_ptr<int64_t>());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const int64_t* f = factors.const_data_ptr<int64_t>();
  const double* e0 = first.const_data_ptr<double>();
  const double* e1 = last.const_data_ptr<double>();
  const auto bins = static_cast<int32_t>(num_bins);
  if (latents.scalar_type() == at::kDouble) {
    C10_CUDA_CHECK(launch_mig_histogram(latents.const_data_ptr<double>(), f, N, D, K, e0, e1, bins,
                                        num_classes, out, stream));
  } else {
    C10_CUDA_CHECK(launch_mig_histogram(latents.const_data_ptr<float>(), f, N, D, K, e0, e1, bins,
                                        num_classes, out, stream));
  }
  return {counts, lo, hi};
}

}  // namespace

TORCH_LIBRARY_IMPL(vaebench, CUDA, m) { m.impl("mig_histogram", &mig_histogram_cuda); }

}  // namespace vaebench
