// CUDA kernels of the fused reparam+KL op. Plain CUDA, no torch headers: the
// math comes from the same headers the CPU build uses, and launch.h lets this
// very file also compile as host C++ for the CPU emulator (csrc/emu).
//
// Forward: the row kernel of sample_kernels.h (one pass over mu and logvar,
// z written, each row's KL summed in a fixed order). Backward: a thread per
// Philox group, grid-stride, recomputing the noise.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "reparam_kl.h"
#include "sample_kernels.h"
#include "vaebench/philox.h"
#include "vaebench/reparam_kl.h"

namespace vaebench {
namespace cuda {
namespace {

struct KlForward {
  template <typename A>
  __device__ ReparamForward<A> operator()(A mu, A logvar, float eps) const {
    return ::vaebench::reparam_kl_forward<A>(mu, logvar, eps);
  }
};

// ---- kernels --------------------------------------------------------------------

template <typename S>
__global__ void __launch_bounds__(kThreads)
    backward_kernel(const S* __restrict__ gz, const S* __restrict__ gk, const S* __restrict__ mu,
                    const S* __restrict__ logvar, S* __restrict__ dmu, S* __restrict__ dlogvar,
                    int64_t n, int64_t cols, PhiloxKey key, uint64_t offset) {
  using A = typename AccOf<S>::type;
  const bool vec = group_aligned(gz, offset) && group_aligned(mu, offset) && group_aligned(logvar, offset) &&
                   group_aligned(dmu, offset) && group_aligned(dlogvar, offset);
  const Groups gr = groups_of(0, n, offset);
  for (uint64_t g = gr.begin + blockIdx.x * static_cast<uint64_t>(blockDim.x) + threadIdx.x; g < gr.end;
       g += static_cast<uint64_t>(gridDim.x) * blockDim.x) {
    const F32x4 eps = normal_block(g, key);
    const int64_t e0 = group_first(g, offset);
    if (vec && e0 >= 0 && e0 + 4 <= n) {
      S gzv[4], m[4], lv[4], dm[4], dl[4];
      load4(gz + e0, gzv);
      load4(mu + e0, m);
      load4(logvar + e0, lv);
      int64_t rr[4];
      group_rows(e0, cols, rr);
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const auto o = ::vaebench::reparam_kl_backward<A>(to_acc(gzv[j]), to_acc(gk[rr[j]]), to_acc(m[j]),
                                                          to_acc(lv[j]), lane(eps, j));
        dm[j] = from_acc<S>(o.dmu);
        dl[j] = from_acc<S>(o.dlogvar);
      }
      store4(dmu + e0, dm);
      store4(dlogvar + e0, dl);
    } else {
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int64_t e = e0 + j;
        if (e < 0 || e >= n) continue;
        const auto o = ::vaebench::reparam_kl_backward<A>(to_acc(gz[e]), to_acc(gk[e / cols]), to_acc(mu[e]),
                                                          to_acc(logvar[e]), lane(eps, j));
        dmu[e] = from_acc<S>(o.dmu);
        dlogvar[e] = from_acc<S>(o.dlogvar);
      }
    }
  }
}

__global__ void __launch_bounds__(kThreads)
    normal_kernel(float* __restrict__ out, int64_t n, PhiloxKey key, uint64_t offset) {
  const bool vec = group_aligned(out, offset);
  const Groups gr = groups_of(0, n, offset);
  for (uint64_t g = gr.begin + blockIdx.x * static_cast<uint64_t>(blockDim.x) + threadIdx.x; g < gr.end;
       g += static_cast<uint64_t>(gridDim.x) * blockDim.x) {
    const F32x4 eps = normal_block(g, key);
    const int64_t e0 = group_first(g, offset);
    if (vec && e0 >= 0 && e0 + 4 <= n) {
      const float v[4] = {eps.n0, eps.n1, eps.n2, eps.n3};
      store4(out + e0, v);
    } else {
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int64_t e = e0 + j;
        if (e >= 0 && e < n) out[e] = lane(eps, j);
      }
    }
  }
}

// ---- launchers ---------------------------------------------------------------------

template <typename S>
void forward_typed(const void* mu, const void* logvar, void* z, void* kl, int64_t rows, int64_t cols,
                   uint64_t seed, uint64_t offset, cudaStream_t stream) {
  const SampleForward<S, KlForward> op{static_cast<const S*>(mu), static_cast<const S*>(logvar), static_cast<S*>(z),
                                       static_cast<S*>(kl), KlForward{}};
  launch_rows(op, rows, cols, seed, offset, stream);
}

template <typename S>
void backward_typed(const void* gz, const void* gk, const void* mu, const void* logvar, void* dmu,
                    void* dlogvar, int64_t rows, int64_t cols, uint64_t seed, uint64_t offset,
                    cudaStream_t stream) {
  const int64_t n = rows * cols;
  launch_kernel(backward_kernel<S>, dim3(blocks_for(group_count(n, offset), kThreads)), dim3(kThreads), 0,
                stream, static_cast<const S*>(gz), static_cast<const S*>(gk), static_cast<const S*>(mu),
                static_cast<const S*>(logvar), static_cast<S*>(dmu), static_cast<S*>(dlogvar), n, cols,
                philox_key(seed), offset);
}

}  // namespace

void reparam_kl_forward(Dtype dtype, const void* mu, const void* logvar, void* z, void* kl,
                        int64_t rows, int64_t cols, uint64_t seed, uint64_t offset,
                        cudaStream_t stream) {
  if (rows == 0) return;  // (cols == 0 still runs: kl must be zeroed)
  VB_DISPATCH(dtype, forward_typed, mu, logvar, z, kl, rows, cols, seed, offset, stream);
}

void reparam_kl_backward(Dtype dtype, const void* grad_z, const void* grad_kl, const void* mu,
                         const void* logvar, void* dmu, void* dlogvar, int64_t rows, int64_t cols,
                         uint64_t seed, uint64_t offset, cudaStream_t stream) {
  if (rows * cols == 0) return;
  VB_DISPATCH(dtype, backward_typed, grad_z, grad_kl, mu, logvar, dmu, dlogvar, rows, cols, seed,
              offset, stream);
}

void philox_normal(float* out, int64_t n, uint64_t seed, uint64_t offset, cudaStream_t stream) {
  if (n == 0) return;
  launch_kernel(normal_kernel, dim3(blocks_for(group_count(n, offset), kThreads)), dim3(kThreads), 0, stream,
                out, n, philox_key(seed), offset);
}

}  // namespace cuda
}  // namespace vaebench
