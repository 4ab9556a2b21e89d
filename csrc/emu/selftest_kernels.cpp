// Small kernels that check the emulator itself (tests/test_cuda_emulator.py):
// that barriers, shuffles, shared and atomic memory behave as CUDA's, and that
// misuse is reported. Written in the CUDA vocabulary the .cu files use.
#include "emu/selftest_kernels.h"

#include <stdexcept>

#include "cuda/launch.h"

namespace vaebench {
namespace emu_selftest {
namespace {

// Each thread writes its index to shared memory and, after the barrier, reads
// the mirror thread's: correct only if the barrier really waits for all.
__global__ void reverse_kernel(int* out) {
  VB_SHARED_ARRAY(int, buf, 1024);
  const int t = threadIdx.x, n = blockDim.x;
  buf[t] = t + 1000 * blockIdx.x;
  __syncthreads();
  out[blockIdx.x * n + t] = buf[n - 1 - t];
}

// Lane l gives 100 l + 7; each shuffle kind's result is stored per lane.
__global__ void shuffle_kernel(int* out, int width) {
  const int lane = threadIdx.x & 31;
  const int v = 100 * lane + 7;
  int* o = out + 4 * threadIdx.x;
  o[0] = __shfl_sync(0xffffffffu, v, lane + 3, width);
  o[1] = __shfl_down_sync(0xffffffffu, v, 5, width);
  o[2] = __shfl_up_sync(0xffffffffu, v, 2, width);
  o[3] = __shfl_xor_sync(0xffffffffu, v, 6, width);
}

// A warp-wide rotation repeated many times: lanes that ran ahead and
// overwrote their value before others read it would show up as wrong sums.
__global__ void lockstep_kernel(long long* out, int rounds) {
  long long v = threadIdx.x;
  for (int r = 0; r < rounds; ++r) v = __shfl_sync(0xffffffffu, v, (threadIdx.x + 1) & 31) + 1;
  out[threadIdx.x] = v;
}

__global__ void divergent_barrier_kernel() {
  if (threadIdx.x < 16) {
    __syncthreads();
  } else {
    __syncthreads();
  }
}

// Lanes 0-15 wait in a full-warp shuffle for lanes 16-31, which wait at a barrier.
__global__ void deadlock_kernel(int* out) {
  if (threadIdx.x < 16) {
    out[threadIdx.x] = __shfl_sync(0xffffffffu, 1, 0);
  } else {
    __syncthreads();
  }
}

// Lanes 16-31 return; lanes 0-15 then shuffle with a mask that names them.
__global__ void exited_lane_kernel(int* out) {
  if (threadIdx.x >= 16) return;
  out[threadIdx.x] = __shfl_down_sync(0xffffffffu, 1, 1);
}

// Threads that return early do not hold up a barrier of the others (as on sm_70+).
__global__ void early_exit_kernel(int* out) {
  VB_SHARED_ARRAY(int, flag, 1);
  if (threadIdx.x >= 8) return;
  if (threadIdx.x == 0) flag[0] = 42;
  __syncthreads();
  out[threadIdx.x] = flag[0];
}

__global__ void uninitialised_kernel(unsigned* out) {
  VB_SHARED_ARRAY(unsigned, s, 4);
  if (threadIdx.x == 0) *out = s[3];
}

// Every thread of every block adds 1 to a shared counter, and each block adds
// its count to the global total.
__global__ void atomic_kernel(unsigned long long* total, float* ftotal) {
  VB_SHARED_ARRAY(unsigned, count, 1);
  if (threadIdx.x == 0) count[0] = 0;
  __syncthreads();
  atomicAdd(&count[0], 1u);
  atomicAdd(ftotal, 0.5f);
  __syncthreads();
  if (threadIdx.x == 0) atomicAdd(total, static_cast<unsigned long long>(count[0]));
}

// Each block keeps its index in its own shared memory while other blocks run.
__global__ void block_private_kernel(int* out, int rounds) {
  VB_SHARED_ARRAY(int, mine, 1);
  int ok = 1;
  for (int r = 0; r < rounds; ++r) {
    if (threadIdx.x == 0) mine[0] = static_cast<int>(blockIdx.x);
    __syncthreads();
    ok &= mine[0] == static_cast<int>(blockIdx.x);
    __syncthreads();
  }
  out[blockIdx.x * blockDim.x + threadIdx.x] = ok;
}

void check_launch() {
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) throw std::runtime_error(std::string("launch failed: ") + cudaGetErrorString(e));
}

}  // namespace

std::vector<int64_t> reverse(int blocks, int threads) {
  std::vector<int> out(static_cast<size_t>(blocks) * threads, -1);
  launch_kernel(reverse_kernel, dim3(blocks), dim3(threads), 0, nullptr, out.data());
  check_launch();
  return std::vector<int64_t>(out.begin(), out.end());
}

std::vector<int64_t> shuffles(int threads, int width) {
  std::vector<int> out(4 * static_cast<size_t>(threads), -1);
  launch_kernel(shuffle_kernel, dim3(1), dim3(threads), 0, nullptr, out.data(), width);
  check_launch();
  return std::vector<int64_t>(out.begin(), out.end());
}

std::vector<int64_t> lockstep(int rounds) {
  std::vector<long long> out(32, -1);
  launch_kernel(lockstep_kernel, dim3(1), dim3(32), 0, nullptr, out.data(), rounds);
  check_launch();
  return std::vector<int64_t>(out.begin(), out.end());
}

void divergent_barrier() {
  launch_kernel(divergent_barrier_kernel, dim3(1), dim3(32), 0, nullptr);
  check_launch();
}

void deadlock() {
  std::vector<int> out(32);
  launch_kernel(deadlock_kernel, dim3(1), dim3(32), 0, nullptr, out.data());
  check_launch();
}

void exited_lane() {
  std::vector<int> out(32);
  launch_kernel(exited_lane_kernel, dim3(1), dim3(32), 0, nullptr, out.data());
  check_launch();
}

std::vector<int64_t> early_exit() {
  std::vector<int> out(8, -1);
  launch_kernel(early_exit_kernel, dim3(1), dim3(64), 0, nullptr, out.data());
  check_launch();
  return std::vector<int64_t>(out.begin(), out.end());
}

int64_t uninitialised_shared() {
  unsigned out = 0;
  launch_kernel(uninitialised_kernel, dim3(1), dim3(32), 0, nullptr, &out);
  check_launch();
  return out;
}

std::pair<int64_t, double> atomics(int blocks, int threads) {
  unsigned long long total = 0;
  float ftotal = 0.0f;
  launch_kernel(atomic_kernel, dim3(blocks), dim3(threads), 0, nullptr, &total, &ftotal);
  check_launch();
  return {static_cast<int64_t>(total), ftotal};
}

std::vector<int64_t> block_private(int blocks, int threads, int rounds) {
  std::vector<int> out(static_cast<size_t>(blocks) * threads, -1);
  launch_kernel(block_private_kernel, dim3(blocks), dim3(threads), 0, nullptr, out.data(), rounds);
  check_launch();
  return std::vector<int64_t>(out.begin(), out.end());
}

void bad_config(int threads, int64_t smem) {
  launch_kernel(divergent_barrier_kernel, dim3(1), dim3(threads), static_cast<size_t>(smem), nullptr);
  check_launch();
}

}  // namespace emu_selftest
}  // namespace vaebench
