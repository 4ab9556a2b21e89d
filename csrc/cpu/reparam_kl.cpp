// CPU kernels of the fused reparameterized sample + analytic KL, and of the
// Philox normal stream they draw from. The math is in the shared headers; this
// file only tiles the work, parallelises over rows and dispatches on dtype.
#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <vector>

#include "vaebench/philox.h"
#include "vaebench/reparam_kl.h"
#include "output_cache.h"
#include "reparam_kl_checks.h"  // csrc/

namespace vaebench {
namespace {

// Elements per tile: the noise of a tile is generated into a small buffer
// (vectorised over Philox blocks), then consumed by the elementwise loop.
constexpr int64_t kTileElems = 4096;

// Fills out[0, n) with the normals at stream positions [p0, p0 + n). `scratch`
// must hold n + 8 floats; the returned pointer (into scratch) holds the result.
const float* normals_into(float* scratch, uint64_t p0, int64_t n, PhiloxKey key) {
  const uint64_t g0 = p0 >> 2;
  const int64_t blocks = static_cast<int64_t>(((p0 + static_cast<uint64_t>(n) + 3) >> 2) - g0);
#pragma omp simd
  for (int64_t g = 0; g < blocks; ++g) {
    const F32x4 v = normal_block(g0 + static_cast<uint64_t>(g), key);
    scratch[4 * g + 0] = v.n0;
    scratch[4 * g + 1] = v.n1;
    scratch[4 * g + 2] = v.n2;
    scratch[4 * g + 3] = v.n3;
  }
  return scratch + (p0 & 3u);
}

// Runs body(row_begin, row_end, eps) over tiles of whole rows (or one row when
// a row is longer than a tile), eps holding the tile's noise in row-major order.
template <typename Body>
void for_each_noise_tile(int64_t rows, int64_t cols, uint64_t offset, PhiloxKey key,
                         const Body& body) {
  const int64_t rows_per_tile = std::max<int64_t>(1, kTileElems / std::max<int64_t>(cols, 1));
  at::parallel_for(0, rows, rows_per_tile, [&](int64_t r0, int64_t r1) {
    std::vector<float> scratch(static_cast<size_t>(rows_per_tile * cols + 8));
    for (int64_t t0 = r0; t0 < r1; t0 += rows_per_tile) {
      const int64_t t1 = std::min(r1, t0 + rows_per_tile);
      const float* eps = normals_into(scratch.data(), offset + static_cast<uint64_t>(t0 * cols),
                                      (t1 - t0) * cols, key);
      body(t0, t1, eps);
    }
  });
}

// The tile loops read their pointers from locals marked __restrict__: read
// through the lambda's captured references, every store could (for the
// compiler) change a pointer, and the loops would not vectorise.
template <typename scalar_t>
void forward_kernel(const scalar_t* mu_, const scalar_t* logvar_, scalar_t* z_, scalar_t* kl_,
                    int64_t rows, int64_t cols, PhiloxKey key, uint64_t offset) {
  using acc_t = at::opmath_type<scalar_t>;
  for_each_noise_tile(rows, cols, offset, key, [=](int64_t r0, int64_t r1, const float* eps) {
    const scalar_t* __restrict__ mu = mu_;
    const scalar_t* __restrict__ logvar = logvar_;
    scalar_t* __restrict__ z = z_;
    scalar_t* __restrict__ kl = kl_;
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t base = r * cols;
      const float* e = eps + (r - r0) * cols;
      acc_t acc = 0;
#pragma omp simd reduction(+ : acc)
      for (int64_t c = 0; c < cols; ++c) {
        const auto out = reparam_kl_forward<acc_t>(static_cast<acc_t>(mu[base + c]),
                                                   static_cast<acc_t>(logvar[base + c]), e[c]);
        z[base + c] = static_cast<scalar_t>(out.z);
        acc += out.kl_term;
      }
      kl[r] = static_cast<scalar_t>(acc);
    }
  });
}

template <typename scalar_t>
void backward_kernel(const scalar_t* gz_, const scalar_t* gk_, const scalar_t* mu_,
                     const scalar_t* logvar_, scalar_t* dmu_, scalar_t* dlogvar_, int64_t rows,
                     int64_t cols, PhiloxKey key, uint64_t offset) {
  using acc_t = at::opmath_type<scalar_t>;
  for_each_noise_tile(rows, cols, offset, key, [=](int64_t r0, int64_t r1, const float* eps) {
    const scalar_t* __restrict__ gz = gz_;
    const scalar_t* __restrict__ gk = gk_;
    const scalar_t* __restrict__ mu = mu_;
    const scalar_t* __restrict__ logvar = logvar_;
    scalar_t* __restrict__ dmu = dmu_;
    scalar_t* __restrict__ dlogvar = dlogvar_;
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t base = r * cols;
      const float* e = eps + (r - r0) * cols;
      const acc_t g = static_cast<acc_t>(gk[r]);
#pragma omp simd
      for (int64_t c = 0; c < cols; ++c) {
        const auto out = reparam_kl_backward<acc_t>(
            static_cast<acc_t>(gz[base + c]), g, static_cast<acc_t>(mu[base + c]),
            static_cast<acc_t>(logvar[base + c]), e[c]);
        dmu[base + c] = static_cast<scalar_t>(out.dmu);
        dlogvar[base + c] = static_cast<scalar_t>(out.dlogvar);
      }
    }
  });
}

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
    forward_kernel<scalar_t>(mu.const_data_ptr<scalar_t>(), logvar.const_data_ptr<scalar_t>(),
                             z.mutable_data_ptr<scalar_t>(), kl.mutable_data_ptr<scalar_t>(), rows,
                             cols, philox_key(static_cast<uint64_t>(seed)),
                             static_cast<uint64_t>(offset));
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
    backward_kernel<scalar_t>(gz.const_data_ptr<scalar_t>(), gk.const_data_ptr<scalar_t>(),
                              mu.const_data_ptr<scalar_t>(), logvar.const_data_ptr<scalar_t>(),
                              dmu.mutable_data_ptr<scalar_t>(), dlogvar.mutable_data_ptr<scalar_t>(),
                              rows, cols, philox_key(static_cast<uint64_t>(seed)),
                              static_cast<uint64_t>(offset));
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
