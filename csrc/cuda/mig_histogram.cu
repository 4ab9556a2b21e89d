// CUDA kernel of vaebench::mig_histogram (the CPU version is
// csrc/cpu/mig_histogram.cpp; the binning math is shared in
// vaebench/histogram.h).
//
// Each block owns one latent dimension d, a group of factors and a slice of the
// rows. It counts into a private shared-memory histogram [group, bins, C] with
// 32-bit shared atomics, then adds its non-zero cells to the global 64-bit
// counts. Where even one (d, k) table does not fit in shared memory, the
// blocks count straight into global memory instead.
#include <algorithm>

#include "cuda/launch.h"
#include "cuda/mig_histogram.h"
#include "vaebench/histogram.h"

namespace vaebench {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kSharedBytes = 48 * 1024;  // no opt-in needed on any arch
constexpr int64_t kTargetBlocks = 2048;      // enough to fill any current GPU

template <typename scalar_t, bool kShared>
__global__ void __launch_bounds__(kThreads)
    mig_histogram_kernel(const scalar_t* __restrict__ x, const int64_t* __restrict__ f, int64_t N,
                         int64_t D, int64_t K, const double* __restrict__ lo,
                         const double* __restrict__ hi, int32_t bins, int64_t C, int64_t group,
                         unsigned long long* __restrict__ counts) {
  VB_DYNAMIC_SHARED(unsigned int, shist);
  const int64_t groups = (K + group - 1) / group;
  const int64_t table = static_cast<int64_t>(bins) * C;
  for (int64_t pair = blockIdx.y; pair < D * groups; pair += gridDim.y) {
    const int64_t d = pair / groups;
    const int64_t k0 = (pair % groups) * group;
    const int64_t kn = group < K - k0 ? group : K - k0;
    const BinSpec spec = make_bin_spec(lo[d], hi[d], bins);
    unsigned long long* dst = counts + (d * K + k0) * table;
    if (kShared) {
      for (int64_t i = threadIdx.x; i < kn * table; i += blockDim.x) shist[i] = 0u;
      __syncthreads();
    }
    for (int64_t r = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; r < N;
         r += static_cast<int64_t>(gridDim.x) * blockDim.x) {
      const int64_t b = bin_index(spec, static_cast<double>(x[r * D + d]));
      const int64_t* fr = f + r * K + k0;
      for (int64_t kk = 0; kk < kn; ++kk) {
        const int64_t cell = kk * table + b * C + fr[kk];
        if (kShared) {
          atomicAdd(&shist[cell], 1u);
        } else {
          atomicAdd(&dst[cell], 1ull);
        }
      }
    }
    if (kShared) {
      __syncthreads();
      for (int64_t i = threadIdx.x; i < kn * table; i += blockDim.x) {
        const unsigned int v = shist[i];
        if (v != 0u) atomicAdd(&dst[i], static_cast<unsigned long long>(v));
      }
      __syncthreads();  // the next pair reuses shist
    }
  }
}

template <typename scalar_t>
cudaError_t launch(const scalar_t* x, const int64_t* f, int64_t N, int64_t D, int64_t K,
                   const double* lo, const double* hi, int32_t bins, int64_t C,
                   unsigned long long* counts, cudaStream_t stream) {
  if (N == 0 || D == 0 || K == 0) return cudaSuccess;
  const int64_t table_bytes = static_cast<int64_t>(bins) * C * sizeof(unsigned int);
  const int64_t group = std::min<int64_t>(K, kSharedBytes / table_bytes);
  const bool shared = group >= 1;
  const int64_t g = shared ? group : K;
  const int64_t pairs = D * ((K + g - 1) / g);
  const int64_t row_blocks = (N + kThreads - 1) / kThreads;
  // Per-block shared counts are 32-bit: keep each block's rows below 2^32.
  const int64_t min_blocks = (N >> 31) + 1;
  const int64_t bx = std::min<int64_t>(std::max<int64_t>(min_blocks, kTargetBlocks / pairs), row_blocks);
  const dim3 grid(static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>(bx, 0x7fffffff))),
                  static_cast<unsigned>(std::min<int64_t>(pairs, 65535)));
  if (shared) {
    launch_kernel(mig_histogram_kernel<scalar_t, true>, grid, dim3(kThreads), g * table_bytes, stream, x,
                  f, N, D, K, lo, hi, bins, C, g, counts);
  } else {
    launch_kernel(mig_histogram_kernel<scalar_t, false>, grid, dim3(kThreads), 0, stream, x, f, N, D,
                  K, lo, hi, bins, C, g, counts);
  }
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_mig_histogram(const float* x, const int64_t* f, int64_t N, int64_t D,
                                 int64_t K, const double* lo, const double* hi, int32_t bins,
                                 int64_t C, unsigned long long* counts, cudaStream_t stream) {
  return launch(x, f, N, D, K, lo, hi, bins, C, counts, stream);
}

cudaError_t launch_mig_histogram(const double* x, const int64_t* f, int64_t N, int64_t D,
                                 int64_t K, const double* lo, const double* hi, int32_t bins,
                                 int64_t C, unsigned long long* counts, cudaStream_t stream) {
  return launch(x, f, N, D, K, lo, hi, bins, C, counts, stream);
}

}  // namespace vaebench
