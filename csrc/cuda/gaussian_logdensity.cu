// CUDA kernels of the pairwise Gaussian log-density with log-sum-exp over the
// mixture. Plain CUDA, no torch headers: the math is the shared header's
// (csrc/include/vaebench/gaussian_logdensity.h), and launch.h lets this file
// also compile as host C++ for the CPU emulator (csrc/emu).
//
// Nothing of size [B, M, D] is formed. A thread owns one row j of z (or one
// component i, for the component gradients), a chunk of up to kChunkD
// dimensions kept in registers, and one segment of the other side's index:
// the pairs are split into S segments so that there are enough threads even
// for small B, and a second kernel merges the S partial results in a fixed
// order (deterministic whatever the grid or scheduling). Within a warp the
// lanes differ in their own row and share the segment, so the other side's
// values are broadcast loads.
//
// Forward: (S, B, dimension chunks) threads; each streams its segment of
// components with a one-exp online log-sum-exp per term (the joint's row sum
// is formed by the first chunk's thread), writes partial (max, sum) pairs to
// the workspace, and a merge kernel writes joint and marginal.
// Backward: the softmax weights are recomputed from the saved outputs, in two
// kernels as on the CPU: grad_z over (S, B, chunks) with segments of
// components, grad_mu and grad_logvar over (S, M, chunks) with segments of
// rows of z; partial sums go to the workspace and a reduction adds them in
// segment order.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstddef>

#include "gaussian_logdensity.h"
#include "accumulate.h"
#include "launch.h"
#include "vaebench/gaussian_logdensity.h"

namespace vaebench {
namespace cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kChunkD = 16;            // dimensions per thread (registers)
constexpr int64_t kTargetThreads = 1 << 17;  // enough to fill a large GPU
constexpr int64_t kMinSegment = 16;    // pairs per thread, at least
constexpr int64_t kMaxBlocks = 65535 * 8;

__host__ __device__ __forceinline__ int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The split of `other` indices into segments for `rows * chunks` threads each.
struct Split {
  int64_t segments, length;
};

inline Split split_for(int64_t rows, int64_t chunks, int64_t other) {
  const int64_t want = ceil_div(kTargetThreads, rows * chunks > 0 ? rows * chunks : 1);
  const int64_t most = ceil_div(other > 0 ? other : 1, kMinSegment);
  const int64_t s = want < 1 ? 1 : want < most ? want : most;
  const int64_t length = ceil_div(other > 0 ? other : 1, s);
  return Split{ceil_div(other > 0 ? other : 1, length), length};
}

inline int64_t chunks_for(int64_t D) { return D > 0 ? ceil_div(D, kChunkD) : 1; }

// The workspace: the components' tables (mu, h, q as A, [M, D]), then the partials.
template <typename A>
struct Workspace {
  A* mu;
  A* h;
  A* q;
  void* partial;  // suitably aligned for Lse<A> and A
};

template <typename A>
size_t tables_bytes(int64_t M, int64_t D) {
  const size_t b = 3 * static_cast<size_t>(M * D) * sizeof(A);
  return (b + 255) / 256 * 256;
}

template <typename A>
Workspace<A> carve(void* ws, int64_t M, int64_t D) {
  A* base = static_cast<A*>(ws);
  return Workspace<A>{base, base + M * D, base + 2 * M * D, static_cast<char*>(ws) + tables_bytes<A>(M, D)};
}

// ---- kernels --------------------------------------------------------------------

template <typename S>
__global__ void __launch_bounds__(kThreads)
    tables_kernel(const S* __restrict__ mu, const S* __restrict__ lv, typename AccOf<S>::type* __restrict__ tm,
                  typename AccOf<S>::type* __restrict__ th, typename AccOf<S>::type* __restrict__ tq, int64_t n) {
  using A = typename AccOf<S>::type;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < n;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const A l = to_acc(lv[e]);
    tm[e] = to_acc(mu[e]);
    th[e] = half_neg_logvar(l);
    tq[e] = half_neg_precision(l);
  }
}

