// Argument checks shared by the CPU and CUDA entry points of the reparam+KL
// ops. The Python wrappers check first with friendlier messages; these guard
// direct torch.ops calls.
#pragma once

#include <ATen/ATen.h>

namespace vaebench {

// `op` names the caller in the messages (reparam_kl, reparam_gjs).
inline void check_reparam_inputs(const at::Tensor& mu, const at::Tensor& logvar, int64_t offset,
                                 const char* op = "reparam_kl") {
  TORCH_CHECK(mu.dim() == 2, op, ": mu must be 2-D [B, D], got shape ", mu.sizes());
  TORCH_CHECK(logvar.sizes() == mu.sizes(), op, ": logvar must have mu's shape ", mu.sizes(),
              ", got ", logvar.sizes());
  TORCH_CHECK(at::isFloatingType(mu.scalar_type()), op, ": mu must be a floating tensor, got ",
              mu.scalar_type());
  TORCH_CHECK(logvar.scalar_type() == mu.scalar_type(), op, ": logvar must have mu's dtype ",
              mu.scalar_type(), ", got ", logvar.scalar_type());
  TORCH_CHECK(logvar.device() == mu.device(), op, ": logvar must be on mu's device ", mu.device(),
              ", got ", logvar.device());
  TORCH_CHECK(offset >= 0, op, ": offset must be >= 0, got ", offset);
}

// grad_row: the gradient of the per-row output (kl, or reparam_gjs's div), named `row`.
inline void check_reparam_grads(const at::Tensor& grad_z, const at::Tensor& grad_row,
                                const at::Tensor& mu, const char* op = "reparam_kl_backward",
                                const char* row = "grad_kl") {
  TORCH_CHECK(grad_z.sizes() == mu.sizes() && grad_z.scalar_type() == mu.scalar_type() &&
                  grad_z.device() == mu.device(),
              op, ": grad_z must match mu (shape ", mu.sizes(), ", dtype ", mu.scalar_type(), ")");
  TORCH_CHECK(grad_row.dim() == 1 && grad_row.size(0) == mu.size(0) &&
                  grad_row.scalar_type() == mu.scalar_type() && grad_row.device() == mu.device(),
              op, ": ", row, " must be [B] = [", mu.size(0), "] of mu's dtype");
}

inline void check_philox_out(const at::Tensor& out, int64_t offset) {
  TORCH_CHECK(out.scalar_type() == at::kFloat, "philox_normal_: out must be float32, got ",
              out.scalar_type());
  TORCH_CHECK(out.is_contiguous(), "philox_normal_: out must be contiguous");
  TORCH_CHECK(offset >= 0, "philox_normal_: offset must be >= 0, got ", offset);
}

}  // namespace vaebench
