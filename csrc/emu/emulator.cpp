// The CPU emulator's engine (see emulator.h): threads, blocks, barriers,
// shuffles and shared memory.
//
// A launch has a few block slots (an SM's worth each); a slot owns one
// std::thread per thread of a block and runs blocks one after another, taking
// the next from a shuffled order. Between blocks the slot's threads meet at a
// gate (not visible to kernels) whose completion step sets up the next block.
// All waits of a block share the block's mutex, which also keeps an exact
// count of waiting and exited threads: when every thread of a block waits or
// has exited and none can be released, that is a deadlock and the launch fails.
#include "emu/emulator.h"

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>

thread_local uint3 threadIdx;
thread_local uint3 blockIdx;
thread_local dim3 blockDim;
thread_local dim3 gridDim;

namespace vaebench {
namespace emu {
namespace {

constexpr size_t kSharedLimit = 48 * 1024;  // per block, without the opt-in attribute
constexpr unsigned char kGarbage = 0xFF;     // fresh shared memory: NaN as float, huge as integers
constexpr auto kPoll = std::chrono::milliseconds(20);

struct Aborted {};  // unwinds a thread once its launch has failed

struct Launch;

// A phase barrier whose party count is set per phase (warps: the shuffle mask)
// or shrinks as threads exit (__syncthreads).
struct Barrier {
  int expected = 0, arrived = 0;
  uint64_t phase = 0;
  unsigned mask = 0;             // warps: the lanes of this phase
  const char* file = nullptr;    // the call site of this phase's first arrival
  int line = 0;
  std::condition_variable cv;
};

struct Warp {
  Barrier bar;
  unsigned present = 0, alive = 0;  // lanes that exist / have not exited
  unsigned char slots[32][8];
};

struct AlignedBytes {
  void operator()(unsigned char* p) const { ::operator delete[](p, std::align_val_t(64)); }
};
using Bytes = std::unique_ptr<unsigned char[], AlignedBytes>;

Bytes garbage_bytes(size_t n) {
  Bytes b(static_cast<unsigned char*>(::operator new[](std::max<size_t>(n, 1), std::align_val_t(64))));
  std::memset(b.get(), kGarbage, n);
  return b;
}

// One resident block: its threads, barriers and shared memory.
struct Slot {
  Launch* launch = nullptr;
  int threads = 0;
  std::mutex m;
  int waiting = 0, exited = 0;
  Barrier sync;
  std::vector<Warp> warps;
  uint3 block{0, 0, 0};
  bool done = false;
  Bytes dynamic;
  size_t dynamic_bytes = 0, static_bytes = 0;
  std::map<const void*, Bytes> statics;
};

struct Launch {
  dim3 grid, block;
  size_t smem = 0;
  const std::function<void()>* body = nullptr;
  std::vector<uint64_t> order;
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex error_m;
  std::string error;

