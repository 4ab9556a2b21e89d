// Torch-free launchers of the reparam+KL CUDA kernels (raw pointers and a
// stream), so the .cu compiles with plain nvcc; reparam_kl_glue.cpp adapts them
// to torch tensors.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace vaebench {
namespace cuda {

enum class Dtype : int { kFloat16, kBFloat16, kFloat32, kFloat64 };

// z[rows, cols] and kl[rows] from mu, logvar with the Philox normals at
// positions [offset, offset + rows * cols) of seed.
void reparam_kl_forward(Dtype dtype, const void* mu, const void* logvar, void* z, void* kl,
                        int64_t rows, int64_t cols, uint64_t seed, uint64_t offset,
                        cudaStream_t stream);

// dmu, dlogvar from the upstream gradients grad_z[rows, cols] and grad_kl[rows].
void reparam_kl_backward(Dtype dtype, const void* grad_z, const void* grad_kl, const void* mu,
                         const void* logvar, void* dmu, void* dlogvar, int64_t rows, int64_t cols,
                         uint64_t seed, uint64_t offset, cudaStream_t stream);

// out[0, n) = Philox normals at positions [offset, offset + n).
void philox_normal(float* out, int64_t n, uint64_t seed, uint64_t offset, cudaStream_t stream);

}  // namespace cuda
}  // namespace vaebench
