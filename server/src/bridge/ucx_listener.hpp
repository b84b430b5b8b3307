#pragma once
// --peer-listen ADDR:PORT: a ucp_listener on its own worker. Connection requests are queued by
// the callback and taken by the listening thread (take()), which hands each to a link thread
// that accepts it on that link's own worker.
#include <ucp/api/ucp.h>

#include <chrono>
#include <deque>
#include <memory>
#include <string>

#include "shmarray/error.hpp"
#include "ucx_worker.hpp"

namespace shmarray::bridge {

class UcxListener {
 public:
  [[nodiscard]] static Result<std::unique_ptr<UcxListener>> listen(
      std::shared_ptr<UcxContext> context, const std::string& address);
  ~UcxListener();
  UcxListener(const UcxListener&) = delete;
  UcxListener& operator=(const UcxListener&) = delete;

  // The address actually bound (the port chosen when ADDR:0 was given).
  [[nodiscard]] const std::string& bound_address() const noexcept { return bound_; }
  // Waits up to `timeout` for a connection request; nullptr if none came.
  [[nodiscard]] ucp_conn_request_h take(std::chrono::milliseconds timeout);

 private:
  explicit UcxListener(UcxWorker worker) : worker_(std::move(worker)) {}
  static void on_request(ucp_conn_request_h request, void* arg);
  UcxWorker worker_;
  ucp_listener_h listener_ = nullptr;
  std::deque<ucp_conn_request_h> requests_;
  std::string bound_;
};

}  // namespace shmarray::bridge
