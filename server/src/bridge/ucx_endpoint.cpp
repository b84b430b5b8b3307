#include "ucx_endpoint.hpp"

#include <cstring>
#include <utility>

#include "spin_policy.hpp"

namespace shmarray::bridge {

void UcxEndpoint::on_error(void* arg, ucp_ep_h, ucs_status_t status) {
  *static_cast<ucs_status_t*>(arg) = status;
}

Result<UcxEndpoint> UcxEndpoint::connect(UcxWorker& worker, std::span<const std::byte> remote) {
  UcxEndpoint ep(worker);
  ucp_ep_params_t params{};
  params.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS | UCP_EP_PARAM_FIELD_ERR_HANDLER |
                      UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE;
  params.err_mode = UCP_ERR_HANDLING_MODE_PEER;
  params.err_handler.cb = &UcxEndpoint::on_error;
  params.err_handler.arg = ep.peer_error_.get();
  params.address = reinterpret_cast<const ucp_address_t*>(remote.data());
  if (auto st = ::ucp_ep_create(worker.get(), &params, &ep.ep_); st != UCS_OK) {
    ep.ep_ = nullptr;
    return std::unexpected(ucx_error("cannot connect to the peer's UCX worker", st));
  }
  return ep;
}

UcxEndpoint::UcxEndpoint(UcxEndpoint&& other) noexcept
    : worker_(other.worker_),
      ep_(std::exchange(other.ep_, nullptr)),
      peer_error_(std::move(other.peer_error_)),
      broken_(other.broken_) {}

UcxEndpoint::~UcxEndpoint() { close(); }

void UcxEndpoint::close() noexcept {
  if (ep_ == nullptr) return;
  ucp_request_param_t param{};
  param.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
  param.flags = UCP_EP_CLOSE_FLAG_FORCE;
  void* request = ::ucp_ep_close_nbx(std::exchange(ep_, nullptr), &param);
  if (request != nullptr && !UCS_PTR_IS_ERR(request)) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
    while (::ucp_request_check_status(request) == UCS_INPROGRESS &&
           std::chrono::steady_clock::now() < deadline) {
      worker_->wait(std::chrono::milliseconds(10));
    }
    ::ucp_request_free(request);
  }
  broken_ = true;
}

Result<void> UcxEndpoint::finish(void* request, bool is_recv, std::string_view what,
                                 std::chrono::milliseconds timeout, Arrival arrival) {
  if (request == nullptr) return {};
  if (auto ok = started(request, what); !ok) return std::unexpected(ok.error());
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  ucs_status_t status = UCS_INPROGRESS;
  std::size_t length = 0;
  for (;;) {
    status = is_recv ? ::ucp_stream_recv_request_test(request, &length)
                     : ::ucp_request_check_status(request);
    if (status != UCS_INPROGRESS) break;
    if (*peer_error_ != UCS_OK || g_stopping.load() ||
        std::chrono::steady_clock::now() >= deadline) {
      // Force-close first: the request completes (cancelled) before the caller's buffer goes.
      // Bounded: a request UCX never completes is left to the worker, whose destruction (the
      // link's end) releases it; the caller's buffer is not touched again by a closed endpoint.
      close();
      const auto give_up = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
      while ((is_recv ? ::ucp_stream_recv_request_test(request, &length)
                      : ::ucp_request_check_status(request)) == UCS_INPROGRESS &&
             std::chrono::steady_clock::now() < give_up) {
        worker_->wait(std::chrono::milliseconds(10));
      }
      ::ucp_request_free(request);
      if (*peer_error_ != UCS_OK) return std::unexpected(ucx_error(what, *peer_error_));
      if (g_stopping.load()) return fail(ErrorCode::kCancelled, "the bridge is stopping");
      return fail(ErrorCode::kDeadlineExceeded,
                  std::string(what) + ": nothing from the peer for " +
                      std::to_string(timeout.count()) + " ms (link down?)");
    }
    worker_->wait(std::chrono::milliseconds(50), arrival == Arrival::kDue ? transfer_spin()
                                                                          : spin_after_activity());
  }
  ::ucp_request_free(request);
  if (status != UCS_OK) {
    close();
    return std::unexpected(ucx_error(what, status));
  }
  worker_->note_activity();
  return {};
}

