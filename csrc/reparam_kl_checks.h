// Argument checks shared by the CPU and CUDA entry points of the reparam+KL
// ops. The Python wrappers check first with friendlier messages; these guard
// direct torch.ops calls.
#pragma once

#include <ATen/ATen.h>

namespace vaebench {

inline void check_reparam_inputs(const at::Tensor& mu, const at::Tensor& logvar, int64_t offset) {
  TORCH_CHECK(mu.dim() == 2, "reparam_kl: mu must be 2-D [B, D], got shape ", mu.sizes());
  TORCH_CHECK(logvar.sizes() == mu.sizes(), "reparam_kl: logvar must have mu's shape ",
              mu.sizes(), ", got ", logvar.sizes());
  TORCH_CHECK(at::isFloatingType(mu.scalar_type()),
              "reparam_kl: mu must be a floating tensor, got ", mu.scalar_type());
  TORCH_CHECK(logvar.scalar_type() == mu.scalar_type(), "reparam_kl: logvar must have mu's dtype ",
              mu.scalar_type(), ", got ", logvar.scalar_type());
  TORCH_CHECK(logvar.device() == mu.device(), "reparam_kl: logvar must be on mu's device ",
              mu.device(), ", got ", logvar.device());
  TORCH_CHECK(offset >= 0, "reparam_kl: offset must be >= 0, got ", offset);
}

inline void check_reparam_grads(const at::Tensor& grad_z, const at::Tensor& grad_kl,
                                const at::Tensor& mu) {
  TORCH_CHECK(grad_z.sizes() == mu.sizes() && grad_z.scalar_type() == mu.scalar_type() &&
                  grad_z.device() == mu.device(),
              "reparam_kl_backward: grad_z must match mu (shape ", mu.sizes(), ", dtype ",
              mu.scalar_type(), ")");
  TORCH_CHECK(grad_kl.dim() == 1 && grad_kl.size(0) == mu.size(0) &&
                  grad_kl.scalar_type() == mu.scalar_type() && grad_kl.device() == mu.device(),
              "reparam_kl_backward: grad_kl must be [B] = [", mu.size(0), "] of mu's dtype");
}

inline void check_philox_out(const at::Tensor& out, int64_t offset) {
  TORCH_CHECK(out.scalar_type() == at::kFloat, "philox_normal_: out must be float32, got ",
              out.scalar_type());
  TORCH_CHECK(out.is_contiguous(), "philox_normal_: out must be contiguous");
  TORCH_CHECK(offset >= 0, "philox_normal_: offset must be >= 0, got ", offset);
}

}  // namespace vaebench
