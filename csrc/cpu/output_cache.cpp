// See output_cache.h for why the fused CPU ops reuse their output buffers.
#include "output_cache.h"

#include <c10/core/Allocator.h>
#include <c10/util/Exception.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <unordered_map>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace vaebench {
namespace {

constexpr size_t kMinCachedBytes = size_t{1} << 20;
constexpr size_t kHugePage = size_t{2} << 20;
constexpr size_t kSmallGranule = size_t{64} << 10;

size_t limit_from_env() {
  const char* s = std::getenv("VAEBENCH_CPU_OUTPUT_CACHE_MB");
  if (s == nullptr || *s == '\0') return size_t{512} << 20;
  char* end = nullptr;
  const long long mb = std::strtoll(s, &end, 10);
  TORCH_CHECK(end != s && *end == '\0' && mb >= 0,
              "VAEBENCH_CPU_OUTPUT_CACHE_MB: expected a whole number of megabytes >= 0, got '", s, "'");
  return static_cast<size_t>(mb) << 20;
}

class OutputCache final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t n) override {
    const size_t bytes = rounded(n);
    void* p = nullptr;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = limit_ == 0 ? free_.end() : free_.find(bytes);
      if (it != free_.end()) {
        p = it->second;
        free_.erase(it);
        held_ -= bytes;
        ++hits_;
      } else {
        ++misses_;
      }
    }
    if (p == nullptr) p = fresh(bytes);
    return {p, p, &release, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &release; }

  void copy_data(void* dest, const void* src, size_t count) const override {
    default_copy_data(dest, src, count);
  }

  std::vector<int64_t> stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return {static_cast<int64_t>(held_), static_cast<int64_t>(free_.size()),
            static_cast<int64_t>(limit_), hits_, misses_};
  }

  void clear() {
    std::lock_guard<std::mutex> lock(mutex_);
    while (!free_.empty()) evict_one_locked();
  }

  size_t set_limit(size_t limit) {
    std::lock_guard<std::mutex> lock(mutex_);
    const size_t previous = limit_;
    limit_ = limit;
    while (held_ > limit_) evict_one_locked();
    return previous;
  }

  static OutputCache& get() {
    // Leaked on purpose: tensors may be freed after static destructors have run.
    static OutputCache* cache = new OutputCache();
    return *cache;
  }

 private:
  // Sizes are rounded so that batches of nearby sizes share blocks; large
  // blocks are whole 2 MB pages so they can be backed by huge pages.
  static size_t rounded(size_t n) {
    const size_t g = n >= 4 * kHugePage ? kHugePage : kSmallGranule;
    return (std::max<size_t>(n, 1) + g - 1) / g * g;
  }

  void* fresh(size_t bytes) {
    const size_t align = bytes >= 4 * kHugePage ? kHugePage : 64;
    void* p = nullptr;
    if (posix_memalign(&p, align, bytes) != 0) {
      clear();  // give back what is held, then try once more
      if (posix_memalign(&p, align, bytes) != 0) {
        TORCH_CHECK_WITH(OutOfMemoryError, false, "vaebench: could not allocate ", bytes,
                         " bytes for an op output on the CPU");
      }
    }
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    // First touch then faults 2 MB pages instead of 4 KB ones (a hint; errors ignored).
    if (align == kHugePage) madvise(p, bytes, MADV_HUGEPAGE);
#endif
    std::lock_guard<std::mutex> lock(mutex_);
    sizes_[p] = bytes;
    return p;
  }

  static void release(void* p) {
    if (p == nullptr) return;
    OutputCache& c = get();
    std::lock_guard<std::mutex> lock(c.mutex_);
    const size_t bytes = c.sizes_.at(p);
    if (bytes > c.limit_) {
      c.sizes_.erase(p);
      std::free(p);
      return;
    }
    while (c.held_ + bytes > c.limit_) c.evict_one_locked();
    c.free_.emplace(bytes, p);
    c.held_ += bytes;
  }

  // Frees the smallest unused block (large blocks are the ones worth keeping).
  void evict_one_locked() {
    auto it = free_.begin();
    held_ -= it->first;
    sizes_.erase(it->second);
    std::free(it->second);
    free_.erase(it);
  }

  std::mutex mutex_;
  std::multimap<size_t, void*> free_;        // unused blocks by size
  std::unordered_map<void*, size_t> sizes_;  // every block this cache made
  size_t held_ = 0;
  size_t limit_ = limit_from_env();
  int64_t hits_ = 0, misses_ = 0;
};

}  // namespace

at::Tensor empty_output(at::IntArrayRef sizes, const at::TensorOptions& options) {
  TORCH_INTERNAL_ASSERT(options.device().is_cpu());
  const int64_t numel = c10::multiply_integers(sizes);
  const size_t bytes = static_cast<size_t>(numel) * c10::elementSize(options.dtype().toScalarType());
  if (bytes < kMinCachedBytes) return at::empty(sizes, options);
  return at::detail::empty_generic(sizes, &OutputCache::get(), c10::DispatchKeySet(c10::DispatchKey::CPU),
                                   options.dtype().toScalarType(), c10::MemoryFormat::Contiguous);
}

std::vector<int64_t> cpu_output_cache_stats() { return OutputCache::get().stats(); }

void empty_cpu_output_cache() { OutputCache::get().clear(); }

int64_t set_cpu_output_cache_limit(int64_t limit_bytes) {
  TORCH_CHECK(limit_bytes >= 0, "set_cpu_output_cache_limit: limit_bytes must be >= 0, got ", limit_bytes);
  return static_cast<int64_t>(OutputCache::get().set_limit(static_cast<size_t>(limit_bytes)));
}

}  // namespace vaebench
