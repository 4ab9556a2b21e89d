// CUDA kernels of the fused reparam+KL op. Plain CUDA, no torch headers: the
// math comes from the same headers the CPU build uses, and launch.h lets this
// very file also compile as host C++ for the CPU emulator (csrc/emu).
//
// Noise: a thread takes whole Philox groups (4 consecutive stream positions =
// 4 consecutive elements). Where a group's elements are suitably aligned it
// reads and writes each array with one 16-byte access (8 bytes for 16-bit
// types, two for float64), otherwise element by element.
//
// Forward: one pass over mu and logvar. A block owns a tile of whole rows (or
// one long row, in chunks): it writes z, keeps each element's KL term in
// shared memory, then sums every row in a fixed order. kl is therefore
// deterministic, whatever the grid size or scheduling.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstring>
#include <type_traits>

#include "accumulate.h"
#include "launch.h"
#include "reparam_kl.h"
#include "vaebench/philox.h"
#include "vaebench/reparam_kl.h"

namespace vaebench {
namespace cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
// Elements per forward chunk: 8 per thread; their KL terms fit in 16 KB of
// shared memory even in float64.
constexpr int64_t kChunk = 2048;
// Rows up to this long are summed by one thread each, longer ones by a warp.
constexpr int64_t kThreadRowMax = 32;
constexpr int64_t kMaxBlocks = 65535 * 8;

__host__ __device__ __forceinline__ int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

// ---- 4-element vector accesses ------------------------------------------------

// The word one access moves: 16 bytes, or all 4 elements when they are smaller.
template <typename S> using Word = std::conditional_t<(4 * sizeof(S) >= 16), uint4, uint2>;
template <typename S> constexpr int kWordsPer4 = static_cast<int>(4 * sizeof(S) / sizeof(Word<S>));

// Whether element e of p is word-aligned for every e with e + offset a
// multiple of 4, i.e. for the first element of every Philox group.
template <typename S>
__device__ __forceinline__ bool group_aligned(const S* p, uint64_t offset) {
  const uintptr_t first = reinterpret_cast<uintptr_t>(p) - static_cast<uintptr_t>(offset) * sizeof(S);
  return first % sizeof(Word<S>) == 0;
}

template <typename S>
__device__ __forceinline__ void load4(const S* p, S (&v)[4]) {
  Word<S> w[kWordsPer4<S>];
#pragma unroll
  for (int k = 0; k < kWordsPer4<S>; ++k) w[k] = reinterpret_cast<const Word<S>*>(p)[k];
  memcpy(v, w, sizeof(v));
}

template <typename S>
__device__ __forceinline__ void store4(S* p, const S (&v)[4]) {
  Word<S> w[kWordsPer4<S>];
  memcpy(w, v, sizeof(v));
#pragma unroll
  for (int k = 0; k < kWordsPer4<S>; ++k) reinterpret_cast<Word<S>*>(p)[k] = w[k];
}

// The Philox groups holding elements [e_begin, e_end), element e being stream
// position offset + e; the first element of group g is 4 g - offset (it may
// lie before e_begin, or be negative).
struct Groups {
  uint64_t begin, end;
};

__device__ __forceinline__ Groups groups_of(int64_t e_begin, int64_t e_end, uint64_t offset) {
  if (e_end <= e_begin) return Groups{0, 0};
  return Groups{(offset + static_cast<uint64_t>(e_begin)) >> 2, (offset + static_cast<uint64_t>(e_end) + 3) >> 2};
}

__device__ __forceinline__ int64_t group_first(uint64_t g, uint64_t offset) {
  return static_cast<int64_t>(4 * g - offset);
}

// ---- kernels --------------------------------------------------------------------

template <typename S>
__global__ void __launch_bounds__(kThreads)
    forward_kernel(const S* __restrict__ mu, const S* __restrict__ logvar, S* __restrict__ z,
                   S* __restrict__ kl, int64_t rows, int64_t cols, int64_t tile_rows,
                   PhiloxKey key, uint64_t offset) {
  using A = typename AccOf<S>::type;
  VB_SHARED_ARRAY(A, terms, kChunk);  // the KL terms of the current chunk
  const bool vec = group_aligned(mu, offset) && group_aligned(logvar, offset) && group_aligned(z, offset);
  const int lane_id = threadIdx.x & 31, warp_id = threadIdx.x >> 5;
  const int64_t tiles = (rows + tile_rows - 1) / tile_rows;
  for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    const int64_t r0 = tile * tile_rows, r1 = min64(rows, r0 + tile_rows);
    const int64_t end = r1 * cols;
    A carry = 0;  // lane 0 of warp 0: the sum so far of a row longer than a chunk
    int64_t c0 = r0 * cols;
    do {  // chunks [c0, c1); at least one, so that rows of no columns get kl = 0
      const int64_t c1 = min64(end, c0 + kChunk);
      const Groups gr = groups_of(c0, c1, offset);
      for (uint64_t g = gr.begin + threadIdx.x; g < gr.end; g += blockDim.x) {
        const F32x4 eps = normal_block(g, key);
        const int64_t e0 = group_first(g, offset);
        if (vec && e0 >= c0 && e0 + 4 <= c1) {
          S m[4], lv[4], zo[4];
          load4(mu + e0, m);
          load4(logvar + e0, lv);
#pragma unroll
          for (int j = 0; j < 4; ++j) {
            const auto o = ::vaebench::reparam_kl_forward<A>(to_acc(m[j]), to_acc(lv[j]), lane(eps, j));
            zo[j] = from_acc<S>(o.z);
            terms[e0 - c0 + j] = o.kl_term;
          }
          store4(z + e0, zo);
        } else {
#pragma unroll
          for (int j = 0; j < 4; ++j) {
            const int64_t e = e0 + j;
            if (e < c0 || e >= c1) continue;
            const auto o = ::vaebench::reparam_kl_forward<A>(to_acc(mu[e]), to_acc(logvar[e]), lane(eps, j));
            z[e] = from_acc<S>(o.z);
            terms[e - c0] = o.kl_term;
          }
        }
      }
      __syncthreads();
      if (cols <= kThreadRowMax) {  // the tile is one chunk: a thread per row
        for (int64_t r = r0 + threadIdx.x; r < r1; r += blockDim.x) {
          const A* t = terms + (r - r0) * cols;
          A s = 0;
          for (int64_t c = 0; c < cols; ++c) s += t[c];
          kl[r] = from_acc<S>(s);
        }
      } else {  // a warp per row (part of a row when it spans chunks): lanes, then shuffles
        const int64_t first_row = c0 / cols, last_row = (c1 - 1) / cols;
        for (int64_t r = first_row + warp_id; r <= last_row; r += kWarps) {
          const int64_t b = max64(r * cols, c0), e = min64((r + 1) * cols, c1);
          A s = 0;
          for (int64_t i = b + lane_id; i < e; i += 32) s += terms[i - c0];
#pragma unroll
          for (int sh = 16; sh > 0; sh >>= 1) s += __shfl_down_sync(0xffffffffu, s, sh);
          if (lane_id == 0) {
            carry += s;
            if (e == (r + 1) * cols) {  // the row ends in this chunk
              kl[r] = from_acc<S>(carry);
              carry = 0;
            }
          }
        }
      }
      __syncthreads();  // the next chunk overwrites terms
      c0 = c1;
    } while (c0 < end);
  }
}

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
      int64_t r = e0 / cols, c = e0 - r * cols;  // one division per group
