#pragma once
// Small helpers shared by the unit tests: a connected AF_UNIX stream pair, a memfd, the count of
// this process's open descriptors, and receiving one whole frame with a deadline.
#include <dirent.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "shmarray/error.hpp"
#include "../support/legacy_header.hpp"
#include "shmarray/segment_layout.hpp"
#include "shmarray/types.hpp"
#include "shmarray/unique_fd.hpp"
#include "shmarray/wire/fd_passing.hpp"
#include "shmarray/wire/frame.hpp"

namespace shmarray::test {

// A 2x3 float64 array's metadata with every header field set to something recognisable (a uid
// above 2^31, mode 0640, ephemeral). open_handles and version are set too, though no header
// stores them: the broker counts the one, the segment's live fields hold the other.
[[nodiscard]] inline ArrayInfo sample_array_info(std::string id = "0123456789abcdef00ff10ee20dd30cc",
                                                 std::string name = "cam/0/frame") {
  ArrayInfo i;
  i.name = std::move(name);
  i.dtype = "<f8";
  i.shape = {2, 3};
  i.strides = {24, 8};
  i.order = Order::kC;
  i.itemsize = 8;
  i.nbytes = 48;
  i.data_offset = kHeaderBytes;
  i.segment_bytes = 2 * kHeaderBytes;  // segment_size_for(48)
  i.id = std::move(id);
  i.owner_uid = 4'000'000'000u;
  i.owner_gid = 5678;
  i.mode = 0640;
  i.created_unix_ns = 1'700'000'000'123'456'789;
  i.open_handles = 5;
  i.version = 99;
  i.ephemeral = true;
  return i;
}

// Both ends of socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC).
struct SocketPair {
  UniqueFd a;
  UniqueFd b;
};

[[nodiscard]] inline Result<SocketPair> make_socket_pair() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    return std::unexpected(sys_error("socketpair", errno));
  }
  return SocketPair{UniqueFd(fds[0]), UniqueFd(fds[1])};
}

// An anonymous memory file of `size` bytes (MFD_CLOEXEC).
[[nodiscard]] inline Result<UniqueFd> make_memfd(std::size_t size) {
  UniqueFd fd(::memfd_create("shmarray-unit-test", MFD_CLOEXEC));
  if (!fd) return std::unexpected(sys_error("memfd_create", errno));
  if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) {
    return std::unexpected(sys_error("ftruncate", errno));
  }
  return fd;
}

// Entries of /proc/self/fd (the directory's own descriptor is counted in every call alike).
[[nodiscard]] inline int open_fd_count() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int count = 0;
  while (const dirent* e = ::readdir(dir)) {
    if (e->d_name[0] != '.') ++count;
  }
  ::closedir(dir);
  return count;
}

[[nodiscard]] inline wire::Clock::time_point deadline_in(std::chrono::milliseconds ms) {
  return wire::Clock::now() + ms;
}

struct ReceivedFrame {
  wire::Frame frame;
  std::vector<UniqueFd> fds;  // every descriptor that arrived while reading the frame
};

// Reads from `fd` until one whole frame is decoded, `deadline` passes, or the peer closes.
[[nodiscard]] inline Result<ReceivedFrame> receive_frame(int fd, std::uint32_t max_body,
                                                         wire::Clock::time_point deadline) {
  wire::FrameReader reader(max_body);
  std::vector<UniqueFd> fds;
  std::vector<std::byte> buffer(64 * 1024);
  for (;;) {
    auto next = reader.next();
    if (!next) return std::unexpected(next.error());
    if (next->has_value()) return ReceivedFrame{std::move(**next), std::move(fds)};
    if (auto ready = wire::wait_readable(fd, deadline); !ready) {
      return std::unexpected(ready.error());
    }
    auto got = wire::receive_some(fd, buffer);
    if (!got) return std::unexpected(got.error());
    if (got->would_block) continue;
    if (got->bytes == 0) return fail(ErrorCode::kUnavailable, "peer closed mid-frame");
    for (auto& f : got->fds) fds.push_back(std::move(f));
    reader.append(std::span(buffer).first(got->bytes));
  }
}

}  // namespace shmarray::test
