// Kernels that check the CPU emulator itself (see selftest_kernels.cpp).
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

namespace vaebench {
namespace emu_selftest {

std::vector<int64_t> reverse(int blocks, int threads);
std::vector<int64_t> shuffles(int threads, int width);
std::vector<int64_t> lockstep(int rounds);
void divergent_barrier();
void deadlock();
void exited_lane();
std::vector<int64_t> early_exit();
int64_t uninitialised_shared();
std::pair<int64_t, double> atomics(int blocks, int threads);
std::vector<int64_t> block_private(int blocks, int threads, int rounds);
void bad_config(int threads, int64_t smem);

}  // namespace emu_selftest
}  // namespace vaebench