// Thread t = (segment, row j, chunk): the partial log-sum-exps over its segment of components.
template <typename S>
__global__ void __launch_bounds__(kThreads)
    forward_partial_kernel(const S* __restrict__ z, const typename AccOf<S>::type* __restrict__ tm,
                           const typename AccOf<S>::type* __restrict__ th,
                           const typename AccOf<S>::type* __restrict__ tq,
                           Lse<typename AccOf<S>::type>* __restrict__ pmarg,
                           Lse<typename AccOf<S>::type>* __restrict__ pjoint, int64_t B, int64_t M, int64_t D,
                           int64_t chunks, int64_t seg_len, int64_t segments) {
  using A = typename AccOf<S>::type;
  const int64_t total = segments * B * chunks;
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < total;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t c = t % chunks, j = (t / chunks) % B, s = t / (chunks * B);
    const int64_t d0 = c * kChunkD, i0 = s * seg_len, i1 = min64(M, i0 + seg_len);
    const bool first = c == 0, whole = D <= kChunkD;
    A zr[kChunkD];
    Lse<A> acc[kChunkD];
#pragma unroll
    for (int k = 0; k < kChunkD; ++k) {
      zr[k] = d0 + k < D ? to_acc(z[j * D + d0 + k]) : A(0);
      acc[k] = lse_empty<A>();
    }
    Lse<A> jacc = lse_empty<A>();
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t base = i * D + d0;
      A rowsum = 0;
#pragma unroll
      for (int k = 0; k < kChunkD; ++k) {
        if (d0 + k < D) {
          const A x = log_term(zr[k], tm[base + k], th[base + k], tq[base + k]);
          lse_push(acc[k], x);
          rowsum += x;
        }
      }
      if (first) {
        if (!whole) {  // the joint needs every dimension: the first chunk adds the others' terms
          for (int64_t d = kChunkD; d < D; ++d)
            rowsum += log_term(to_acc(z[j * D + d]), tm[i * D + d], th[i * D + d], tq[i * D + d]);
        }
        lse_push(jacc, rowsum);
      }
    }
#pragma unroll
    for (int k = 0; k < kChunkD; ++k)
      if (d0 + k < D) pmarg[(s * B + j) * D + d0 + k] = acc[k];
    if (first) pjoint[s * B + j] = jacc;
  }
}

// Thread per output: (j, d) for d < D are the marginals, d = D the joint.
template <typename S>
__global__ void __launch_bounds__(kThreads)
    forward_merge_kernel(const Lse<typename AccOf<S>::type>* __restrict__ pmarg,
                         const Lse<typename AccOf<S>::type>* __restrict__ pjoint, S* __restrict__ joint,
                         S* __restrict__ marg, int64_t B, int64_t D, int64_t segments) {
  using A = typename AccOf<S>::type;
  const int64_t total = B * (D + 1);
  const A c1 = static_cast<A>(kHalfLog2Pi), cD = static_cast<A>(kHalfLog2Pi * static_cast<double>(D));
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < total;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t j = t / (D + 1), d = t % (D + 1);
    Lse<A> a = lse_empty<A>();
    if (d < D) {
      for (int64_t s = 0; s < segments; ++s) lse_merge(a, pmarg[(s * B + j) * D + d]);
      marg[j * D + d] = from_acc<S>(lse_value(a, c1));
    } else {
      for (int64_t s = 0; s < segments; ++s) lse_merge(a, pjoint[s * B + j]);
      joint[j] = from_acc<S>(lse_value(a, cD));
    }
  }
}

