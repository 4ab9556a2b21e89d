// The accumulation type of each input dtype (float for half, bfloat16 and float; double for
// double), the conversions to and from it, and the launchers' dtype switch, shared by the .cu
// kernels. Included inside their anonymous namespace's enclosing vaebench::cuda, after
// cuda_fp16.h / cuda_bf16.h.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace vaebench {
namespace cuda {
namespace {

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

__host__ __device__ __forceinline__ int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

}  // namespace

// The launchers' dtype switch: FN<S>(...) for the storage type S of `dtype` (a cuda::Dtype,
// csrc/cuda/reparam_kl.h).
#define VB_DISPATCH(dtype, FN, ...)                                  \
  switch (dtype) {                                                   \
    case Dtype::kFloat16: FN<__half>(__VA_ARGS__); break;            \
    case Dtype::kBFloat16: FN<__nv_bfloat16>(__VA_ARGS__); break;    \
    case Dtype::kFloat32: FN<float>(__VA_ARGS__); break;             \
    case Dtype::kFloat64: FN<double>(__VA_ARGS__); break;            \
  }

}  // namespace cuda
}  // namespace vaebench
