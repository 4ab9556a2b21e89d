// Registers the CUDA kernels of the reparam+KL ops with torch (CUDA builds only).
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "cuda/reparam_kl.h"
#include "cuda/torch_dtype.h"
#include "reparam_kl_checks.h"

namespace vaebench {
namespace {

std::tuple<at::Tensor, at::Tensor> reparam_kl_cuda(const at::Tensor& mu_in,
                                                   const at::Tensor& logvar_in, int64_t seed,
                                                   int64_t offset) {
  check_reparam_inputs(mu_in, logvar_in, offset);
  const c10::cuda::CUDAGuard guard(mu_in.device());
  const at::Tensor mu = mu_in.contiguous();
  const at::Tensor logvar = logvar_in.contiguous();
  at::Tensor z = at::empty_like(mu);
  at::Tensor kl = at::empty({mu.size(0)}, mu.options());
  cuda::reparam_kl_forward(to_cuda_dtype(mu.scalar_type(), "reparam_kl"), mu.const_data_ptr(),
                           logvar.const_data_ptr(), z.mutable_data_ptr(), kl.mutable_data_ptr(),
                           mu.size(0), mu.size(1), static_cast<uint64_t>(seed),
                           static_cast<uint64_t>(offset), c10::cuda::getCurrentCUDAStream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {z, kl};
}

std::tuple<at::Tensor, at::Tensor> reparam_kl_backward_cuda(
    const at::Tensor& grad_z_in, const at::Tensor& grad_kl_in, const at::Tensor& mu_in,
    const at::Tensor& logvar_in, int64_t seed, int64_t offset) {
  check_reparam_inputs(mu_in, logvar_in, offset);
  check_reparam_grads(grad_z_in, grad_kl_in, mu_in);
  const c10::cuda::CUDAGuard guard(mu_in.device());
  const at::Tensor gz = grad_z_in.contiguous();
  const at::Tensor gk = grad_kl_in.contiguous();
  const at::Tensor mu = mu_in.contiguous();
  const at::Tensor logvar = logvar_in.contiguous();
  at::Tensor dmu = at::empty_like(mu);
  at::Tensor dlogvar = at::empty_like(mu);
  cuda::reparam_kl_backward(to_cuda_dtype(mu.scalar_type(), "reparam_kl"), gz.const_data_ptr(),
                            gk.const_data_ptr(), mu.const_data_ptr(), logvar.const_data_ptr(),
                            dmu.mutable_data_ptr(), dlogvar.mutable_data_ptr(), mu.size(0),
                            mu.size(1), static_cast<uint64_t>(seed), static_cast<uint64_t>(offset),
                            c10::cuda::getCurrentCUDAStream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {dmu, dlogvar};
}

void philox_normal_cuda(const at::Tensor& out, int64_t seed, int64_t offset) {
  check_philox_out(out, offset);
  const c10::cuda::CUDAGuard guard(out.device());
  cuda::philox_normal(out.mutable_data_ptr<float>(), out.numel(), static_cast<uint64_t>(seed),
                      static_cast<uint64_t>(offset), c10::cuda::getCurrentCUDAStream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace

TORCH_LIBRARY_IMPL(vaebench, CUDA, m) {
  m.impl("reparam_kl", &reparam_kl_cuda);
  m.impl("reparam_kl_backward", &reparam_kl_backward_cuda);
  m.impl("philox_normal_", &philox_normal_cuda);
}

}  // namespace vaebench