Result<void> UcxEndpoint::send(std::span<const std::byte> bytes,
                               std::chrono::milliseconds timeout) {
  if (broken_ || ep_ == nullptr) return fail(ErrorCode::kUnavailable, "the peer link is closed");
  if (bytes.empty()) return {};
  ucp_request_param_t param{};
  void* request = ::ucp_stream_send_nbx(ep_, bytes.data(), bytes.size(), &param);
  return finish(request, false, "send to peer", timeout, Arrival::kDue);
}

Result<void> UcxEndpoint::recv(std::span<std::byte> bytes, std::chrono::milliseconds timeout,
                               Arrival arrival) {
  if (broken_ || ep_ == nullptr) return fail(ErrorCode::kUnavailable, "the peer link is closed");
  if (bytes.empty()) return {};
  ucp_request_param_t param{};
  param.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
  param.flags = UCP_STREAM_RECV_FLAG_WAITALL;
  std::size_t length = 0;
  void* request = ::ucp_stream_recv_nbx(ep_, bytes.data(), bytes.size(), &length, &param);
  return finish(request, true, "receive from peer", timeout, arrival);
}

namespace {

// A request's parameters: registered memory where the caller has it (else UCX registers).
ucp_request_param_t with_memh(ucp_mem_h memh) noexcept {
  ucp_request_param_t param{};
  if (memh != nullptr) {
    param.op_attr_mask = UCP_OP_ATTR_FIELD_MEMH;
    param.memh = memh;
  }
  return param;
}

}  // namespace

Result<void*> UcxEndpoint::started(void* request, std::string_view what) {
  if (UCS_PTR_IS_ERR(request)) {
    close();
    return std::unexpected(ucx_error(what, UCS_PTR_STATUS(request)));
  }
  return request;
}

Result<void*> UcxEndpoint::tag_send_start(std::span<const std::byte> bytes, std::uint64_t tag,
                                          ucp_mem_h memh) {
  if (broken_ || ep_ == nullptr) return fail(ErrorCode::kUnavailable, "the peer link is closed");
  ucp_request_param_t param = with_memh(memh);
  return started(::ucp_tag_send_nbx(ep_, bytes.data(), bytes.size(), tag, &param), "send to peer");
}

Result<void*> UcxEndpoint::tag_recv_start(std::span<std::byte> bytes, std::uint64_t tag,
                                          ucp_mem_h memh) {
  if (broken_ || ep_ == nullptr) return fail(ErrorCode::kUnavailable, "the peer link is closed");
  ucp_request_param_t param = with_memh(memh);
  // Every bit of the tag must match: the transfer number and the chunk index (a stale transfer's
  // bytes can never land in this buffer).
  return started(::ucp_tag_recv_nbx(worker_->get(), bytes.data(), bytes.size(), tag,
                                    ~std::uint64_t{0}, &param),
                 "receive from peer");
}

Result<bool> UcxEndpoint::poll_request(void* request, std::string_view what) {
  const ucs_status_t status = ::ucp_request_check_status(request);
  if (status == UCS_INPROGRESS) {
    if (*peer_error_ == UCS_OK && !broken_) return false;
    close();  // fails the endpoint's sends; a receive (the worker's) is cancelled here
    cancel_request(request);
    if (*peer_error_ != UCS_OK) return std::unexpected(ucx_error(what, *peer_error_));
    return fail(ErrorCode::kUnavailable, std::string(what) + ": the peer link is closed");
  }
  ::ucp_request_free(request);
  if (status != UCS_OK) {
    close();
    return std::unexpected(ucx_error(what, status));
  }
  worker_->note_activity();
  return true;
}

void UcxEndpoint::cancel_request(void* request) noexcept {
  ::ucp_request_cancel(worker_->get(), request);
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
  while (::ucp_request_check_status(request) == UCS_INPROGRESS &&
         std::chrono::steady_clock::now() < give_up) {
    worker_->wait(std::chrono::milliseconds(10));
  }
  // One UCX never completes is left to the worker, whose destruction (the link's end) releases
  // it; a force-closed endpoint receives nothing more into its buffer.
  ::ucp_request_free(request);
}

}  // namespace shmarray::bridge
