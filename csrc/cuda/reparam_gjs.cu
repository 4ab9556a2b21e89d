// CUDA kernels of the fused reparam+GJS op. Plain CUDA, no torch headers: the
// math is csrc/include/vaebench/gjs.h (the CPU build's), the kernel the row
// kernel of sample_kernels.h (reparam_kl's forward, so z is the same bits), and
// launch.h lets this file also compile as host C++ for the CPU emulator.
//
// Forward: one pass over mu and logvar; z written, each row's divergence summed
// in a fixed order. Backward: the same kernel over grad_z, mu and logvar,
// recomputing the noise; it writes dmu and dlogvar and sums each row's share of
// alpha's gradient, also in a fixed order (the caller adds the rows up).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "reparam_gjs.h"
#include "sample_kernels.h"
#include "vaebench/gjs.h"
#include "vaebench/philox.h"

namespace vaebench {
namespace cuda {
namespace {

template <typename A, bool Dual>
struct GjsForward {
  A alpha;
  __device__ ReparamForward<A> operator()(A mu, A logvar, float eps) const {
    return ::vaebench::reparam_gjs_forward<Dual>(mu, logvar, alpha, eps);
  }
};

// The backward as a row-kernel op (see sample_kernels.h): its term is the
// element's share of alpha's gradient.
template <typename S, bool Dual>
struct GjsBackward {
  using Acc = typename AccOf<S>::type;
  const S* gz;
  const S* gd;
  const S* mu;
  const S* logvar;
  S* dmu;
  S* dlogvar;
  Acc* alpha_rows;
  Acc alpha;

  __device__ bool aligned(uint64_t offset) const {
    return group_aligned(gz, offset) && group_aligned(mu, offset) && group_aligned(logvar, offset) &&
           group_aligned(dmu, offset) && group_aligned(dlogvar, offset);
  }
  __device__ GjsGrad<Acc> grad(Acc gzv, int64_t r, Acc m, Acc lv, float eps) const {
    return ::vaebench::reparam_gjs_backward<Dual>(gzv, to_acc(gd[r]), m, lv, alpha, eps);
  }
  __device__ void group(int64_t e0, const int64_t (&rows)[4], const F32x4& eps, Acc* t) const {
    S gzv[4], m[4], lv[4], dm[4], dl[4];
    load4(gz + e0, gzv);
    load4(mu + e0, m);
    load4(logvar + e0, lv);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const GjsGrad<Acc> o = grad(to_acc(gzv[j]), rows[j], to_acc(m[j]), to_acc(lv[j]), lane(eps, j));
      dm[j] = from_acc<S>(o.dmu);
      dl[j] = from_acc<S>(o.dlogvar);
      t[j] = o.dalpha;
    }
    store4(dmu + e0, dm);
    store4(dlogvar + e0, dl);
  }
  __device__ Acc element(int64_t e, int64_t r, float eps) const {
    const GjsGrad<Acc> o = grad(to_acc(gz[e]), r, to_acc(mu[e]), to_acc(logvar[e]), eps);
    dmu[e] = from_acc<S>(o.dmu);
    dlogvar[e] = from_acc<S>(o.dlogvar);
    return o.dalpha;
  }
  __device__ void row(int64_t r, Acc s) const { alpha_rows[r] = s; }
};

template <typename S, bool Dual>
void forward_dual(double alpha, const void* mu, const void* logvar, void* z, void* div, int64_t rows,
                  int64_t cols, uint64_t seed, uint64_t offset, cudaStream_t stream) {
  using A = typename AccOf<S>::type;
  const SampleForward<S, GjsForward<A, Dual>> op{static_cast<const S*>(mu), static_cast<const S*>(logvar),
                                                 static_cast<S*>(z), static_cast<S*>(div),
                                                 GjsForward<A, Dual>{static_cast<A>(alpha)}};
  launch_rows(op, rows, cols, seed, offset, stream);
}

template <typename S, bool Dual>
void backward_dual(double alpha, const void* gz, const void* gd, const void* mu, const void* logvar, void* dmu,
                   void* dlogvar, void* alpha_rows, int64_t rows, int64_t cols, uint64_t seed, uint64_t offset,
                   cudaStream_t stream) {
  using A = typename AccOf<S>::type;
  const GjsBackward<S, Dual> op{static_cast<const S*>(gz), static_cast<const S*>(gd), static_cast<const S*>(mu),
                                static_cast<const S*>(logvar), static_cast<S*>(dmu), static_cast<S*>(dlogvar),
                                static_cast<A*>(alpha_rows), static_cast<A>(alpha)};
  launch_rows(op, rows, cols, seed, offset, stream);
}

template <typename S>
void forward_typed(bool dual, double alpha, const void* mu, const void* logvar, void* z, void* div, int64_t rows,
                   int64_t cols, uint64_t seed, uint64_t offset, cudaStream_t stream) {
  (dual ? forward_dual<S, true> : forward_dual<S, false>)(alpha, mu, logvar, z, div, rows, cols, seed, offset,
                                                           stream);
}

template <typename S>
void backward_typed(bool dual, double alpha, const void* gz, const void* gd, const void* mu, const void* logvar,
                    void* dmu, void* dlogvar, void* alpha_rows, int64_t rows, int64_t cols, uint64_t seed,
                    uint64_t offset, cudaStream_t stream) {
  (dual ? backward_dual<S, true> : backward_dual<S, false>)(alpha, gz, gd, mu, logvar, dmu, dlogvar, alpha_rows,
                                                             rows, cols, seed, offset, stream);
}

}  // namespace

void reparam_gjs_forward(Dtype dtype, bool dual, double alpha, const void* mu, const void* logvar, void* z,
                         void* div, int64_t rows, int64_t cols, uint64_t seed, uint64_t offset,
                         cudaStream_t stream) {
  if (rows == 0) return;  // (cols == 0 still runs: div must be zeroed)
  VB_DISPATCH(dtype, forward_typed, dual, alpha, mu, logvar, z, div, rows, cols, seed, offset, stream);
}

void reparam_gjs_backward(Dtype dtype, bool dual, double alpha, const void* grad_z, const void* grad_div,
                          const void* mu, const void* logvar, void* dmu, void* dlogvar, void* alpha_rows,
                          int64_t rows, int64_t cols, uint64_t seed, uint64_t offset, cudaStream_t stream) {
  if (rows == 0) return;  // (cols == 0 still runs: alpha_rows must be zeroed)
  VB_DISPATCH(dtype, backward_typed, dual, alpha, grad_z, grad_div, mu, logvar, dmu, dlogvar, alpha_rows, rows,
              cols, seed, offset, stream);
}

}  // namespace cuda
}  // namespace vaebench
