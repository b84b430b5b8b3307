#pragma once
// A bare protocol client for tests that must send what shmarray::Client never would (hostile
// names, out-of-range enum values, odd message sequences) and see exactly what comes back,
// descriptors included. Header-only and free of gtest, so the helper program can use it too.
// Every wait has a deadline; not thread-safe.
#include <sys/socket.h>
#include <sys/un.h>

#include <chrono>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "shmarray/wire/fd_passing.hpp"
#include "shmarray/wire/frame.hpp"
#include "shmarray/wire/messages.hpp"

namespace shmarray::test {

// The sockaddr_un for `path` (truncated to what sun_path holds).
[[nodiscard]] inline sockaddr_un unix_address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  return addr;
}

// A bare stream connection to `path`, nothing sent: an invalid fd if connect fails.
[[nodiscard]] inline UniqueFd raw_connect(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const sockaddr_un addr = unix_address(path);
  if (!fd || ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    return {};
  }
  return fd;
}

class RawClient {
 public:
  struct Reply {
    wire::FrameHeader header;
    std::vector<std::byte> body;
    std::vector<UniqueFd> fds;  // every descriptor that arrived with the reply
    // kOk for a non-error reply, else the ErrorReply's code.
    [[nodiscard]] ErrorCode code() const {
      if (header.type != wire::MessageType::kErrorReply) return ErrorCode::kOk;
      auto e = wire::decode<wire::ErrorReply>(body);
      return e ? e->code : ErrorCode::kInternal;
    }
  };

  // Connects to `path` and says hello. std::nullopt if either fails.
  static std::optional<RawClient> connect(const std::string& path) {
    RawClient c;
    c.fd_ = raw_connect(path);
    if (!c.fd_) return std::nullopt;
    auto hello = c.call(wire::HelloRequest{});
    if (!hello || hello->header.type != wire::MessageType::kHelloReply) return std::nullopt;
    return c;
  }

  // Sends `request` and returns the next frame that arrives (std::nullopt on EOF, error or
  // after `timeout`).
  template <class M>
  std::optional<Reply> call(const M& request,
                            std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    const auto deadline = wire::Clock::now() + timeout;
    if (!wire::send_all(fd_.get(), wire::encode_message(request, ++next_id_), -1, deadline)) {
      return std::nullopt;
    }
    return next(deadline);
  }

  // As call(), the frame carrying descriptor `pass_fd` (when >= 0) and announcing one when
  // `announce` (the two may disagree, to test the broker).
  template <class M>
  std::optional<Reply> call_passing(const M& request, int pass_fd, bool announce = true,
                                    std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    const auto deadline = wire::Clock::now() + timeout;
    if (!wire::send_all(fd_.get(), wire::encode_message(request, ++next_id_, announce), pass_fd,
                        deadline)) {
      return std::nullopt;
    }
    return next(deadline);
  }

  // Sends `request` without waiting for a reply; returns its request id (0 if sending failed).
  template <class M>
  std::uint64_t send(const M& request, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    const auto deadline = wire::Clock::now() + timeout;
    if (!wire::send_all(fd_.get(), wire::encode_message(request, ++next_id_), -1, deadline)) {
      return 0;
    }
    return next_id_;
  }

  // The next frame that arrives (std::nullopt on EOF, error or after `timeout`).
  std::optional<Reply> receive(std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    return next(wire::Clock::now() + timeout);
  }

  [[nodiscard]] int fd() const noexcept { return fd_.get(); }

 private:
  RawClient() = default;

  std::optional<Reply> next(wire::Clock::time_point deadline) {
    Reply reply;
    for (;;) {
      auto frame = reader_.next();
      if (!frame) return std::nullopt;
      if (*frame) {
        reply.header = (*frame)->header;
        reply.body = std::move((*frame)->body);
        return reply;
      }
      if (!wire::wait_readable(fd_.get(), deadline)) return std::nullopt;
      std::vector<std::byte> buffer(64 * 1024);
      auto got = wire::receive_some(fd_.get(), buffer);
      if (!got || (got->bytes == 0 && !got->would_block)) return std::nullopt;
      for (auto& fd : got->fds) reply.fds.push_back(std::move(fd));
      reader_.append(std::span(buffer).first(got->bytes));
    }
  }

  UniqueFd fd_;
  wire::FrameReader reader_{wire::kMaxReplyBody};
  std::uint64_t next_id_ = 0;
};

}  // namespace shmarray::test
