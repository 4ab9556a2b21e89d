// Portability macros shared by the C++ (CPU) and CUDA builds.
//
// Every per-element formula of vaebench lives in a header under this folder and
// is marked VB_HD, so the CPU extension and the CUDA kernels compile the very
// same code: the CPU tests exercise what the GPU runs.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define VB_HD __host__ __device__ __forceinline__
#else
#define VB_HD inline __attribute__((always_inline))
#endif

namespace vaebench {

// Bit casts that work in host and device code alike.
VB_HD uint32_t float_bits(float x) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(x);
#else
  return __builtin_bit_cast(uint32_t, x);
#endif
}

VB_HD float bits_float(uint32_t b) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(b);
#else
  return __builtin_bit_cast(float, b);
#endif
}

VB_HD uint64_t double_bits(double x) {
#if defined(__CUDA_ARCH__)
  return static_cast<uint64_t>(__double_as_longlong(x));
#else
  return __builtin_bit_cast(uint64_t, x);
#endif
}

VB_HD double bits_double(uint64_t b) {
#if defined(__CUDA_ARCH__)
  return __longlong_as_double(static_cast<long long>(b));
#else
  return __builtin_bit_cast(double, b);
#endif
}

// Explicit fused multiply-add. Both builds compile with contraction off
// (-ffp-contract=off, nvcc --fmad=false), so every rounding step is spelled
// out here and the host and device results agree bit for bit.
VB_HD float fma_f(float a, float b, float c) {
#if defined(__CUDA_ARCH__)
  return __fmaf_rn(a, b, c);
#else
  return __builtin_fmaf(a, b, c);
#endif
}

// Correctly rounded square root on both sides (nvcc's default -prec-sqrt=true).
VB_HD float sqrt_f(float x) {
#if defined(__CUDA_ARCH__)
  return __fsqrt_rn(x);
#else
  return __builtin_sqrtf(x);
#endif
}

VB_HD float rint_f(float x) {
#if defined(__CUDA_ARCH__)
  return rintf(x);
#else
  return __builtin_rintf(x);
#endif
}

}  // namespace vaebench
