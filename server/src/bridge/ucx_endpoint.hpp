#pragma once
// One UCX stream endpoint of a peer link, with blocking, deadline-bounded send and receive on its
// worker. The first failure (peer gone, timeout, bridge stopping) force-closes the endpoint:
// every later call fails at once, and no operation is left writing into a caller's buffer.
#include <ucp/api/ucp.h>

#include <chrono>
#include <cstdint>
#include <span>
#include <string>

#include "byte_link.hpp"
#include "shmarray/error.hpp"
#include "ucx_worker.hpp"

namespace shmarray::bridge {

class UcxEndpoint final : public ByteLink {
 public:
  // Connects to the peer's worker at `remote` (its ucp_worker_get_address, received on the
  // link's TCP connection: ucx_link_setup.hpp); the peer connects its endpoint to this worker
  // the same way, and UCX pairs the two. The connection completes lazily; an unreachable peer
  // shows in the first send or receive.
  [[nodiscard]] static Result<UcxEndpoint> connect(UcxWorker& worker,
                                                   std::span<const std::byte> remote);

  UcxEndpoint(UcxEndpoint&&) noexcept;
  UcxEndpoint& operator=(UcxEndpoint&&) = delete;
  UcxEndpoint(const UcxEndpoint&) = delete;
  ~UcxEndpoint() override;

  // Sends all of `bytes` (the buffer must stay valid: this returns when UCX is done with it).
  // A send that does not complete at once is mid-transfer (the socket is full): its waits poll
  // for transfer_spin() (spin_policy.hpp) before they sleep.
  [[nodiscard]] Result<void> send(std::span<const std::byte> bytes,
                                  std::chrono::milliseconds timeout) override;
  // Receives exactly bytes.size() bytes into `bytes`; Arrival::kDue waits as a send does.
  [[nodiscard]] Result<void> recv(std::span<std::byte> bytes, std::chrono::milliseconds timeout,
                                  Arrival arrival) override;
  // The tag API, for array bytes (chunked_transfer.hpp): starts a send of `bytes` tagged `tag`,
  // or a receive into `bytes` of the message tagged `tag` from this endpoint's worker (`memh`:
  // their registration, or nullptr). Above UCX_RNDV_THRESH UCX uses rendezvous: the receiver's
  // buffer is where the bytes land. Returns the request (nullptr: completed at once); the buffer
  // must stay valid until poll_request says done, or cancel_request returned.
  [[nodiscard]] Result<void*> tag_send_start(std::span<const std::byte> bytes, std::uint64_t tag,
                                             ucp_mem_h memh);
  [[nodiscard]] Result<void*> tag_recv_start(std::span<std::byte> bytes, std::uint64_t tag,
                                             ucp_mem_h memh);
  // True once `request` completed (then freed); false while in progress; an error (the request
  // freed, the endpoint force-closed) if it failed or the peer failed.
  [[nodiscard]] Result<bool> poll_request(void* request, std::string_view what);
  // Cancels `request` (a failed or abandoned transfer), waits up to 500 ms for UCX to let go of
  // its buffer, and frees it.
  void cancel_request(void* request) noexcept;
  // Force-closes the endpoint (a transfer failed midway: nothing more may be sent or received).
  void fail_link() noexcept { close(); }
  [[nodiscard]] bool broken() const noexcept override { return broken_; }
  [[nodiscard]] UcxWorker& worker() noexcept { return *worker_; }

 private:
  UcxEndpoint(UcxWorker& worker) : worker_(&worker) {}
  static void on_error(void* arg, ucp_ep_h ep, ucs_status_t status);
  // Waits for `request` (send or receive); force-closes the endpoint on failure.
  // A request just started: itself, or (an error pointer) the endpoint force-closed and the error.
  [[nodiscard]] Result<void*> started(void* request, std::string_view what);
  [[nodiscard]] Result<void> finish(void* request, bool is_recv, std::string_view what,
                                    std::chrono::milliseconds timeout, Arrival arrival);
  void close() noexcept;

  UcxWorker* worker_;
  ucp_ep_h ep_ = nullptr;
  // Heap-held so the error callback's argument stays valid when the endpoint object moves.
  std::unique_ptr<ucs_status_t> peer_error_ = std::make_unique<ucs_status_t>(UCS_OK);
  bool broken_ = false;
};

}  // namespace shmarray::bridge
