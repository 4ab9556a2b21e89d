// Torch-free launcher of the CUDA MIG joint-histogram kernel (see
// mig_histogram.cu); csrc/cuda/mig_histogram_glue.cpp calls it.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace vaebench {

// counts[d, k, b, c] += #{n : bin_d(x[n, d]) == b, f[n, k] == c} for row-major
// x [N, D], f [N, K] (classes in [0, C)); lo/hi [D] are numpy's outer edges
// (device memory, float64). counts [D, K, bins, C] must be zeroed by the caller.
cudaError_t launch_mig_histogram(const float* x, const int64_t* f, int64_t N, int64_t D,
                                 int64_t K, const double* lo, const double* hi, int32_t bins,
                                 int64_t C, unsigned long long* counts, cudaStream_t stream);
cudaError_t launch_mig_histogram(const double* x, const int64_t* f, int64_t N, int64_t D,
                                 int64_t K, const double* lo, const double* hi, int32_t bins,
                                 int64_t C, unsigned long long* counts, cudaStream_t stream);

}  // namespace vaebench
