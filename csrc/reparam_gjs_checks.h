// Argument checks shared by the CPU and CUDA entry points of the reparam+GJS
// ops (and the emulated build), on top of the reparam+KL ones. The Python
// wrapper checks shapes, dtypes and devices first with friendlier messages;
// alpha's value is checked only here.
#pragma once

#include <ATen/ATen.h>

#include "reparam_kl_checks.h"

namespace vaebench {

// alpha must be a 0-dim floating tensor on mu's device, its value in [0, 1]
// (NaN is not); returns the value. On CUDA reading it is a copy of one number
// to the host, which waits for whatever produces alpha on the stream.
inline double checked_gjs_alpha(const at::Tensor& alpha, const at::Tensor& mu, const char* op) {
  TORCH_CHECK(alpha.dim() == 0, op, ": alpha must be a 0-dim (scalar) tensor, got shape ",
              alpha.sizes());
  TORCH_CHECK(at::isFloatingType(alpha.scalar_type()), op,
              ": alpha must be a floating tensor, got ", alpha.scalar_type());
  TORCH_CHECK(alpha.device() == mu.device(), op, ": alpha must be on mu's device ", mu.device(),
              ", got ", alpha.device());
  const double a = alpha.item<double>();
  TORCH_CHECK_VALUE(a >= 0.0 && a <= 1.0, op, ": alpha must be in [0, 1], got ", a);
  return a;
}

}  // namespace vaebench