// Thread (segment, j, chunk): sum over its segment of components i of
// (gj_j w_ji + gm_jd v_jid) 2 u_jid.
template <typename S>
__global__ void __launch_bounds__(kThreads)
    grad_z_partial_kernel(const S* __restrict__ gj, const S* __restrict__ gm, const S* __restrict__ z,
                          const S* __restrict__ joint, const S* __restrict__ marg,
                          const typename AccOf<S>::type* __restrict__ tm,
                          const typename AccOf<S>::type* __restrict__ th,
                          const typename AccOf<S>::type* __restrict__ tq, typename AccOf<S>::type* __restrict__ pgz,
                          int64_t B, int64_t M, int64_t D, int64_t chunks, int64_t seg_len, int64_t segments) {
  using A = typename AccOf<S>::type;
  const A c1 = static_cast<A>(kHalfLog2Pi), cD = static_cast<A>(kHalfLog2Pi * static_cast<double>(D));
  const int64_t total = segments * B * chunks;
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < total;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t c = t % chunks, j = (t / chunks) % B, s = t / (chunks * B);
    const int64_t d0 = c * kChunkD, i0 = s * seg_len, i1 = min64(M, i0 + seg_len);
    const A gjj = to_acc(gj[j]), jref = to_acc(joint[j]) + cD;
    A zr[kChunkD], g[kChunkD], ref[kChunkD], acc[kChunkD];
#pragma unroll
    for (int k = 0; k < kChunkD; ++k) {
      const bool in = d0 + k < D;
      zr[k] = in ? to_acc(z[j * D + d0 + k]) : A(0);
      g[k] = in ? to_acc(gm[j * D + d0 + k]) : A(0);
      ref[k] = in ? to_acc(marg[j * D + d0 + k]) + c1 : A(0);
      acc[k] = 0;
    }
    for (int64_t i = i0; i < i1; ++i) {
      A rowsum = 0;
      for (int64_t d = 0; d < D; ++d)
        rowsum += log_term(to_acc(z[j * D + d]), tm[i * D + d], th[i * D + d], tq[i * D + d]);
      const A w = gjj * exp_acc(rowsum - jref);
      const int64_t base = i * D + d0;
#pragma unroll
      for (int k = 0; k < kChunkD; ++k) {
        if (d0 + k < D) {
          const A diff = zr[k] - tm[base + k];
          const A u = diff * tq[base + k];
          acc[k] += (w + g[k] * exp_acc((th[base + k] + diff * u) - ref[k])) * u;
        }
      }
    }
#pragma unroll
    for (int k = 0; k < kChunkD; ++k)
      if (d0 + k < D) pgz[(s * B + j) * D + d0 + k] = A(2) * acc[k];
  }
}

// Thread (segment, i, chunk): sums over its segment of rows j for grad_mu and grad_logvar.
template <typename S>
__global__ void __launch_bounds__(kThreads)
    grad_component_partial_kernel(const S* __restrict__ gj, const S* __restrict__ gm, const S* __restrict__ z,
                                  const S* __restrict__ joint, const S* __restrict__ marg,
                                  const typename AccOf<S>::type* __restrict__ tm,
                                  const typename AccOf<S>::type* __restrict__ th,
                                  const typename AccOf<S>::type* __restrict__ tq,
                                  typename AccOf<S>::type* __restrict__ pgmu,
                                  typename AccOf<S>::type* __restrict__ pglv, int64_t B, int64_t M, int64_t D,
                                  int64_t chunks, int64_t seg_len, int64_t segments) {
  using A = typename AccOf<S>::type;
  const A c1 = static_cast<A>(kHalfLog2Pi), cD = static_cast<A>(kHalfLog2Pi * static_cast<double>(D));
  const int64_t total = segments * M * chunks;
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < total;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t c = t % chunks, i = (t / chunks) % M, s = t / (chunks * M);
    const int64_t d0 = c * kChunkD, j0 = s * seg_len, j1 = min64(B, j0 + seg_len);
    A m[kChunkD], h[kChunkD], q[kChunkD], a_mu[kChunkD], a_c[kChunkD], a_cdu[kChunkD];
#pragma unroll
    for (int k = 0; k < kChunkD; ++k) {
      const bool in = d0 + k < D;
      m[k] = in ? tm[i * D + d0 + k] : A(0);
      h[k] = in ? th[i * D + d0 + k] : A(0);
      q[k] = in ? tq[i * D + d0 + k] : A(0);
      a_mu[k] = a_c[k] = a_cdu[k] = 0;
    }
    for (int64_t j = j0; j < j1; ++j) {
      A rowsum = 0;
      for (int64_t d = 0; d < D; ++d)
        rowsum += log_term(to_acc(z[j * D + d]), tm[i * D + d], th[i * D + d], tq[i * D + d]);
      const A w = to_acc(gj[j]) * exp_acc(rowsum - (to_acc(joint[j]) + cD));
#pragma unroll
      for (int k = 0; k < kChunkD; ++k) {
        if (d0 + k < D) {
          const int64_t e = j * D + d0 + k;
          const A diff = to_acc(z[e]) - m[k];
          const A u = diff * q[k];
          const A cw = w + to_acc(gm[e]) * exp_acc((h[k] + diff * u) - (to_acc(marg[e]) + c1));
          a_mu[k] += cw * u;
          a_c[k] += cw;
          a_cdu[k] += cw * (diff * u);
        }
      }
    }
#pragma unroll
    for (int k = 0; k < kChunkD; ++k) {
      if (d0 + k < D) {
        const int64_t e = (s * M + i) * D + d0 + k;
        pgmu[e] = A(-2) * a_mu[k];
        pglv[e] = -(A(0.5) * a_c[k] + a_cdu[k]);
      }
    }
  }
}

