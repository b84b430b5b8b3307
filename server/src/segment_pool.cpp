#include "segment_pool.hpp"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <spdlog/spdlog.h>

namespace shmarray::server {

std::unique_ptr<SegmentPool> SegmentPool::start(std::string dir, std::uint64_t budget_bytes) {
  // Two pages (header and one data page) is the smallest segment there is.
  if (budget_bytes / kClasses < 2 * 4096) return nullptr;
  rlimit lim{};
  const std::uint64_t descriptor_limit =
      ::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY ? lim.rlim_cur
                                                                             : UINT32_MAX;
  if (descriptor_limit / 16 == 0) return nullptr;
  // Tried once at start: a kernel or file system without O_TMPFILE means no pool, not a failure.
  UniqueFd probe(::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
  if (!probe) {
    spdlog::warn("no segment pool: cannot make a nameless file in {} ({}); every create makes "
                 "its segment on the request path",
                 dir, std::strerror(errno));
    return nullptr;
  }
  return std::unique_ptr<SegmentPool>(
      new SegmentPool(std::move(dir), budget_bytes, descriptor_limit));
}

SegmentPool::SegmentPool(std::string dir, std::uint64_t budget_bytes,
                         std::uint64_t descriptor_limit)
    : dir_(std::move(dir)),
      class_budget_(budget_bytes / kClasses),
      descriptor_limit_(descriptor_limit),
      max_descriptors_(static_cast<std::size_t>(
          std::min<std::uint64_t>(kClasses * kMaxPerClass, descriptor_limit / 16))),
      worker_([this](const std::stop_token& stop) { run(stop); }) {}

SegmentPool::~SegmentPool() {
  worker_.request_stop();
  wake_.notify_all();
  if (worker_.joinable()) worker_.join();
  // classes_ closes every pooled descriptor: nameless files, freed by the kernel right there.
}

SegmentPool::SizeClass* SegmentPool::find(std::uint64_t bytes) {
  const auto it = std::find_if(classes_.begin(), classes_.end(),
                               [&](const SizeClass& c) { return c.bytes == bytes; });
  return it == classes_.end() ? nullptr : &*it;
}

UniqueFd SegmentPool::take(std::uint64_t bytes) {
  if (bytes > class_budget_) return {};
  std::vector<UniqueFd> evicted;  // closed after the lock is released
  UniqueFd taken;
  bool wake = false;
  {
    std::lock_guard lock(mutex_);
    starved_ = false;
    SizeClass* size_class = find(bytes);
    if (size_class == nullptr) {
      if (classes_.size() == kClasses) {
        auto oldest = std::min_element(
            classes_.begin(), classes_.end(),
            [](const SizeClass& a, const SizeClass& b) { return a.last_taken < b.last_taken; });
        for (auto& fd : oldest->ready) evicted.push_back(std::move(fd));
        classes_.erase(oldest);
      }
      SizeClass added;
      added.bytes = bytes;
      added.most = static_cast<std::size_t>(
          std::min<std::uint64_t>(kMaxPerClass, class_budget_ / bytes));
      added.target = 1;
      classes_.push_back(std::move(added));
      size_class = &classes_.back();
      wake = true;
    } else if (!size_class->ready.empty()) {
      taken = std::move(size_class->ready.back());
      size_class->ready.pop_back();
      // A size taken from the pool earns more of it; one that is never taken again costs one
      // segment (sizes that come and go, more of them than kClasses, evict each other).
      if (size_class->target < size_class->most) {
        size_class->target = std::min(size_class->most, 2 * size_class->target);
        wake = true;
      }
    }
    size_class->last_taken = ++tick_;
    // The refill thread is woken (a system call on this, the event loop's, thread) when the class
    // comes down to half its target, not at every take: it then refills the whole class without
    // being woken again. Also on a miss (a burst faster than the refills: it is awake then).
    wake = wake || !taken || size_class->ready.size() == size_class->target / 2;
  }
  if (wake) wake_.notify_one();
  return taken;
}

void SegmentPool::drain() {
  std::vector<SizeClass> drained;
  {
    std::lock_guard lock(mutex_);
    starved_ = true;
    for (auto& c : classes_) {
      drained.emplace_back();
      drained.back().ready = std::move(c.ready);
      c.ready.clear();
    }
  }
  // Closed here, outside the lock: the pages go back to /dev/shm before the caller retries.
}

SegmentPool::Held SegmentPool::held() const {
  std::lock_guard lock(mutex_);
  Held held;
  for (const auto& c : classes_) {
    held.segments += c.ready.size();
    held.bytes += c.ready.size() * c.bytes;
  }
  return held;
}

SegmentPool::SizeClass* SegmentPool::wanting() {
  if (starved_) return nullptr;
  std::size_t held = 0;
  for (const auto& c : classes_) held += c.ready.size();
  if (held >= max_descriptors_) return nullptr;
  SizeClass* most = nullptr;
  for (auto& c : classes_) {
    if (c.ready.size() < c.target &&
        (most == nullptr || c.target - c.ready.size() > most->target - most->ready.size())) {
      most = &c;
    }
  }
  return most;
}

Result<UniqueFd> SegmentPool::make(std::uint64_t bytes) const {
  UniqueFd fd(::open(dir_.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
  if (!fd) return std::unexpected(sys_error("cannot make a pooled segment in " + dir_, errno));
  // Descriptors are allocated lowest first, so this one's number says how many are in use: the
  // last ones below the limit are left to connections and the creates and opens they make.
  if (static_cast<std::uint64_t>(fd.get()) + kDescriptorsLeftAlone >= descriptor_limit_) {
    return std::unexpected(sys_error("no descriptor to spare for a pooled segment", EMFILE));
  }
  // As Boost.Interprocess does for a fresh segment: 0600 whatever the umask.
  if (::fchmod(fd.get(), 0600) != 0) {
    return std::unexpected(sys_error("cannot fchmod a pooled segment", errno));
  }
  if (const int rc = ::posix_fallocate(fd.get(), 0, static_cast<off_t>(bytes)); rc != 0) {
    return std::unexpected(sys_error("cannot reserve a pooled segment", rc));
  }
  return fd;
}

void SegmentPool::run(const std::stop_token& stop) {
  for (;;) {
    std::uint64_t bytes = 0;
    {
      std::unique_lock lock(mutex_);
      if (!wake_.wait(lock, stop, [&] { return wanting() != nullptr; })) return;  // stopping
      bytes = wanting()->bytes;
    }
    auto made = make(bytes);
    std::lock_guard lock(mutex_);
    if (!made) {
      // Most likely a full /dev/shm: the pool waits for the next take rather than compete with
      // creates for the last pages.
      starved_ = true;
      spdlog::debug("segment pool: {}", made.error().message());
      continue;
    }
    // The size may have been evicted meanwhile: then the segment just closes (and is freed).
    if (SizeClass* size_class = find(bytes); size_class != nullptr && !starved_) {
      size_class->ready.push_back(std::move(*made));
    }
  }
}

Result<void> SegmentPool::link(int fd, const std::string& path) {
  // linkat(fd, "", AT_EMPTY_PATH) names the file we opened (Linux 6.10 and later allow it to the
  // opener; before, it needs CAP_DAC_READ_SEARCH): 2.0 us on the dev VM. Else through
  // /proc/self/fd, as open(2) shows: 4.1 us (the walk through /proc), remembered after one miss.
  static std::atomic<bool> empty_path_works{true};
  int rc = -1;
  if (empty_path_works.load(std::memory_order_relaxed)) {
    rc = ::linkat(fd, "", AT_FDCWD, path.c_str(), AT_EMPTY_PATH);
    if (rc != 0 && (errno == EPERM || errno == ENOENT || errno == EINVAL)) {
      empty_path_works.store(false, std::memory_order_relaxed);
    }
  }
  if (rc != 0 && !empty_path_works.load(std::memory_order_relaxed)) {
    const std::string proc = "/proc/self/fd/" + std::to_string(fd);
    rc = ::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, path.c_str(), AT_SYMLINK_FOLLOW);
  }
  if (rc != 0) {
    const int err = errno;
    if (err == EEXIST) return fail(ErrorCode::kAlreadyExists, path + " exists");
    return std::unexpected(sys_error("cannot name pooled segment " + path, err));
  }
  return {};
}

}  // namespace shmarray::server
