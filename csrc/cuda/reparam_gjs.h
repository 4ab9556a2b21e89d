// Torch-free launchers of the reparam+GJS CUDA kernels (raw pointers and a
// stream), so the .cu compiles with plain nvcc; reparam_gjs_glue.cpp adapts them
// to torch tensors.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "reparam_kl.h"  // cuda::Dtype

namespace vaebench {
namespace cuda {

// z[rows, cols] (reparam_kl's, the same bits) and div[rows], the skew-geometric
// Jensen-Shannon divergence (dual: its dual) at skew alpha in [0, 1], from mu,
// logvar with the Philox normals at positions [offset, offset + rows * cols) of seed.
void reparam_gjs_forward(Dtype dtype, bool dual, double alpha, const void* mu, const void* logvar, void* z,
                         void* div, int64_t rows, int64_t cols, uint64_t seed, uint64_t offset,
                         cudaStream_t stream);

// dmu, dlogvar [rows, cols] from the upstream gradients grad_z[rows, cols] and grad_div[rows],
// and alpha_rows[rows]: each row's share of alpha's gradient, in the accumulation type (float;
// double for kFloat64), for the caller to sum.
void reparam_gjs_backward(Dtype dtype, bool dual, double alpha, const void* grad_z, const void* grad_div,
                          const void* mu, const void* logvar, void* dmu, void* dlogvar, void* alpha_rows,
                          int64_t rows, int64_t cols, uint64_t seed, uint64_t offset, cudaStream_t stream);

}  // namespace cuda
}  // namespace vaebench
