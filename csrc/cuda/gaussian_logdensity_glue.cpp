// Registers the CUDA kernels of the pairwise Gaussian log-density ops with torch (CUDA builds only).
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "cuda/gaussian_logdensity.h"
#include "cuda/torch_dtype.h"
#include "gaussian_logdensity_checks.h"

namespace vaebench {
namespace {

at::Tensor workspace_for(const at::Tensor& z, int64_t M, bool backward) {
  const size_t bytes = cuda::gaussian_logdensity_workspace_bytes(to_cuda_dtype(z.scalar_type(), "gaussian_logdensity_lse"),
                                                                 z.size(0), M, z.size(1), backward);
  return at::empty({static_cast<int64_t>(bytes)}, z.options().dtype(at::kByte));
}

std::tuple<at::Tensor, at::Tensor> gaussian_logdensity_lse_cuda(const at::Tensor& z_in, const at::Tensor& mu_in,
                                                               const at::Tensor& logvar_in) {
  check_logdensity_inputs(z_in, mu_in, logvar_in);
  const c10::cuda::CUDAGuard guard(z_in.device());
  const at::Tensor z = z_in.contiguous(), mu = mu_in.contiguous(), logvar = logvar_in.contiguous();
  const int64_t B = z.size(0), D = z.size(1), M = mu.size(0);
  at::Tensor joint = at::empty({B}, z.options());
  at::Tensor marg = at::empty({B, D}, z.options());
  if (B == 0) return {joint, marg};
  at::Tensor ws = workspace_for(z, M, false);
  cuda::gaussian_logdensity_forward(to_cuda_dtype(z.scalar_type(), "gaussian_logdensity_lse"), z.const_data_ptr(),
                                    mu.const_data_ptr(), logvar.const_data_ptr(), joint.mutable_data_ptr(),
                                    marg.mutable_data_ptr(), B, M, D, ws.mutable_data_ptr(),
                                    c10::cuda::getCurrentCUDAStream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {joint, marg};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> gaussian_logdensity_lse_backward_cuda(
    const at::Tensor& grad_joint, const at::Tensor& grad_marginal, const at::Tensor& z_in, const at::Tensor& mu_in,
    const at::Tensor& logvar_in, const at::Tensor& joint, const at::Tensor& marginal) {
  check_logdensity_inputs(z_in, mu_in, logvar_in);
  check_logdensity_backward(grad_joint, grad_marginal, z_in, joint, marginal);
  const c10::cuda::CUDAGuard guard(z_in.device());
  const at::Tensor z = z_in.contiguous(), mu = mu_in.contiguous(), logvar = logvar_in.contiguous();
  const at::Tensor gj = grad_joint.contiguous(), gm = grad_marginal.contiguous();
  const at::Tensor jo = joint.contiguous(), ma = marginal.contiguous();
  const int64_t B = z.size(0), D = z.size(1), M = mu.size(0);
  if (B == 0 || M == 0 || D == 0) return {at::zeros_like(z), at::zeros_like(mu), at::zeros_like(mu)};
  at::Tensor gz = at::empty_like(z), gmu = at::empty_like(mu), glv = at::empty_like(mu);
  at::Tensor ws = workspace_for(z, M, true);
  cuda::gaussian_logdensity_backward(to_cuda_dtype(z.scalar_type(), "gaussian_logdensity_lse"), gj.const_data_ptr(),
                                     gm.const_data_ptr(), z.const_data_ptr(), mu.const_data_ptr(),
                                     logvar.const_data_ptr(), jo.const_data_ptr(), ma.const_data_ptr(),
                                     gz.mutable_data_ptr(), gmu.mutable_data_ptr(), glv.mutable_data_ptr(), B, M, D,
                                     ws.mutable_data_ptr(), c10::cuda::getCurrentCUDAStream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {gz, gmu, glv};
}

}  // namespace

TORCH_LIBRARY_IMPL(vaebench, CUDA, m) {
  m.impl("gaussian_logdensity_lse", &gaussian_logdensity_lse_cuda);
  m.impl("gaussian_logdensity_lse_backward", &gaussian_logdensity_lse_backward_cuda);
}

}  // namespace vaebench
