// A small cache of large CPU output buffers, reused across calls of the fused ops.
//
// Why: a large at::empty is a fresh mmap, and the kernel zero-fills every page
// on first touch. At (65536, 128) float32 that zeroing was ~30% of the fused
// forward+backward time on the 2-core reference machine (perf: clear_page_erms),
// more than the kernels' own arithmetic. A training loop allocates outputs of
// the same sizes every step, so handing freed blocks back (as CUDA's caching
// allocator does) removes that cost. Only blocks of at least kMinCachedBytes go
// through the cache; at most VAEBENCH_CPU_OUTPUT_CACHE_MB megabytes (default
// 512, 0 disables caching) stay held while unused.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

namespace vaebench {

// Like at::empty(sizes, options) on the CPU (contiguous, uninitialised), with
// storage from the output cache when large.
at::Tensor empty_output(at::IntArrayRef sizes, const at::TensorOptions& options);

// [bytes held unused, blocks held unused, limit in bytes, hits, misses]
std::vector<int64_t> cpu_output_cache_stats();

// Returns every unused block to the system.
void empty_cpu_output_cache();

// Sets the most bytes held unused (0: no caching), evicting down to it; returns the previous limit.
int64_t set_cpu_output_cache_limit(int64_t limit_bytes);

}  // namespace vaebench
