// A CPU emulation of the CUDA execution model, as much of it as vaebench's
// kernels use, so that the .cu sources compile as host C++ (see
// csrc/cuda/launch.h) and run in tests on machines without a GPU.
//
// Every thread of a block is a real std::thread: __syncthreads is a real
// barrier, warp shuffles are a real rendezvous of the warp's lanes (lockstep
// semantics), __shared__ memory exists once per block and starts as garbage
// (all bits set), atomics are hardware atomics. Blocks run in a shuffled order,
// a few at a time. Misuse that a GPU would turn into hangs or silent garbage
// is an error here: a barrier reached from different places in one phase, a
// block whose threads all wait, a shuffle whose mask names an exited lane.
//
// The float math is the host compiler's: the emulation checks indexing,
// synchronisation and results, not device rounding (tests/test_cuda_sources.py
// checks the PTX for that) nor speed.
#pragma once

#include <cuda_runtime_api.h>  // dim3, uint3, cudaStream_t, cudaError_t: types only, no libcudart

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#ifndef __launch_bounds__
#define __launch_bounds__(...)
#endif

// The running emulated thread's built-in coordinates (set by the emulator).
extern thread_local uint3 threadIdx;
extern thread_local uint3 blockIdx;
extern thread_local dim3 blockDim;
extern thread_local dim3 gridDim;
constexpr int warpSize = 32;

namespace vaebench {
namespace emu {

// Runs body() as every thread of every block of a grid. A bad configuration
// sets the error that cudaGetLastError() returns (and runs nothing), as CUDA
// does; a misuse found while running throws std::runtime_error.
void run(dim3 grid, dim3 block, size_t dynamic_smem, const std::function<void()>& body);

template <typename... P, typename... A>
void launch(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem, cudaStream_t /*stream*/,
            A&&... args) {
  // Converted once, as the launch does; every thread then gets its own copy.
  const std::tuple<std::decay_t<P>...> params(static_cast<P>(std::forward<A>(args))...);
  run(grid, block, smem, [&] { std::apply(kernel, params); });
}

// Shared memory of the running block: the launch's dynamic bytes, or the
// static array declared at `key` (one per declaration, created by its first use).
void* dynamic_shared_bytes();
void* static_shared_bytes(const void* key, size_t bytes, size_t align);

template <typename T>
T* dynamic_shared() {
  return static_cast<T*>(dynamic_shared_bytes());
}

template <typename T>
T* static_shared(const void* key, size_t n) {
  return static_cast<T*>(static_shared_bytes(key, n * sizeof(T), alignof(T)));
}

void syncthreads(const char* file, int line);
void syncwarp(unsigned mask, const char* file, int line);
// The lanes of `mask` exchange `size` bytes: each gives `in` and receives
// what lane `src` gave (src's own value where src is outside the lane's group).
void warp_exchange(unsigned mask, const void* in, void* out, size_t size, int src, const char* file, int line);
int lane_id();

// Launches since the last clear, for tests that check which path a launcher took.
struct LaunchRecord {
  dim3 grid, block;
  size_t dynamic_smem;
};
std::vector<LaunchRecord> launches();
void clear_launches();

// Caps on the grid actually run (grid-stride kernels must give the same result
// with fewer blocks), blocks resident at once, and the block-order shuffle seed.
struct Options {
  unsigned max_grid_x = 0, max_grid_y = 0;  // 0: no cap
  int resident_blocks = 2;
  uint64_t order_seed = 1;
};
void set_options(const Options& options);
Options options();

template <typename T>
T shuffle(unsigned mask, T v, int src, const char* file, int line) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "shuffles move up to 8 trivial bytes");
  T out;
  warp_exchange(mask, &v, &out, sizeof(T), src, file, line);
  return out;
}

}  // namespace emu
}  // namespace vaebench

// ---- the CUDA device vocabulary -----------------------------------------------

#define __syncthreads() ::vaebench::emu::syncthreads(__FILE__, __LINE__)
#define __syncwarp(...) ::vaebench::emu::syncwarp(::vaebench::emu::warp_mask(__VA_ARGS__), __FILE__, __LINE__)
#define __shfl_sync(mask, v, ...) ::vaebench::emu::shfl_idx(mask, v, __FILE__, __LINE__, __VA_ARGS__)
#define __shfl_down_sync(mask, v, ...) ::vaebench::emu::shfl_down(mask, v, __FILE__, __LINE__, __VA_ARGS__)
#define __shfl_up_sync(mask, v, ...) ::vaebench::emu::shfl_up(mask, v, __FILE__, __LINE__, __VA_ARGS__)
#define __shfl_xor_sync(mask, v, ...) ::vaebench::emu::shfl_xor(mask, v, __FILE__, __LINE__, __VA_ARGS__)

namespace vaebench {
namespace emu {

inline unsigned warp_mask(unsigned mask = 0xffffffffu) { return mask; }

// Source lanes as the PTX shfl instruction defines them: within segments of
// `width` lanes; out of the segment, a lane keeps its own value.
template <typename T>
T shfl_idx(unsigned mask, T v, const char* file, int line, int src, int width = 32) {
  const int lane = lane_id();
  return shuffle(mask, v, (lane & ~(width - 1)) + (src & (width - 1)), file, line);
}

template <typename T>
T shfl_down(unsigned mask, T v, const char* file, int line, unsigned delta, int width = 32) {
  const int lane = lane_id();
  const int src = (lane & (width - 1)) + static_cast<int>(delta) < width ? lane + static_cast<int>(delta) : lane;
  return shuffle(mask, v, src, file, line);
}

template <typename T>
T shfl_up(unsigned mask, T v, const char* file, int line, unsigned delta, int width = 32) {
  const int lane = lane_id();
  const int src = (lane & (width - 1)) >= static_cast<int>(delta) ? lane - static_cast<int>(delta) : lane;
  return shuffle(mask, v, src, file, line);
}

template <typename T>
T shfl_xor(unsigned mask, T v, const char* file, int line, int lane_mask, int width = 32) {
  const int lane = lane_id();
  const int src = lane ^ lane_mask;
  return shuffle(mask, v, (src & ~(width - 1)) == (lane & ~(width - 1)) ? src : lane, file, line);
}

template <typename T>
T atomic_add_float(T* p, T v) {
  T old, sum;
  __atomic_load(p, &old, __ATOMIC_RELAXED);
  do {
    sum = old + v;
  } while (!__atomic_compare_exchange(p, &old, &sum, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
  return old;
}

}  // namespace emu
}  // namespace vaebench

// CUDA atomics are relaxed read-modify-writes returning the old value.
inline int atomicAdd(int* p, int v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
inline unsigned int atomicAdd(unsigned int* p, unsigned int v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) {
  return __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
}
inline float atomicAdd(float* p, float v) { return ::vaebench::emu::atomic_add_float(p, v); }
inline double atomicAdd(double* p, double v) { return ::vaebench::emu::atomic_add_float(p, v); }
inline unsigned int atomicCAS(unsigned int* p, unsigned int expected, unsigned int desired) {
  __atomic_compare_exchange_n(p, &expected, desired, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
  return expected;
}
inline unsigned long long atomicCAS(unsigned long long* p, unsigned long long expected, unsigned long long desired) {
  __atomic_compare_exchange_n(p, &expected, desired, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
  return expected;
}
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
