// Argument checks shared by the CPU and CUDA entry points of the pairwise
// Gaussian log-density ops. The Python wrapper checks first with friendlier
// messages; these guard direct torch.ops calls.
#pragma once

#include <ATen/ATen.h>

namespace vaebench {

inline void check_logdensity_inputs(const at::Tensor& z, const at::Tensor& mu, const at::Tensor& logvar) {
  constexpr const char* op = "gaussian_logdensity_lse";
  TORCH_CHECK(z.dim() == 2, op, ": z must be 2-D [B, D], got shape ", z.sizes());
  TORCH_CHECK(mu.dim() == 2, op, ": mu must be 2-D [M, D], got shape ", mu.sizes());
  TORCH_CHECK(logvar.sizes() == mu.sizes(), op, ": logvar must have mu's shape ", mu.sizes(), ", got ",
              logvar.sizes());
  TORCH_CHECK(mu.size(1) == z.size(1), op, ": mu must have z's D = ", z.size(1), " columns, got ", mu.size(1));
  TORCH_CHECK(at::isFloatingType(z.scalar_type()), op, ": z must be a floating tensor, got ", z.scalar_type());
  TORCH_CHECK(mu.scalar_type() == z.scalar_type(), op, ": mu must have z's dtype ", z.scalar_type(), ", got ",
              mu.scalar_type());
  TORCH_CHECK(logvar.scalar_type() == z.scalar_type(), op, ": logvar must have z's dtype ", z.scalar_type(),
              ", got ", logvar.scalar_type());
  TORCH_CHECK(mu.device() == z.device(), op, ": mu must be on z's device ", z.device(), ", got ", mu.device());
  TORCH_CHECK(logvar.device() == z.device(), op, ": logvar must be on z's device ", z.device(), ", got ",
              logvar.device());
}

// The upstream gradients and the saved outputs of the backward op: [B] and [B, D] of z's dtype and device.
inline void check_logdensity_backward(const at::Tensor& grad_joint, const at::Tensor& grad_marginal,
                                      const at::Tensor& z, const at::Tensor& joint, const at::Tensor& marginal) {
  constexpr const char* op = "gaussian_logdensity_lse_backward";
  for (const auto& [t, name, shape] :
       {std::tuple{&grad_joint, "grad_joint", at::IntArrayRef(z.sizes().data(), 1)},
        {&joint, "joint", at::IntArrayRef(z.sizes().data(), 1)},
        {&grad_marginal, "grad_marginal", z.sizes()},
        {&marginal, "marginal", z.sizes()}}) {
    TORCH_CHECK(t->sizes() == shape && t->scalar_type() == z.scalar_type() && t->device() == z.device(), op, ": ",
                name, " must be ", shape, " of z's dtype ", z.scalar_type(), " on ", z.device(), ", got ",
                t->sizes(), " of ", t->scalar_type(), " on ", t->device());
  }
}

}  // namespace vaebench
