// Torch-free launchers of the pairwise Gaussian log-density CUDA kernels (raw
// pointers, a caller-provided workspace and a stream), so the .cu compiles with
// plain nvcc; gaussian_logdensity_glue.cpp adapts them to torch tensors.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "reparam_kl.h"  // cuda::Dtype

namespace vaebench {
namespace cuda {

// Bytes of device workspace the forward (backward = false) or backward launcher needs.
size_t gaussian_logdensity_workspace_bytes(Dtype dtype, int64_t B, int64_t M, int64_t D, bool backward);

// joint[B] and marginal[B, D] of z[B, D] under mu, logvar [M, D] (see
// csrc/include/vaebench/gaussian_logdensity.h), all of `dtype`.
void gaussian_logdensity_forward(Dtype dtype, const void* z, const void* mu, const void* logvar, void* joint,
                                 void* marginal, int64_t B, int64_t M, int64_t D, void* workspace,
                                 cudaStream_t stream);

// grad_z[B, D], grad_mu[M, D], grad_logvar[M, D] from grad_joint[B], grad_marginal[B, D] and the
// forward's inputs and outputs.
void gaussian_logdensity_backward(Dtype dtype, const void* grad_joint, const void* grad_marginal, const void* z,
                                  const void* mu, const void* logvar, const void* joint, const void* marginal,
                                  void* grad_z, void* grad_mu, void* grad_logvar, int64_t B, int64_t M, int64_t D,
                                  void* workspace, cudaStream_t stream);

}  // namespace cuda
}  // namespace vaebench
