#pragma once
// RAII over the UCX objects the bridge uses: one ucp context per process (UcxContext) and one
// single-threaded worker per link (UcxWorker), which sleeps on its event fd (ucp_worker_arm +
// poll) instead of spinning.
#include <ucp/api/ucp.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <vector>

#include "shmarray/error.hpp"
#include "spin_policy.hpp"

namespace shmarray::bridge {

class UcxContext {
 public:
  // ucp_init with the stream, tag and wakeup features, configured from the UCX_* environment
  // (UCX_TLS, UCX_NET_DEVICES: docs/across-hosts.md).
  [[nodiscard]] static Result<std::shared_ptr<UcxContext>> create();
  ~UcxContext();
  UcxContext(const UcxContext&) = delete;
  UcxContext& operator=(const UcxContext&) = delete;
  [[nodiscard]] ucp_context_h get() const noexcept { return context_; }

 private:
  explicit UcxContext(ucp_context_h c) : context_(c) {}
  ucp_context_h context_;
};

class UcxWorker {
 public:
  // `mode`: UCS_THREAD_MODE_SINGLE for a link thread's own worker; UCS_THREAD_MODE_SERIALIZED
  // where several threads use it one at a time (a source link: LinkSender's lock).
  [[nodiscard]] static Result<UcxWorker> create(std::shared_ptr<UcxContext> context,
                                                ucs_thread_mode_t mode = UCS_THREAD_MODE_SINGLE);
  UcxWorker(UcxWorker&& other) noexcept;
  UcxWorker& operator=(UcxWorker&&) = delete;
  UcxWorker(const UcxWorker&) = delete;
  ~UcxWorker();

  [[nodiscard]] ucp_worker_h get() const noexcept { return worker_; }
  [[nodiscard]] const std::shared_ptr<UcxContext>& context() const noexcept { return context_; }
  // The packed address a peer connects its endpoint to (ucp_worker_get_address).
  [[nodiscard]] Result<std::vector<std::byte>> address() const;
  // One round of progress; true if anything happened.
  bool progress() noexcept;
  // Progresses; if nothing is pending, keeps progressing until `spin` has passed
  // since the last activity (spin_policy.hpp), then sleeps on the event fd for up to `timeout`.
  void wait(std::chrono::milliseconds timeout, std::chrono::nanoseconds spin) noexcept;
  void wait(std::chrono::milliseconds timeout) noexcept { wait(timeout, spin_after_activity()); }
  // A request completed: the next wait() spins before it sleeps.
  void note_activity() noexcept { last_activity_ = std::chrono::steady_clock::now(); }

 private:
  UcxWorker(std::shared_ptr<UcxContext> c, ucp_worker_h w, int efd)
      : context_(std::move(c)), worker_(w), efd_(efd) {}
  std::shared_ptr<UcxContext> context_;
  ucp_worker_h worker_ = nullptr;
  int efd_ = -1;
  std::chrono::steady_clock::time_point last_activity_{};
};

// A UCX status as an Error: "what: <ucs_status_string>".
[[nodiscard]] Error ucx_error(std::string_view what, ucs_status_t status);

// Set by the bridge's signal handling: every blocking UCX wait gives up when it becomes true.
extern std::atomic<bool> g_stopping;
// For ClientOptions::interrupt_check: kCancelled once g_stopping is set, so that no call to the
// broker keeps a stopping bridge waiting (the broker may be busy stopping it).
[[nodiscard]] Result<void> stop_check();

}  // namespace shmarray::bridge
