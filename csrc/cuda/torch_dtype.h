// torch's scalar type -> the dtype tag of the torch-free CUDA launchers (csrc/cuda/*.h), for
// the torch glue and the emulated build alike.
#pragma once

#include <ATen/ATen.h>

#include "cuda/reparam_kl.h"

namespace vaebench {

inline cuda::Dtype to_cuda_dtype(at::ScalarType t, const char* op) {
  switch (t) {
    case at::kHalf: return cuda::Dtype::kFloat16;
    case at::kBFloat16: return cuda::Dtype::kBFloat16;
    case at::kFloat: return cuda::Dtype::kFloat32;
    case at::kDouble: return cuda::Dtype::kFloat64;
    default: TORCH_CHECK(false, op, ": unsupported dtype ", t);
  }
}

}  // namespace vaebench
