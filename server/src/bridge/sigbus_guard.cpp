#include "sigbus_guard.hpp"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <mutex>

namespace shmarray::bridge {
namespace {

// One registered range. base and size change together under a seqlock (gen odd while they
// change; changes are serialised by g_mutex): the handler uses a pair only if gen was even and
// the same before and after it read both, so it never pairs one range's base with another's size
// (which would map zeros past the end of the range, over whatever follows it). users is only
// touched under g_mutex.
struct Slot {
  std::atomic<std::uint32_t> gen{0};
  std::atomic<std::uintptr_t> base{0};
  std::atomic<std::size_t> size{0};
  std::atomic<std::uint32_t> truncated{0};
  std::size_t users = 0;  // under g_mutex
};
static_assert(std::atomic<std::uintptr_t>::is_always_lock_free);
static_assert(std::atomic<std::size_t>::is_always_lock_free);
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);  // gen and truncated

// One per source array mirrored by some peer (all links together share a slot per array).
constexpr std::size_t kSlots = 8192;
std::array<Slot, kSlots> g_slots;
std::mutex g_mutex;
std::uintptr_t g_page_size = 4096;  // set once by install_sigbus_guard, before any thread
std::atomic<bool> g_installed{false};
// Local-exec TLS (the bridge is an executable): plain memory accesses, safe in the handler;
// volatile sig_atomic_t as for any flag shared between a thread and its own signal handler.
thread_local volatile sig_atomic_t t_opening = 0;
thread_local volatile sig_atomic_t t_open_faulted = 0;

// Under g_mutex: gives `slot` the range [base, base + size) (base 0: none).
void set_range(Slot& slot, std::uintptr_t base, std::size_t size) noexcept {
  const std::uint32_t g = slot.gen.load(std::memory_order_relaxed);
  slot.gen.store(g + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  slot.size.store(size, std::memory_order_relaxed);
  slot.base.store(base, std::memory_order_relaxed);
  slot.gen.store(g + 2, std::memory_order_release);
}

// In the handler: the slot's range if it holds one, read whole (seqlock reader: nothing else
// may be read, so a slot changing just now is one that holds no range in use).
bool range_of(const Slot& slot, std::uintptr_t& base, std::uintptr_t& end) noexcept {
  const std::uint32_t g1 = slot.gen.load(std::memory_order_acquire);
  if ((g1 & 1u) != 0) return false;
  base = slot.base.load(std::memory_order_relaxed);
  const std::size_t size = slot.size.load(std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_acquire);
  if (slot.gen.load(std::memory_order_relaxed) != g1 || base == 0) return false;
  end = base + size;
  return true;
}

bool map_zeros(std::uintptr_t from, std::uintptr_t to) noexcept {
  void* p = ::mmap(reinterpret_cast<void*>(from), to - from, PROT_READ | PROT_WRITE,
                   MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p != MAP_FAILED;
}

// The handler before ours (UCX installs one that prints a backtrace: UCX_ERROR_SIGNALS).
struct sigaction g_previous{};

void die_of_sigbus(const siginfo_t* info) noexcept {
  ::sigaction(SIGBUS, &g_previous, nullptr);
  // A fault re-runs its instruction on return and meets the previous handler (or the default
  // action) with the right context; a SIGBUS sent by kill() would not come back: re-raise it.
  if (info == nullptr || info->si_code <= 0) ::raise(SIGBUS);
}

extern "C" void on_sigbus(int, siginfo_t* info, void*) {
  const int saved_errno = errno;
  const auto addr = info != nullptr && info->si_code > 0
                        ? reinterpret_cast<std::uintptr_t>(info->si_addr)
                        : std::uintptr_t{0};
  if (addr != 0) {
    for (auto& slot : g_slots) {
      std::uintptr_t base = 0;
      std::uintptr_t end = 0;
      if (!range_of(slot, base, end) || addr < base || addr >= end) continue;
      // Everything from the faulting page on: the file ends before it, so every later page is
      // gone too (one signal, not one per page of a large array).
      slot.truncated.store(1, std::memory_order_release);
      if (map_zeros(addr & ~(g_page_size - 1), end)) {
        errno = saved_errno;
        return;
      }
      break;
    }
    if (t_opening) {
      t_open_faulted = 1;
      const std::uintptr_t page = addr & ~(g_page_size - 1);
      if (map_zeros(page, page + g_page_size)) {
        errno = saved_errno;
        return;
      }
    }
  }
  die_of_sigbus(info);
  errno = saved_errno;
}

}  // namespace

void install_sigbus_guard() {
  if (g_installed.exchange(true)) return;
  g_page_size = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  struct sigaction sa{};
  sa.sa_sigaction = &on_sigbus;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGBUS, &sa, &g_previous);
}

Result<GuardedRange> GuardedRange::watch(std::span<const std::byte> mapping) {
  const auto base = reinterpret_cast<std::uintptr_t>(mapping.data());
  std::lock_guard lock(g_mutex);
  int free_slot = -1;
  for (std::size_t i = 0; i < kSlots; ++i) {
    Slot& s = g_slots[i];
    const std::uintptr_t b = s.base.load(std::memory_order_relaxed);
    if (b == base && s.size.load(std::memory_order_relaxed) == mapping.size()) {
      ++s.users;  // the same mapping, shared with another link: its truncated flag too
      return GuardedRange(static_cast<int>(i));
    }
    if (b == 0 && free_slot < 0) free_slot = static_cast<int>(i);
  }
  if (free_slot < 0) {
    return fail(ErrorCode::kResourceExhausted,
                "the bridge sends " + std::to_string(kSlots) +
                    " arrays already (its SIGBUS guard table is full)");
  }
  Slot& s = g_slots[static_cast<std::size_t>(free_slot)];
  s.users = 1;
  s.truncated.store(0, std::memory_order_relaxed);
  set_range(s, base, mapping.size());
  return GuardedRange(free_slot);
}

GuardedRange& GuardedRange::operator=(GuardedRange&& other) noexcept {
  if (this != &other) {
    release();
    slot_ = other.slot_;
    other.slot_ = -1;
  }
  return *this;
}

GuardedRange::~GuardedRange() { release(); }

void GuardedRange::release() noexcept {
  if (slot_ < 0) return;
  std::lock_guard lock(g_mutex);
  Slot& s = g_slots[static_cast<std::size_t>(slot_)];
  if (--s.users == 0) set_range(s, 0, 0);
  slot_ = -1;
}

bool GuardedRange::truncated() const noexcept {
  return slot_ >= 0 &&
         g_slots[static_cast<std::size_t>(slot_)].truncated.load(std::memory_order_acquire) != 0;
}

OpenGuard::OpenGuard() noexcept {
  t_open_faulted = 0;
  t_opening = 1;
}

OpenGuard::~OpenGuard() { t_opening = 0; }

bool OpenGuard::faulted() const noexcept { return t_open_faulted != 0; }

}  // namespace shmarray::bridge
