// Registers the CUDA kernel of vaebench::mig_histogram (compiled only in CUDA
// builds). Checks and numpy's bin ranges come from the shared header; the
// kernel itself is the torch-free launcher in mig_histogram.cu.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "cuda/mig_histogram.h"
#include "mig_histogram_checks.h"

namespace vaebench {
namespace {

at::Tensor mig_histogram_cuda(const at::Tensor& latents, const at::Tensor& factors,
                              int64_t num_bins, int64_t num_classes) {
  const c10::cuda::CUDAGuard guard(latents.device());
  const MigHistogramInputs in = prepare_mig_histogram(latents, factors, num_bins, num_classes);
  const int64_t N = in.latents.size(0), D = in.latents.size(1), K = in.factors.size(1);
  at::Tensor counts = at::zeros({D, K, num_bins, num_classes}, in.factors.options());
  if (counts.numel() == 0) return counts;
  auto* out = reinterpret_cast<unsigned long long*>(counts.mutable_data_ptr<int64_t>());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const int64_t* f = in.factors.const_data_ptr<int64_t>();
  const double* lo = in.lo.const_data_ptr<double>();
  const double* hi = in.hi.const_data_ptr<double>();
  const auto bins = static_cast<int32_t>(num_bins);
  if (in.latents.scalar_type() == at::kDouble) {
    C10_CUDA_CHECK(launch_mig_histogram(in.latents.const_data_ptr<double>(), f, N, D, K, lo, hi,
                                        bins, num_classes, out, stream));
  } else {
    C10_CUDA_CHECK(launch_mig_histogram(in.latents.const_data_ptr<float>(), f, N, D, K, lo, hi,
                                        bins, num_classes, out, stream));
  }
  return counts;
}

}  // namespace

TORCH_LIBRARY_IMPL(vaebench, CUDA, m) { m.impl("mig_histogram", &mig_histogram_cuda); }

}  // namespace vaebench
