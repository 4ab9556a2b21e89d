// CUDA kernels of the fused reparam+KL op. Plain CUDA, no torch headers: the
// math comes from the same headers the CPU build uses.
//
// Noise-consuming kernels (z, backward, philox_normal) give one thread one
// Philox block, i.e. 4 consecutive stream positions = 4 consecutive elements.
// The KL forward needs no noise and is a deterministic warp-per-row reduction.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "reparam_kl.h"
#include "vaebench/philox.h"
#include "vaebench/reparam_kl.h"

namespace vaebench {
namespace cuda {
namespace {

constexpr int kThreads = 256;

template <typename S> struct AccOf { using type = float; };
template <> struct AccOf<double> { using type = double; };

__device__ __forceinline__ float to_acc(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_acc(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_acc(float x) { return x; }
__device__ __forceinline__ double to_acc(double x) { return x; }

template <typename S> __device__ __forceinline__ S from_acc(typename AccOf<S>::type x);
template <> __device__ __forceinline__ __half from_acc<__half>(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ __nv_bfloat16 from_acc<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }
template <> __device__ __forceinline__ float from_acc<float>(float x) { return x; }
template <> __device__ __forceinline__ double from_acc<double>(double x) { return x; }

// The Philox blocks covering positions [offset, offset + n).
struct BlockRange {
  uint64_t first;
  int64_t count;
};

__host__ __device__ inline BlockRange block_range(uint64_t offset, int64_t n) {
  const uint64_t first = offset >> 2;
  return BlockRange{first, static_cast<int64_t>(((offset + static_cast<uint64_t>(n) + 3) >> 2) - first)};
}

inline unsigned grid_for(int64_t work) {
  const int64_t blocks = (work + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < 65535 * 8 ? (blocks > 0 ? blocks : 1) : 65535 * 8);
}

// Calls f(i, eps_i) for every element i in [0, n), one thread per Philox block
// (grid-stride), eps_i being the normal at stream position offset + i.
template <typename F>
__device__ __forceinline__ void for_each_noise_element(int64_t n, PhiloxKey key, uint64_t offset,
                                                       BlockRange range, const F& f) {
  for (int64_t b = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; b < range.count;
       b += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const uint64_t block = range.first + static_cast<uint64_t>(b);
    const F32x4 eps = normal_block(block, key);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t i = static_cast<int64_t>(4 * block + j - offset);
      if (i >= 0 && i < n) f(i, lane(eps, j));
    }
  }
}

template <typename S>
__global__ void z_kernel(const S* __restrict__ mu, const S* __restrict__ logvar, S* __restrict__ z,
                         int64_t n, PhiloxKey key, uint64_t offset, BlockRange range) {
  using A = typename AccOf<S>::type;
  for_each_noise_element(n, key, offset, range, [&](int64_t i, float eps) {
    z[i] = from_acc<S>(::vaebench::reparam_kl_forward<A>(to_acc(mu[i]), to_acc(logvar[i]), eps).z);
  });
}

// One warp per row; lanes stride over the columns, then a shuffle reduction
// (fixed order, so results are deterministic).
template <typename S>
__global__ void kl_kernel(const S* __restrict__ mu, const S* __restrict__ logvar, S* __restrict__ kl,
                          int64_t rows, int64_t cols) {
  using A = typename AccOf<S>::type;
  const int lane_id = threadIdx.x & 31;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x >> 5);
  for (int64_t r = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) >> 5; r < rows; r += warps) {
    A acc = 0;
    for (int64_t c = lane_id; c < cols; c += 32) {
      const int64_t i = r * cols + c;
      acc += kl_term<A>(to_acc(mu[i]), to_acc(logvar[i]));
    }
#pragma unroll
    for (int s = 16; s > 0; s >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, s);
    if (lane_id == 0) kl[r] = from_acc<S>(acc);
  }
}

template <typename S>
__global__ void backward_kernel(const S* __restrict__ gz, const S* __restrict__ gk,
                                const S* __restrict__ mu, const S* __restrict__ logvar,
                                S* __restrict__ dmu, S* __restrict__ dlogvar, int64_t n, int64_t cols,
                                PhiloxKey key, uint64_t offset, BlockRange range) {
  using A = typename AccOf<S>::type;
  for_each_noise_element(n, key, offset, range, [&](int64_t i, float eps) {
    const auto g = ::vaebench::reparam_kl_backward<A>(to_acc(gz[i]), to_acc(gk[i / cols]), to_acc(mu[i]),
                                                      to_acc(logvar[i]), eps);
    dmu[i] = from_acc<S>(g.dmu);
    dlogvar[i] = from_acc<S>(g.dlogvar);
  });
}

__global__ void normal_kernel(float* __restrict__ out, int64_t n, PhiloxKey key, uint64_t offset,
                              BlockRange range) {
  for_each_noise_element(n, key, offset, range, [&](int64_t i, float eps) { out[i] = eps; });
}

template <typename S>
void forward_typed(const void* mu, const void* logvar, void* z, void* kl, int64_t rows, int64_t cols,
                   uint64_t seed, uint64_t offset, cudaStream_t stream) {
  const int64_t n = rows * cols;
  const BlockRange range = block_range(offset, n);
  z_kernel<S><<<grid_for(range.count), kThreads, 0, stream>>>(
      static_cast<const S*>(mu), static_cast<const S*>(logvar), static_cast<S*>(z), n,
      philox_key(seed), offset, range);
  kl_kernel<S><<<grid_for(rows * 32), kThreads, 0, stream>>>(
      static_cast<const S*>(mu), static_cast<const S*>(logvar), static_cast<S*>(kl), rows, cols);
}

template <typename S>
void backward_typed(const void* gz, const void* gk, const void* mu, const void* logvar, void* dmu,
                    void* dlogvar, int64_t rows, int64_t cols, uint64_t seed, uint64_t offset,
                    cudaStream_t stream) {
  const int64_t n = rows * cols;
  const BlockRange range = block_range(offset, n);
  backward_kernel<S><<<grid_for(range.count), kThreads, 0, stream>>>(
      static_cast<const S*>(gz), static_cast<const S*>(gk), static_cast<const S*>(mu),
      static_cast<const S*>(logvar), static_cast<S*>(dmu), static_cast<S*>(dlogvar), n, cols,
      philox_key(seed), offset, range);
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
  if (rows * cols == 0) return;
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
  const BlockRange range = block_range(offset, n);
  normal_kernel<<<grid_for(range.count), kThreads, 0, stream>>>(out, n, philox_key(seed), offset, range);
}

}  // namespace cuda
}  // namespace vaebench