// out[e] = sum over segments s (in order) of partial[s * n + e].
template <typename S>
__global__ void __launch_bounds__(kThreads)
    reduce_segments_kernel(const typename AccOf<S>::type* __restrict__ partial, S* __restrict__ out, int64_t n,
                           int64_t segments) {
  using A = typename AccOf<S>::type;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < n;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    A sum = 0;
    for (int64_t s = 0; s < segments; ++s) sum += partial[s * n + e];
    out[e] = from_acc<S>(sum);
  }
}

// ---- launchers ---------------------------------------------------------------------

inline unsigned blocks_for(int64_t work_items) {
  const int64_t blocks = ceil_div(work_items, kThreads);
  return static_cast<unsigned>(blocks < 1 ? 1 : blocks < kMaxBlocks ? blocks : kMaxBlocks);
}

template <typename A>
size_t workspace_typed(int64_t B, int64_t M, int64_t D, bool backward) {
  const int64_t chunks = chunks_for(D);
  if (!backward) {
    const Split sp = split_for(B, chunks, M);
    return tables_bytes<A>(M, D) + static_cast<size_t>(sp.segments * B * (D + 1)) * sizeof(Lse<A>);
  }
  const Split sz = split_for(B, chunks, M), sc = split_for(M, chunks, B);
  const size_t gz = static_cast<size_t>(sz.segments * B * D), gc = static_cast<size_t>(2 * sc.segments * M * D);
  return tables_bytes<A>(M, D) + (gz > gc ? gz : gc) * sizeof(A);
}

template <typename S>
void build_tables(const void* mu, const void* logvar, const Workspace<typename AccOf<S>::type>& w, int64_t M,
                  int64_t D, cudaStream_t stream) {
  launch_kernel(tables_kernel<S>, dim3(blocks_for(M * D)), dim3(kThreads), 0, stream, static_cast<const S*>(mu),
                static_cast<const S*>(logvar), w.mu, w.h, w.q, M * D);
}

template <typename S>
void forward_typed(const void* z, const void* mu, const void* logvar, void* joint, void* marg, int64_t B, int64_t M,
                   int64_t D, void* workspace, cudaStream_t stream) {
  using A = typename AccOf<S>::type;
  const auto w = carve<A>(workspace, M, D);
  build_tables<S>(mu, logvar, w, M, D, stream);
  const int64_t chunks = chunks_for(D);
  const Split sp = split_for(B, chunks, M);
  auto* pmarg = static_cast<Lse<A>*>(w.partial);
  Lse<A>* pjoint = pmarg + sp.segments * B * D;
  launch_kernel(forward_partial_kernel<S>, dim3(blocks_for(sp.segments * B * chunks)), dim3(kThreads), 0, stream,
                static_cast<const S*>(z), w.mu, w.h, w.q, pmarg, pjoint, B, M, D, chunks, sp.length, sp.segments);
  launch_kernel(forward_merge_kernel<S>, dim3(blocks_for(B * (D + 1))), dim3(kThreads), 0, stream, pmarg, pjoint,
                static_cast<S*>(joint), static_cast<S*>(marg), B, D, sp.segments);
}

