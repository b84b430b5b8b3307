#pragma once
// Pre-made segments for small creates, so that making and reserving a segment (open, fchmod,
// posix_fallocate: ~6 us of system calls on the dev VM) runs on a thread of its own instead of on
// a create's request path (docs/architecture.md, "Segment pool").
//
// A pooled segment is a nameless tmpfs file: open(dir, O_TMPFILE | O_RDWR, 0600) in the directory
// shm_open uses (/dev/shm), fchmod 0600, every page reserved with posix_fallocate. It has no name
// until a create takes it and links it under the array's fresh, random segment name
// (Segment::create_from). So:
//   - nobody can open it before it is taken (there is no name to open; the broker's descriptors
//     are O_CLOEXEC, and /proc/<broker>/fd/ is reachable only by the broker's own uid and root,
//     which may open every segment of the broker by name anyway);
//   - it never appears in /dev/shm, and it cannot leak: the kernel frees it when the broker closes
//     its descriptor, at a stop as at a crash. Recovery and `shmarrayd --gc` never see one;
//   - it is exactly what a fresh create makes (zero bytes, the size, owner and mode 0600), and is
//     never reused: a removed array's segment never returns to the pool.
//
// Bounded: at most kClasses segment sizes (the most recently created ones), each holding up to
// budget / kClasses bytes of segments and at most kMaxPerClass of them; segments larger than
// budget / kClasses are never pooled. A new size gets one segment, and twice as many after each
// create that found one ready, up to that bound: sizes created once cost one segment each. Every pooled segment is a descriptor, so the pool also holds
// at most 1/16 of RLIMIT_NOFILE of them, and never one of the last kDescriptorsLeftAlone
// descriptors below the limit (kept for connections and the creates and opens they make). Nothing is reserved before the first small create. The pool
// is not an array: its bytes count toward no quota (a create's bytes count exactly as without a
// pool); on a full /dev/shm the broker drains it before it reports ENOSPC.
//
// Thread-safety: take(), drain() and held() may be called from any thread (the event loop).
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "shmarray/error.hpp"
#include "shmarray/unique_fd.hpp"

namespace shmarray::server {

class SegmentPool {
 public:
  static constexpr std::size_t kClasses = 4;
  static constexpr std::size_t kMaxPerClass = 16;
  static constexpr int kDescriptorsLeftAlone = 32;

  // Starts the refill thread. nullptr when `budget_bytes` is 0 (no pool) or is too small for one
  // segment of two pages.
  [[nodiscard]] static std::unique_ptr<SegmentPool> start(std::string dir,
                                                          std::uint64_t budget_bytes);
  ~SegmentPool();  // stops the thread and closes every pooled segment (the kernel frees them)
  SegmentPool(const SegmentPool&) = delete;
  SegmentPool& operator=(const SegmentPool&) = delete;

  // The largest segment the pool serves (budget / kClasses).
  [[nodiscard]] std::uint64_t max_segment_bytes() const noexcept { return class_budget_; }
  // A nameless, zero-filled, fully reserved segment of exactly `bytes`, or an empty UniqueFd when
  // none is ready (the caller makes a fresh one). Either way `bytes` becomes one of the sizes kept
  // ready (the least recently taken size goes when there are more than kClasses).
  [[nodiscard]] UniqueFd take(std::uint64_t bytes);
  // Closes every pooled segment, giving their pages back to /dev/shm (a create found it full).
  // Refilling resumes at the next take().
  void drain();

  struct Held {
    std::size_t segments = 0;
    std::uint64_t bytes = 0;
  };
  [[nodiscard]] Held held() const;

  // Links nameless segment `fd` (from take()) as `path` (a file in the pool's directory).
  // kAlreadyExists if the name is taken.
  [[nodiscard]] static Result<void> link(int fd, const std::string& path);

 private:
  SegmentPool(std::string dir, std::uint64_t budget_bytes, std::uint64_t descriptor_limit);
  struct SizeClass {
    std::uint64_t bytes = 0;
    std::size_t target = 0;  // segments kept ready: 1 at first, doubled by each take that hits
    std::size_t most = 0;    // the most it may grow to (kMaxPerClass, budget / kClasses)
    std::vector<UniqueFd> ready;  // (a vector: SizeClass must move without throwing)
    std::uint64_t last_taken = 0;  // take() tick, for least-recently-used eviction
  };
  [[nodiscard]] SizeClass* find(std::uint64_t bytes);
  // The size class most short of its target, if any (under mutex_).
  [[nodiscard]] SizeClass* wanting();
  [[nodiscard]] Result<UniqueFd> make(std::uint64_t bytes) const;
  void run(const std::stop_token& stop);

  const std::string dir_;
  const std::uint64_t class_budget_;
  const std::uint64_t descriptor_limit_;  // RLIMIT_NOFILE at start
  const std::size_t max_descriptors_;     // segments held, all sizes together
  mutable std::mutex mutex_;
  std::condition_variable_any wake_;
  std::vector<SizeClass> classes_;
  std::uint64_t tick_ = 0;
  bool starved_ = false;  // a make() failed (ENOSPC...) or drain(): wait for the next take()
  std::jthread worker_;   // last: started after, and joined before, the members it uses
};

}  // namespace shmarray::server
