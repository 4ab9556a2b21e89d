// CPU kernels of the fused reparameterized sample + analytic KL, and of the
// Philox normal stream they draw from. The math is in the shared headers and
// the tiled loops in sample_rows.h; this file dispatches on dtype.
#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <vector>

#include "vaebench/philox.h"
#include "vaebench/reparam_kl.h"
#include "output_cache.h"
#include "reparam_kl_checks.h"  // csrc/
#include "sample_rows.h"

namespace vaebench {
namespace {

using cpu::kTileElems;
using cpu::normals_into;

std::tuple<at::Tensor, at::Tensor> reparam_kl_cpu(const at::Tensor& mu_in,
                                                  const at::Tensor& logvar_in, int64_t seed,
                                                  int64_t offset) {
  check_reparam_inputs(mu_in, logvar_in, offset);
  const at::Tensor mu = mu_in.contiguous();
  const at::Tensor logvar = logvar_in.contiguous();
  const int64_t rows = mu.size(0), cols = mu.size(1);
  at::Tensor z = empty_output(mu.sizes(), mu.options());
  at::Tensor kl = at::empty({rows}, mu.options());
  if (rows == 0) return {z, kl};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, mu.scalar_type(), "reparam_kl_cpu", [&] {
    cpu::sample_forward(mu.const_data_ptr<scalar_t>(), logvar.const_data_ptr<scalar_t>(),
                        z.mutable_data_ptr<scalar_t>(), kl.mutable_data_ptr<scalar_t>(), rows, cols,
                        philox_key(static_cast<uint64_t>(seed)), static_cast<uint64_t>(offset),
                        [](auto m, auto lv, float eps) { return reparam_kl_forward(m, lv, eps); });
  });
  return {z, kl};
}

std::tuple<at::Tensor, at::Tensor> reparam_kl_backward_cpu(
    const at::Tensor& grad_z_in, const at::Tensor& grad_kl_in, const at::Tensor& mu_in,
    const at::Tensor& logvar_in, int64_t seed, int64_t offset) {
  check_reparam_inputs(mu_in, logvar_in, offset);
  check_reparam_grads(grad_z_in, grad_kl_in, mu_in);
  const at::Tensor gz = grad_z_in.contiguous();
  const at::Tensor gk = grad_kl_in.contiguous();
  const at::Tensor mu = mu_in.contiguous();
  const at::Tensor logvar = logvar_in.contiguous();
  const int64_t rows = mu.size(0), cols = mu.size(1);
  at::Tensor dmu = empty_output(mu.sizes(), mu.options());
  at::Tensor dlogvar = empty_output(mu.sizes(), mu.options());
  if (rows == 0) return {dmu, dlogvar};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, mu.scalar_type(), "reparam_kl_backward_cpu", [&] {
    cpu::sample_backward(
        gz.const_data_ptr<scalar_t>(), gk.const_data_ptr<scalar_t>(), mu.const_data_ptr<scalar_t>(),
        logvar.const_data_ptr<scalar_t>(), dmu.mutable_data_ptr<scalar_t>(),
        dlogvar.mutable_data_ptr<scalar_t>(), rows, cols,
        philox_key(static_cast<uint64_t>(seed)), static_cast<uint64_t>(offset),
        [](auto gzv, auto g, auto m, auto lv, float eps) { return reparam_kl_backward(gzv, g, m, lv, eps); });
  });
  return {dmu, dlogvar};
}

void philox_normal_cpu(const at::Tensor& out, int64_t seed, int64_t offset) {
  check_philox_out(out, offset);
  const int64_t n = out.numel();
  if (n == 0) return;
  float* dst = out.mutable_data_ptr<float>();
  const PhiloxKey key = philox_key(static_cast<uint64_t>(seed));
  at::parallel_for(0, n, kTileElems, [&](int64_t i0, int64_t i1) {
    std::vector<float> scratch(static_cast<size_t>(kTileElems + 8));
    for (int64_t t0 = i0; t0 < i1; t0 += kTileElems) {
      const int64_t len = std::min(i1 - t0, kTileElems);
      const float* eps = normals_into(scratch.data(), static_cast<uint64_t>(offset + t0), len, key);
      std::copy(eps, eps + len, dst + t0);
    }
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(vaebench, CPU, m) {
  m.impl("reparam_kl", &reparam_kl_cpu);
  m.impl("reparam_kl_backward", &reparam_kl_backward_cpu);
  m.impl("philox_normal_", &philox_normal_cpu);
}

}  // namespace vaebench
