// The CUDA machinery of the fused reparameterized-sample ops (reparam_kl.cu,
// reparam_gjs.cu), included by both: 4-element vector accesses aligned to the
// Philox groups, and the row kernel that runs an elementwise op over the noise
// and sums a term of every element per row. Plain CUDA, no torch headers;
// through launch.h it also compiles as host C++ for the CPU emulator.
//
// Noise: a thread takes whole Philox groups (4 consecutive stream positions =
// 4 consecutive elements). Where a group's elements are suitably aligned it
// reads and writes each array with one 16-byte access (8 bytes for 16-bit
// types, two for float64), otherwise element by element.
//
// Row kernel: one pass over the inputs. A block owns a tile of whole rows (or
// one long row, in chunks): it writes the elementwise outputs, keeps each
// element's term in shared memory, then sums every row in a fixed order. The
// row sums are therefore deterministic, whatever the grid size or scheduling.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstring>
#include <type_traits>

#include "accumulate.h"
#include "launch.h"
#include "vaebench/philox.h"

namespace vaebench {
namespace cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
// Elements per row-kernel chunk: 8 per thread; their terms fit in 16 KB of
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

// The rows of the 4 elements from e0 on (one division per group).
__device__ __forceinline__ void group_rows(int64_t e0, int64_t cols, int64_t (&rows)[4]) {
  int64_t r = e0 / cols, c = e0 - r * cols;
#pragma unroll
  for (int j = 0; j < 4; ++j, ++c) {
    while (c >= cols) c -= cols, ++r;
    rows[j] = r;
  }
}

// ---- the row kernel -------------------------------------------------------------

// Op, a small struct of pointers (and constants) passed by value, with Acc its
// accumulation type and:
//   bool aligned(uint64_t offset): every array it reads or writes per element is group_aligned;
//   void group(int64_t e0, const int64_t (&rows)[4], const F32x4& eps, Acc* terms): the 4
//     elements from e0 on (in one chunk, aligned): loads, math, stores; their terms to terms[0, 4);
//   Acc element(int64_t e, int64_t row, float eps): one element the same way, returning its term;
//   void row(int64_t r, Acc sum): writes row r's result from the sum of its terms.
template <typename Op>
__global__ void __launch_bounds__(kThreads)
    rows_kernel(Op op, int64_t rows, int64_t cols, int64_t tile_rows, PhiloxKey key, uint64_t offset) {
  using A = typename Op::Acc;
  VB_SHARED_ARRAY(A, terms, kChunk);  // the terms of the current chunk
  const bool vec = op.aligned(offset);
  const int lane_id = threadIdx.x & 31, warp_id = threadIdx.x >> 5;
  const int64_t tiles = (rows + tile_rows - 1) / tile_rows;
  for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    const int64_t r0 = tile * tile_rows, r1 = min64(rows, r0 + tile_rows);
    const int64_t end = r1 * cols;
    A carry = 0;  // lane 0 of warp 0: the sum so far of a row longer than a chunk
    int64_t c0 = r0 * cols;
    do {  // chunks [c0, c1); at least one, so that rows of no columns get a zero sum
      const int64_t c1 = min64(end, c0 + kChunk);
      const Groups gr = groups_of(c0, c1, offset);
      for (uint64_t g = gr.begin + threadIdx.x; g < gr.end; g += blockDim.x) {
        const F32x4 eps = normal_block(g, key);
        const int64_t e0 = group_first(g, offset);
        if (vec && e0 >= c0 && e0 + 4 <= c1) {
          int64_t rr[4];
          group_rows(e0, cols, rr);
          op.group(e0, rr, eps, terms + (e0 - c0));
        } else {
#pragma unroll
          for (int j = 0; j < 4; ++j) {
            const int64_t e = e0 + j;
            if (e < c0 || e >= c1) continue;
            terms[e - c0] = op.element(e, e / cols, lane(eps, j));
          }
        }
      }
      __syncthreads();
      if (cols <= kThreadRowMax) {  // the tile is one chunk: a thread per row
        for (int64_t r = r0 + threadIdx.x; r < r1; r += blockDim.x) {
          const A* t = terms + (r - r0) * cols;
          A s = 0;
          for (int64_t c = 0; c < cols; ++c) s += t[c];
          op.row(r, s);
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
              op.row(r, carry);
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

inline unsigned blocks_for(int64_t work_items, int64_t per_block) {
  const int64_t blocks = (work_items + per_block - 1) / per_block;
  return static_cast<unsigned>(blocks < 1 ? 1 : blocks < kMaxBlocks ? blocks : kMaxBlocks);
}

inline int64_t group_count(int64_t n, uint64_t offset) {
  return static_cast<int64_t>(((offset + static_cast<uint64_t>(n) + 3) >> 2) - (offset >> 2));
}

template <typename Op>
void launch_rows(const Op& op, int64_t rows, int64_t cols, uint64_t seed, uint64_t offset, cudaStream_t stream) {
  // Whole rows per tile, as many as fit a chunk; rows without columns still get their zero sum.
  const int64_t tile_rows = cols == 0 ? kChunk : max64(1, kChunk / cols);
  launch_kernel(rows_kernel<Op>, dim3(blocks_for(rows, tile_rows)), dim3(kThreads), 0, stream, op, rows, cols,
                tile_rows, philox_key(seed), offset);
}

// ---- the sample forward: z and the row sums of a per-element term -----------------

// F: (Acc mu, Acc logvar, float eps) -> ReparamForward<Acc> (the sample and the term).
template <typename S, typename F>
struct SampleForward {
  using Acc = typename AccOf<S>::type;
  const S* mu;
  const S* logvar;
  S* z;
  S* row_out;
  F f;

  __device__ bool aligned(uint64_t offset) const {
    return group_aligned(mu, offset) && group_aligned(logvar, offset) && group_aligned(z, offset);
  }
  __device__ void group(int64_t e0, const int64_t (&)[4], const F32x4& eps, Acc* t) const {
    S m[4], lv[4], zo[4];
    load4(mu + e0, m);
    load4(logvar + e0, lv);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const auto o = f(to_acc(m[j]), to_acc(lv[j]), lane(eps, j));
      zo[j] = from_acc<S>(o.z);
      t[j] = o.term;
    }
    store4(z + e0, zo);
  }
  __device__ Acc element(int64_t e, int64_t, float eps) const {
    const auto o = f(to_acc(mu[e]), to_acc(logvar[e]), eps);
    z[e] = from_acc<S>(o.z);
    return o.term;
  }
  __device__ void row(int64_t r, Acc s) const { row_out[r] = from_acc<S>(s); }
};

}  // namespace

}  // namespace cuda
}  // namespace vaebench
