// Registers the CUDA kernels of the reparam+GJS ops with torch (CUDA builds only).
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "cuda/reparam_gjs.h"
#include "cuda/torch_dtype.h"
#include "reparam_gjs_checks.h"

namespace vaebench {
namespace {

std::tuple<at::Tensor, at::Tensor> reparam_gjs_cuda(const at::Tensor& mu_in, const at::Tensor& logvar_in,
                                                    const at::Tensor& alpha, bool dual, int64_t seed,
                                                    int64_t offset) {
  check_reparam_inputs(mu_in, logvar_in, offset, "reparam_gjs");
  const double a = checked_gjs_alpha(alpha, mu_in, "reparam_gjs");
  const c10::cuda::CUDAGuard guard(mu_in.device());
  const at::Tensor mu = mu_in.contiguous();
  const at::Tensor logvar = logvar_in.contiguous();
  at::Tensor z = at::empty_like(mu);
  at::Tensor div = at::empty({mu.size(0)}, mu.options());
  cuda::reparam_gjs_forward(to_cuda_dtype(mu.scalar_type(), "reparam_gjs"), dual, a, mu.const_data_ptr(),
                            logvar.const_data_ptr(), z.mutable_data_ptr(), div.mutable_data_ptr(), mu.size(0),
                            mu.size(1), static_cast<uint64_t>(seed), static_cast<uint64_t>(offset),
                            c10::cuda::getCurrentCUDAStream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {z, div};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> reparam_gjs_backward_cuda(
    const at::Tensor& grad_z_in, const at::Tensor& grad_div_in, const at::Tensor& mu_in,
    const at::Tensor& logvar_in, const at::Tensor& alpha, bool dual, int64_t seed, int64_t offset) {
  check_reparam_inputs(mu_in, logvar_in, offset, "reparam_gjs_backward");
  check_reparam_grads(grad_z_in, grad_div_in, mu_in, "reparam_gjs_backward", "grad_div");
  const double a = checked_gjs_alpha(alpha, mu_in, "reparam_gjs_backward");
  const c10::cuda::CUDAGuard guard(mu_in.device());
  const at::Tensor gz = grad_z_in.contiguous();
  const at::Tensor gd = grad_div_in.contiguous();
  const at::Tensor mu = mu_in.contiguous();
  const at::Tensor logvar = logvar_in.contiguous();
  at::Tensor dmu = at::empty_like(mu);
  at::Tensor dlogvar = at::empty_like(mu);
  const auto acc = mu.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor alpha_rows = at::empty({mu.size(0)}, mu.options().dtype(acc));
  cuda::reparam_gjs_backward(to_cuda_dtype(mu.scalar_type(), "reparam_gjs"), dual, a, gz.const_data_ptr(),
                             gd.const_data_ptr(), mu.const_data_ptr(), logvar.const_data_ptr(),
                             dmu.mutable_data_ptr(), dlogvar.mutable_data_ptr(), alpha_rows.mutable_data_ptr(),
                             mu.size(0), mu.size(1), static_cast<uint64_t>(seed), static_cast<uint64_t>(offset),
                             c10::cuda::getCurrentCUDAStream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  // alpha's gradient: the rows' shares added up in float64 (torch's reduction, deterministic).
  return {dmu, dlogvar, alpha_rows.sum(at::kDouble).to(alpha.scalar_type())};
}

}  // namespace

TORCH_LIBRARY_IMPL(vaebench, CUDA, m) {
  m.impl("reparam_gjs", &reparam_gjs_cuda);
  m.impl("reparam_gjs_backward", &reparam_gjs_backward_cuda);
}

}  // namespace vaebench