#pragma unroll
      for (int j = 0; j < 4; ++j, ++c) {
        while (c >= cols) c -= cols, ++r;
        const auto o = ::vaebench::reparam_kl_backward<A>(to_acc(gzv[j]), to_acc(gk[r]), to_acc(m[j]),
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

inline unsigned blocks_for(int64_t work_items, int64_t per_block) {
  const int64_t blocks = (work_items + per_block - 1) / per_block;
  return static_cast<unsigned>(blocks < 1 ? 1 : blocks < kMaxBlocks ? blocks : kMaxBlocks);
}

inline int64_t group_count(int64_t n, uint64_t offset) {
  return static_cast<int64_t>(((offset + static_cast<uint64_t>(n) + 3) >> 2) - (offset >> 2));
}

template <typename S>
void forward_typed(const void* mu, const void* logvar, void* z, void* kl, int64_t rows, int64_t cols,
                   uint64_t seed, uint64_t offset, cudaStream_t stream) {
  // Whole rows per tile, as many as fit a chunk; rows without columns still get their kl = 0.
  const int64_t tile_rows = cols == 0 ? kChunk : max64(1, kChunk / cols);
  launch_kernel(forward_kernel<S>, dim3(blocks_for(rows, tile_rows)), dim3(kThreads), 0, stream,
                static_cast<const S*>(mu), static_cast<const S*>(logvar), static_cast<S*>(z),
                static_cast<S*>(kl), rows, cols, tile_rows, philox_key(seed), offset);
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

#define VB_DISPATCH(dtype, FN, ...)                                  \
  switch (dtype) {                                                   \
    case Dtype::kFloat16: FN<__half>(__VA_ARGS__); break;            \
    case Dtype::kBFloat16: FN<__nv_bfloat16>(__VA_ARGS__); break;    \
    case Dtype::kFloat32: FN<float>(__VA_ARGS__); break;             \
    case Dtype::kFloat64: FN<double>(__VA_ARGS__); break;            \
  }

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

#undef VB_DISPATCH

void philox_normal(float* out, int64_t n, uint64_t seed, uint64_t offset, cudaStream_t stream) {
  if (n == 0) return;
  launch_kernel(normal_kernel, dim3(blocks_for(group_count(n, offset), kThreads)), dim3(kThreads), 0, stream,
                out, n, philox_key(seed), offset);
}

}  // namespace cuda
}  // namespace vaebench