  void fail(const std::string& what) {
    std::lock_guard<std::mutex> lk(error_m);
    if (error.empty()) error = what;
    failed = true;
  }
};

thread_local Slot* tl_slot = nullptr;
thread_local int tl_thread = 0;  // linear index in the block
thread_local cudaError_t tl_last_error = cudaSuccess;

std::mutex g_m;
Options g_options;
std::vector<LaunchRecord> g_launches;

std::string site(const char* file, int line) { return std::string(file ? file : "?") + ":" + std::to_string(line); }

Slot& current_slot() {
  if (tl_slot == nullptr) throw std::logic_error("CUDA emulator: device function called outside a kernel");
  return *tl_slot;
}

// Fails the launch; the caller holds s.m. Waiters notice within kPoll.
[[noreturn]] void fail_locked(Slot& s, const std::string& what) {
  s.launch->fail(what);
  throw Aborted{};
}

void check_deadlock(Slot& s) {
  if (s.waiting > 0 && s.waiting + s.exited == s.threads) {
    fail_locked(s, "CUDA emulator: deadlock in block (" + std::to_string(s.block.x) + "," +
                       std::to_string(s.block.y) + "," + std::to_string(s.block.z) +
                       "): every thread waits at a barrier or shuffle that cannot complete "
                       "(a barrier skipped by some threads, or lanes that never reach a shuffle)");
  }
}

// Completes b's phase, waking its `waiters`.
void release(Slot& s, Barrier& b, int waiters) {
  s.waiting -= waiters;
  b.arrived = 0;
  b.file = nullptr;
  ++b.phase;
  b.cv.notify_all();
}

// Arrives at b from call site (file, line) and waits for the phase to complete.
void arrive_and_wait(Slot& s, Barrier& b, std::unique_lock<std::mutex>& lk, const char* what,
                     const char* file, int line) {
  if (s.launch->failed) throw Aborted{};
  if (b.arrived == 0) {
    b.file = file;
    b.line = line;
  } else if (b.line != line || std::strcmp(b.file, file) != 0) {
    fail_locked(s, std::string("CUDA emulator: ") + what + " reached at " + site(b.file, b.line) + " and at " +
                       site(file, line) + " in one phase (a barrier in divergent code)");
  }
  if (++b.arrived == b.expected) {
    release(s, b, b.arrived - 1);  // all but this thread were waiting
    return;
  }
  ++s.waiting;
  check_deadlock(s);
  const uint64_t phase = b.phase;
  while (b.phase == phase) {
    b.cv.wait_for(lk, kPoll);
    if (b.phase == phase && s.launch->failed) throw Aborted{};
  }
}

// A thread leaves its block: barriers stop waiting for it.
void exit_thread(Slot& s) {
  std::unique_lock<std::mutex> lk(s.m);
  ++s.exited;
  Warp& w = s.warps[tl_thread / 32];
  const unsigned bit = 1u << (tl_thread % 32);
  w.alive &= ~bit;
  if (s.launch->failed) return;
  try {
    if (w.bar.arrived > 0 && (w.bar.mask & bit)) {
      fail_locked(s, "CUDA emulator: lane " + std::to_string(tl_thread % 32) + " of warp " +
                         std::to_string(tl_thread / 32) + " exited while its warp waits for it at " +
                         site(w.bar.file, w.bar.line));
    }
    --s.sync.expected;
    if (s.sync.arrived > 0 && s.sync.arrived == s.sync.expected) release(s, s.sync, s.sync.arrived);
    check_deadlock(s);
  } catch (const Aborted&) {
  }
}

// Sets up the slot's next block (runs once per gate phase, all threads parked).
void next_block(Slot& s) {
  Launch& L = *s.launch;
  const size_t i = L.next.fetch_add(1);
  if (L.failed || i >= L.order.size()) {
    s.done = true;
    return;
  }
  const uint64_t b = L.order[i];
  s.block = uint3{static_cast<unsigned>(b % L.grid.x), static_cast<unsigned>(b / L.grid.x % L.grid.y),
                  static_cast<unsigned>(b / L.grid.x / L.grid.y)};
  s.waiting = s.exited = 0;
  s.sync.expected = s.threads;
  s.sync.arrived = 0;
  for (int w = 0; w < static_cast<int>(s.warps.size()); ++w) {
    const int lanes = std::min(32, s.threads - 32 * w);
    s.warps[w].present = s.warps[w].alive = lanes == 32 ? 0xffffffffu : (1u << lanes) - 1u;
    s.warps[w].bar.arrived = 0;
  }
  std::memset(s.dynamic.get(), kGarbage, s.dynamic_bytes);
  s.statics.clear();
  s.static_bytes = 0;
}

struct GateStep {
  Slot* slot;
  void operator()() noexcept { next_block(*slot); }
};

void thread_main(Slot& s, std::barrier<GateStep>& gate, int t) {
  Launch& L = *s.launch;
  tl_slot = &s;
  tl_thread = t;
  threadIdx = uint3{t % L.block.x, t / L.block.x % L.block.y, t / L.block.x / L.block.y};
  blockDim = L.block;
  gridDim = L.grid;
  for (;;) {
    gate.arrive_and_wait();
    if (s.done) break;
    blockIdx = s.block;
    try {
      (*L.body)();
    } catch (const Aborted&) {
    } catch (const std::exception& e) {
      L.fail(std::string("CUDA emulator: exception in a kernel: ") + e.what());
    } catch (...) {
      L.fail("CUDA emulator: unknown exception in a kernel");
    }
    exit_thread(s);
  }
  tl_slot = nullptr;
}

cudaError_t check_config(dim3 grid, dim3 block, size_t smem) {
  const uint64_t threads = uint64_t{block.x} * block.y * block.z;
  if (threads == 0 || threads > 1024 || block.z > 64) return cudaErrorInvalidConfiguration;
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 0x7fffffffu || grid.y > 65535 || grid.z > 65535)
    return cudaErrorInvalidConfiguration;
  if (smem > kSharedLimit) return cudaErrorInvalidValue;
  return cudaSuccess;
}

}  // namespace

void run(dim3 grid, dim3 block, size_t dynamic_smem, const std::function<void()>& body) {
  if (tl_slot != nullptr) throw std::logic_error("CUDA emulator: a launch from inside a kernel");
  const cudaError_t config = check_config(grid, block, dynamic_smem);
  if (config != cudaSuccess) {
    tl_last_error = config;
    return;
  }
  Options opt;
  {
    std::lock_guard<std::mutex> lk(g_m);
    opt = g_options;
    g_launches.push_back(LaunchRecord{grid, block, dynamic_smem});
  }
  Launch L;
  L.grid = grid;
  L.block = block;
  if (opt.max_grid_x) L.grid.x = std::min(L.grid.x, opt.max_grid_x);
  if (opt.max_grid_y) L.grid.y = std::min(L.grid.y, opt.max_grid_y);
  L.smem = dynamic_smem;
  L.body = &body;
  L.order.resize(uint64_t{L.grid.x} * L.grid.y * L.grid.z);
  std::iota(L.order.begin(), L.order.end(), uint64_t{0});
  std::shuffle(L.order.begin(), L.order.end(), std::mt19937_64(opt.order_seed));  // no block order is promised

  const int threads = static_cast<int>(block.x * block.y * block.z);
  const int slots = static_cast<int>(std::min<uint64_t>(std::max(1, opt.resident_blocks), L.order.size()));
  std::vector<std::unique_ptr<Slot>> slot(slots);
  std::vector<std::unique_ptr<std::barrier<GateStep>>> gates(slots);
  std::vector<std::thread> workers;
  workers.reserve(static_cast<size_t>(slots) * threads);
  for (int k = 0; k < slots; ++k) {
    slot[k] = std::make_unique<Slot>();
    Slot& s = *slot[k];
    s.launch = &L;
    s.threads = threads;
    s.warps = std::vector<Warp>((threads + 31) / 32);
    s.dynamic_bytes = dynamic_smem;
    s.dynamic = garbage_bytes(dynamic_smem);
    gates[k] = std::make_unique<std::barrier<GateStep>>(threads, GateStep{&s});
  }
  try {
    for (int k = 0; k < slots; ++k)
      for (int t = 0; t < threads; ++t) workers.emplace_back(thread_main, std::ref(*slot[k]), std::ref(*gates[k]), t);
  } catch (...) {
    L.fail("CUDA emulator: could not start the block's threads");
    throw;  // the started threads cannot be joined past a half-full gate: a setup failure ends the process
  }
  for (auto& w : workers) w.join();
  if (L.failed) throw std::runtime_error(L.error);
}

void* dynamic_shared_bytes() { return current_slot().dynamic.get(); }

void* static_shared_bytes(const void* key, size_t bytes, size_t align) {
  Slot& s = current_slot();
  std::unique_lock<std::mutex> lk(s.m);
  auto it = s.statics.find(key);
  if (it == s.statics.end()) {
    if (align > 64) fail_locked(s, "CUDA emulator: __shared__ alignment above 64 bytes");
    s.static_bytes += bytes;
    if (s.static_bytes + s.dynamic_bytes > kSharedLimit)
      fail_locked(s, "CUDA emulator: static plus dynamic shared memory exceeds 48 KB per block");
    it = s.statics.emplace(key, garbage_bytes(bytes)).first;
  }
  return it->second.get();
}

void syncthreads(const char* file, int line) {
  Slot& s = current_slot();
  std::unique_lock<std::mutex> lk(s.m);
  arrive_and_wait(s, s.sync, lk, "__syncthreads", file, line);
}

namespace {

// Joins the warp's rendezvous for `mask` from (file, line); checks the mask.
void warp_rendezvous(Slot& s, Warp& w, unsigned mask, std::unique_lock<std::mutex>& lk, const char* what,
                     const char* file, int line) {
  const unsigned bit = 1u << (tl_thread % 32);
  if (!(mask & bit)) fail_locked(s, std::string("CUDA emulator: ") + what + " at " + site(file, line) +
                                        " from a lane outside its mask");
  if (mask & ~w.present)
    fail_locked(s, std::string("CUDA emulator: ") + what + " at " + site(file, line) + " names lanes that do not exist");
  if (mask & ~w.alive)
    fail_locked(s, std::string("CUDA emulator: ") + what + " at " + site(file, line) + " names lanes that have exited");
  if (w.bar.arrived == 0) {
    w.bar.mask = mask;
    w.bar.expected = __builtin_popcount(mask);
  } else if (w.bar.mask != mask) {
    fail_locked(s, std::string("CUDA emulator: lanes of one warp meet at ") + what + " with different masks");
  }
  arrive_and_wait(s, w.bar, lk, what, file, line);
}

}  // namespace

void syncwarp(unsigned mask, const char* file, int line) {
  Slot& s = current_slot();
  std::unique_lock<std::mutex> lk(s.m);
  warp_rendezvous(s, s.warps[tl_thread / 32], mask, lk, "__syncwarp", file, line);
}

void warp_exchange(unsigned mask, const void* in, void* out, size_t size, int src, const char* file, int line) {
  Slot& s = current_slot();
  Warp& w = s.warps[tl_thread / 32];
  std::unique_lock<std::mutex> lk(s.m);
  std::memcpy(w.slots[tl_thread % 32], in, size);
  warp_rendezvous(s, w, mask, lk, "__shfl_*_sync", file, line);  // every lane has written
  if (!(mask & (1u << src)))
    fail_locked(s, "CUDA emulator: shuffle at " + site(file, line) + " reads lane " + std::to_string(src) +
                       ", outside its mask");
  std::memcpy(out, w.slots[src], size);
  warp_rendezvous(s, w, mask, lk, "__shfl_*_sync", file, line);  // every lane has read
}

int lane_id() {
  current_slot();  // (outside a kernel: an error, not lane 0)
  return tl_thread % 32;
}

std::vector<LaunchRecord> launches() {
  std::lock_guard<std::mutex> lk(g_m);
  return g_launches;
}

void clear_launches() {
  std::lock_guard<std::mutex> lk(g_m);
  g_launches.clear();
}

void set_options(const Options& options) {
  if (options.resident_blocks < 1) throw std::invalid_argument("CUDA emulator: resident_blocks must be >= 1");
  std::lock_guard<std::mutex> lk(g_m);
  g_options = options;
}

Options options() {
  std::lock_guard<std::mutex> lk(g_m);
  return g_options;
}

}  // namespace emu
}  // namespace vaebench

// The emulator is the CUDA runtime of the emulated build (libcudart is not
// linked): the launchers' error checks read its launch errors.
extern "C" cudaError_t cudaGetLastError(void) {
  const cudaError_t e = vaebench::emu::tl_last_error;
  vaebench::emu::tl_last_error = cudaSuccess;
  return e;
}

extern "C" cudaError_t cudaPeekAtLastError(void) { return vaebench::emu::tl_last_error; }

extern "C" const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error (CUDA emulator)";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument (CUDA emulator)";
    case cudaErrorInvalidValue: return "invalid argument (CUDA emulator)";
    default: return "error (CUDA emulator)";
  }
}
