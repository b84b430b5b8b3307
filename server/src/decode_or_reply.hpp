#pragma once
// Decoding a request frame's body, shared by every request handler (broker.cpp,
// array_handlers.cpp, stream_handlers.cpp).
#include <optional>
#include <spdlog/spdlog.h>
#include <utility>

#include "log_text.hpp"
#include "session.hpp"
#include "shmarray/wire/frame.hpp"
#include "shmarray/wire/messages.hpp"

namespace shmarray::server {

// The body of `f` as request `M`; on a malformed body, logs it, answers the client with the
// decoding error and closes the connection once that reply is flushed (std::nullopt).
template <class M>
[[nodiscard]] std::optional<M> decode_or_reply(Session& s, const wire::Frame& f) {
  auto m = wire::decode<M>(f.body);
  if (!m) {
    spdlog::warn("connection {} (pid {}): {}", s.id(), s.peer().pid,
                 log_text(m.error().message(), kMaxLoggedMessageBytes));
    s.send_error(f.header.request_id, m.error());
    s.close_after_flush();
    return std::nullopt;
  }
  return std::move(*m);
}

}  // namespace shmarray::server
