#pragma once
// shmarray::Watcher: a stream of broker events (array created / removed) for names under a
// prefix, on its own connection. Version changes are data plane: wait on the Array itself
// (Array::wait_newer_than); the CLI's `shmarray watch` combines both.
//
// Thread safety: one thread at a time per Watcher.
#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "shmarray/error.hpp"
#include "shmarray/types.hpp"

namespace shmarray {

struct WatchEvent {
  enum class Kind { kCreated, kRemoved };
  Kind kind;
  std::string name;
  ArrayInfo info;  // as the broker saw it at the event
};

class Watcher {
 public:
  // Connects to the broker (ClientOptions::socket_path rule) and subscribes to `prefix` ("" for
  // all names). Only arrays the caller may read are reported. kUnavailable without a broker;
  // kPermissionDenied for a broker of an untrusted uid (`broker_uid` as ClientOptions::broker_uid).
  [[nodiscard]] static Result<Watcher> start(const std::string& socket_path,
                                             const std::string& prefix,
                                             std::optional<uid_t> broker_uid = std::nullopt);

  Watcher(Watcher&&) noexcept;
  Watcher& operator=(Watcher&&) noexcept;
  ~Watcher();

  // The next event, std::nullopt if none arrived within `timeout`. kUnavailable when the broker
  // went away (the message names the socket).
  [[nodiscard]] Result<std::optional<WatchEvent>> next(std::chrono::milliseconds timeout);

 private:
  class Impl;
  explicit Watcher(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace shmarray
