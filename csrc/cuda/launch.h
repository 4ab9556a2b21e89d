// The few CUDA constructs whose spelling differs between nvcc and the CPU
// emulator of csrc/emu: kernel launches and __shared__ declarations. The .cu
// files use these instead of the raw syntax, so the very same sources compile
// with nvcc for the GPU and as host C++ for the emulated tests.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <utility>

#if defined(__CUDACC__)

// A block-wide __shared__ array of n elements of T.
#define VB_SHARED_ARRAY(T, name, n) __shared__ T name[n]
// The block's dynamic shared memory (the launch's smem bytes), as T[].
#define VB_DYNAMIC_SHARED(T, name) extern __shared__ T name[]

namespace vaebench {

// kernel<<<grid, block, smem, stream>>>(args...), each argument converted to
// the kernel's parameter type.
template <typename... P, typename... A>
inline void launch_kernel(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem,
                          cudaStream_t stream, A&&... args) {
  kernel<<<grid, block, smem, stream>>>(static_cast<P>(std::forward<A>(args))...);
}

}  // namespace vaebench

#else  // host C++: the CPU emulator runs the kernels

#include "emu/emulator.h"

#define VB_SHARED_ARRAY(T, name, n)        \
  static char name##_shared_key;            \
  T* const name = ::vaebench::emu::static_shared<T>(&name##_shared_key, (n))
#define VB_DYNAMIC_SHARED(T, name) T* const name = ::vaebench::emu::dynamic_shared<T>()

namespace vaebench {

template <typename... P, typename... A>
inline void launch_kernel(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem,
                          cudaStream_t stream, A&&... args) {
  ::vaebench::emu::launch(kernel, grid, block, smem, stream, std::forward<A>(args)...);
}

}  // namespace vaebench

#endif
