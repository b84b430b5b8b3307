#include "subscriber_state.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "segment.hpp"
#include "shmarray/stream/stream_layout.hpp"

namespace shmarray::server {
namespace {

using stream::SubscriberState;

template <class T>
Result<T> pread_word(int fd, std::size_t offset) {
  T value{};
  auto got = pread_full(fd, &value, sizeof value, offset);
  if (!got) return std::unexpected(got.error());
  if (*got != sizeof value) return fail(ErrorCode::kDataLoss, "state page is short");
  return value;
}

}  // namespace

Result<UniqueFd> create_subscriber_state(const NewSubscriberState& fields) {
  UniqueFd fd(::memfd_create("shmarray-subscriber", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd) return std::unexpected(sys_error("memfd_create for a subscriber's state", errno));
  if (const int rc = ::posix_fallocate(fd.get(), 0, stream::kStateBytes); rc != 0) {
    return std::unexpected(sys_error("cannot reserve a subscriber's state page", rc));
  }
  struct Owner {
    char magic[8];
    std::uint32_t index, generation, pid, max_held;
  } owner{};
  static_assert(sizeof(Owner) == offsetof(SubscriberState, index) + 16);
  std::memcpy(owner.magic, stream::kStateMagic, sizeof owner.magic);
  owner.index = fields.index;
  owner.generation = fields.generation;
  owner.pid = static_cast<std::uint32_t>(fields.pid);
  owner.max_held = fields.max_held;
  if (auto ok = pwrite_full(fd.get(), &owner, sizeof owner, 0); !ok) {
    return std::unexpected(ok.error());
  }
  // From now on nobody can resize it: the publisher maps it without fear of SIGBUS.
  if (::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) != 0) {
    return std::unexpected(sys_error("cannot seal a subscriber's state page", errno));
  }
  return fd;
}

Result<void> write_subscriber_cursor(int fd, std::uint64_t cursor) {
  return pwrite_full(fd, &cursor, sizeof cursor, offsetof(SubscriberState, cursor));
}

Result<UniqueFd> reopen_read_only(int fd) {
  const std::string path = "/proc/self/fd/" + std::to_string(fd);
  UniqueFd ro(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!ro) return std::unexpected(sys_error("cannot reopen a subscriber's state read-only", errno));
  return ro;
}

SubscriberStatus read_subscriber_status(int fd, std::uint32_t max_held) {
  SubscriberStatus s;
  s.max_held = max_held;
  if (auto v = pread_word<std::uint64_t>(fd, offsetof(SubscriberState, cursor))) s.position = *v;
  if (auto v = pread_word<std::uint64_t>(fd, offsetof(SubscriberState, missed))) s.missed = *v;
  const std::size_t n = std::min(max_held, kMaxHeldPerSubscriber);
  // HeldEntry is two 64-bit words (seq, slot): read as raw words.
  std::vector<std::uint64_t> words(n * 2);
  if (auto got = pread_full(fd, words.data(), words.size() * 8, offsetof(SubscriberState, held));
      got && *got == words.size() * 8) {
    for (std::size_t i = 0; i < n; ++i) {
      if (words[2 * i] != 0) ++s.held;
    }
  }
  return s;
}

Result<ReturnedState> check_returned_state(int fd) {
  // Seals before size: once sealed, the size can no longer change under the checks below (and
  // under the publisher's mapping).
  const int seals = ::fcntl(fd, F_GET_SEALS);
  if (seals < 0 || (seals & (F_SEAL_GROW | F_SEAL_SHRINK)) != (F_SEAL_GROW | F_SEAL_SHRINK)) {
    return fail(ErrorCode::kInvalidArgument,
                "the descriptor handed back is not a state page sealed against resizing (a "
                "subscriber's page is a sealed memfd that the broker made)");
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) return std::unexpected(sys_error("fstat of a state page", errno));
  if (!S_ISREG(st.st_mode) || static_cast<std::uint64_t>(st.st_size) != stream::kStateBytes) {
    return fail(ErrorCode::kInvalidArgument,
                "the state page handed back is " + std::to_string(st.st_size) + " bytes, not " +
                    std::to_string(stream::kStateBytes));
  }
  auto ro = reopen_read_only(fd);
  if (!ro) return std::unexpected(ro.error());
  struct Owner {
    char magic[8];
    std::uint32_t index, generation, pid, max_held;
  } owner{};
  auto got = pread_full(ro->get(), &owner, sizeof owner, 0);
  if (!got || *got != sizeof owner ||
      std::memcmp(owner.magic, stream::kStateMagic, sizeof owner.magic) != 0) {
    return fail(ErrorCode::kInvalidArgument,
                "the page handed back is not a subscriber state page of this layout (" +
                    std::string(stream::kStateMagic, sizeof stream::kStateMagic) + ")");
  }
  auto cursor = pread_word<std::uint64_t>(ro->get(), offsetof(SubscriberState, cursor));
  if (!cursor) return std::unexpected(cursor.error());
  ReturnedState state;
  state.fd = std::move(*ro);
  state.dev = st.st_dev;
  state.ino = st.st_ino;
  state.index = owner.index;
  state.generation = owner.generation;
  state.pid = owner.pid;
  state.max_held = owner.max_held;
  state.cursor = *cursor;
  return state;
}

bool same_page(int fd, const ReturnedState& state) {
  struct stat st {};
  return ::fstat(fd, &st) == 0 && st.st_dev == state.dev && st.st_ino == state.ino;
}

}  // namespace shmarray::server
