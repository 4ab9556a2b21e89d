// CPU kernels of the fused reparameterized sample + skew-geometric
// Jensen-Shannon divergence to N(0, I). The math is in
// include/vaebench/gjs.h and the loops are sample_rows.h's flat ones (over
// reparam_kl's noise tiles, so z is the same bits); this file dispatches on
// dtype and on plain / dual.
#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include <type_traits>
#include <vector>

#include "vaebench/gjs.h"
#include "vaebench/philox.h"
#include "output_cache.h"
#include "reparam_gjs_checks.h"  // csrc/
#include "sample_rows.h"

namespace vaebench {
namespace {

template <typename F>
void with_dual(bool dual, const F& f) {
  if (dual) {
    f(std::true_type{});
  } else {
    f(std::false_type{});
  }
}

std::tuple<at::Tensor, at::Tensor> reparam_gjs_cpu(const at::Tensor& mu_in,
                                                   const at::Tensor& logvar_in,
                                                   const at::Tensor& alpha, bool dual,
                                                   int64_t seed, int64_t offset) {
  check_reparam_inputs(mu_in, logvar_in, offset, "reparam_gjs");
  const double a = checked_gjs_alpha(alpha, mu_in, "reparam_gjs");
  const at::Tensor mu = mu_in.contiguous();
  const at::Tensor logvar = logvar_in.contiguous();
  const int64_t rows = mu.size(0), cols = mu.size(1);
  at::Tensor z = empty_output(mu.sizes(), mu.options());
  at::Tensor div = at::empty({rows}, mu.options());
  if (rows == 0) return {z, div};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, mu.scalar_type(), "reparam_gjs_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto av = static_cast<acc_t>(a);
    with_dual(dual, [&](auto d) {
      constexpr bool kDual = decltype(d)::value;
      cpu::sample_forward_flat(mu.const_data_ptr<scalar_t>(), logvar.const_data_ptr<scalar_t>(),
                          z.mutable_data_ptr<scalar_t>(), div.mutable_data_ptr<scalar_t>(), rows,
                          cols, philox_key(static_cast<uint64_t>(seed)),
                          static_cast<uint64_t>(offset), [av](acc_t m, acc_t lv, float eps) {
                            return reparam_gjs_forward<kDual>(m, lv, av, eps);
                          });
    });
  });
  return {z, div};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> reparam_gjs_backward_cpu(
    const at::Tensor& grad_z_in, const at::Tensor& grad_div_in, const at::Tensor& mu_in,
    const at::Tensor& logvar_in, const at::Tensor& alpha, bool dual, int64_t seed,
    int64_t offset) {
  check_reparam_inputs(mu_in, logvar_in, offset, "reparam_gjs_backward");
  check_reparam_grads(grad_z_in, grad_div_in, mu_in, "reparam_gjs_backward", "grad_div");
  const double a = checked_gjs_alpha(alpha, mu_in, "reparam_gjs_backward");
  const at::Tensor gz = grad_z_in.contiguous();
  const at::Tensor gd = grad_div_in.contiguous();
  const at::Tensor mu = mu_in.contiguous();
  const at::Tensor logvar = logvar_in.contiguous();
  const int64_t rows = mu.size(0), cols = mu.size(1);
  at::Tensor dmu = empty_output(mu.sizes(), mu.options());
  at::Tensor dlogvar = empty_output(mu.sizes(), mu.options());
  double dalpha = 0.0;
  if (rows > 0) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, mu.scalar_type(), "reparam_gjs_backward_cpu", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      const auto av = static_cast<acc_t>(a);
      std::vector<acc_t> row_sums(static_cast<size_t>(rows));
      with_dual(dual, [&](auto d) {
        constexpr bool kDual = decltype(d)::value;
        cpu::sample_backward_flat(
            gz.const_data_ptr<scalar_t>(), gd.const_data_ptr<scalar_t>(),
            mu.const_data_ptr<scalar_t>(), logvar.const_data_ptr<scalar_t>(),
            dmu.mutable_data_ptr<scalar_t>(), dlogvar.mutable_data_ptr<scalar_t>(), row_sums.data(),
            rows, cols, philox_key(static_cast<uint64_t>(seed)), static_cast<uint64_t>(offset),
            [av](acc_t gzv, acc_t g, acc_t m, acc_t lv, float eps) {
              return reparam_gjs_backward<kDual>(gzv, g, m, lv, av, eps);
            });
      });
      // alpha's gradient: the rows' sums in row order, in double (whatever the thread count).
      for (const acc_t s : row_sums) dalpha += static_cast<double>(s);
    });
  }
  return {dmu, dlogvar, at::scalar_tensor(dalpha, alpha.options())};
}

}  // namespace

TORCH_LIBRARY_IMPL(vaebench, CPU, m) {
  m.impl("reparam_gjs", &reparam_gjs_cpu);
  m.impl("reparam_gjs_backward", &reparam_gjs_backward_cpu);
}

}  // namespace vaebench