template <typename S>
void backward_typed(const void* gj, const void* gm, const void* z, const void* mu, const void* logvar,
                    const void* joint, const void* marg, void* gz, void* gmu, void* glv, int64_t B, int64_t M,
                    int64_t D, void* workspace, cudaStream_t stream) {
  using A = typename AccOf<S>::type;
  const auto w = carve<A>(workspace, M, D);
  build_tables<S>(mu, logvar, w, M, D, stream);
  const int64_t chunks = chunks_for(D);
  auto* part = static_cast<A*>(w.partial);
  const auto* gjs = static_cast<const S*>(gj);
  const auto* gms = static_cast<const S*>(gm);
  const auto* zs = static_cast<const S*>(z);
  const auto* js = static_cast<const S*>(joint);
  const auto* ms = static_cast<const S*>(marg);
  // grad_z, then (reusing the partials' space) grad_mu and grad_logvar; one stream orders them.
  const Split sz = split_for(B, chunks, M);
  launch_kernel(grad_z_partial_kernel<S>, dim3(blocks_for(sz.segments * B * chunks)), dim3(kThreads), 0, stream,
                gjs, gms, zs, js, ms, w.mu, w.h, w.q, part, B, M, D, chunks, sz.length, sz.segments);
  launch_kernel(reduce_segments_kernel<S>, dim3(blocks_for(B * D)), dim3(kThreads), 0, stream,
                static_cast<const A*>(part), static_cast<S*>(gz), B * D, sz.segments);
  const Split sc = split_for(M, chunks, B);
  A* pmu = part;
  A* plv = part + sc.segments * M * D;
  launch_kernel(grad_component_partial_kernel<S>, dim3(blocks_for(sc.segments * M * chunks)), dim3(kThreads), 0,
                stream, gjs, gms, zs, js, ms, w.mu, w.h, w.q, pmu, plv, B, M, D, chunks, sc.length, sc.segments);
  launch_kernel(reduce_segments_kernel<S>, dim3(blocks_for(M * D)), dim3(kThreads), 0, stream,
                static_cast<const A*>(pmu), static_cast<S*>(gmu), M * D, sc.segments);
  launch_kernel(reduce_segments_kernel<S>, dim3(blocks_for(M * D)), dim3(kThreads), 0, stream,
                static_cast<const A*>(plv), static_cast<S*>(glv), M * D, sc.segments);
}

}  // namespace

size_t gaussian_logdensity_workspace_bytes(Dtype dtype, int64_t B, int64_t M, int64_t D, bool backward) {
  return dtype == Dtype::kFloat64 ? workspace_typed<double>(B, M, D, backward)
                                  : workspace_typed<float>(B, M, D, backward);
}

void gaussian_logdensity_forward(Dtype dtype, const void* z, const void* mu, const void* logvar, void* joint,
                                 void* marginal, int64_t B, int64_t M, int64_t D, void* workspace,
                                 cudaStream_t stream) {
  if (B == 0) return;  // (M == 0 still runs: the outputs of an empty mixture are -inf)
  VB_DISPATCH(dtype, forward_typed, z, mu, logvar, joint, marginal, B, M, D, workspace, stream);
}

void gaussian_logdensity_backward(Dtype dtype, const void* grad_joint, const void* grad_marginal, const void* z,
                                  const void* mu, const void* logvar, const void* joint, const void* marginal,
                                  void* grad_z, void* grad_mu, void* grad_logvar, int64_t B, int64_t M, int64_t D,
                                  void* workspace, cudaStream_t stream) {
  if (B == 0 || M == 0 || D == 0) return;  // the caller zeroes the gradients
  VB_DISPATCH(dtype, backward_typed, grad_joint, grad_marginal, z, mu, logvar, joint, marginal, grad_z, grad_mu,
              grad_logvar, B, M, D, workspace, stream);
}

}  // namespace cuda
}  // namespace vaebench
