#include "ucx_worker.hpp"

#include <poll.h>
#include <stdlib.h>

#include <utility>

#include <string>
#include <thread>

#include "spin_policy.hpp"

namespace shmarray::bridge {

std::atomic<bool> g_stopping{false};

Result<void> stop_check() {
  if (g_stopping.load()) return fail(ErrorCode::kCancelled, "the bridge is stopping");
  return {};
}

Error ucx_error(std::string_view what, ucs_status_t status) {
  const ErrorCode code = status == UCS_ERR_TIMED_OUT ? ErrorCode::kDeadlineExceeded
                                                     : ErrorCode::kUnavailable;
  return Error(code, std::string(what) + ": " + ::ucs_status_string(status));
}

Result<std::shared_ptr<UcxContext>> UcxContext::create() {
  // Stream sends (control messages, arrays, stream messages straight from the source's ring)
  // copy in user space (into UCX's send buffers), never let the kernel read the source's mapping
  // (TCP zero-copy: sendmsg straight from it): a local writer may truncate the segment mid-send,
  // and the kernel's read of a page that is gone fails the endpoint (EFAULT: the link drops,
  // every mirror of the prefix resyncs), where a user-space read is a SIGBUS the bridge survives
  // (sigbus_guard.hpp). Where SHMARRAY_BRIDGE_CHUNKED_MIN_BYTES turns the chunked path on, big
  // arrays go zero-copy on the tag API, but from the bridge's private staging ring
  // (chunked_transfer.hpp), never from a mapping.
  ::setenv("UCX_ZCOPY_THRESH", "inf", 0);
  // UCX's TCP transport connects with a blocking connect() by default (UCX_TCP_CONN_NB=n): to a
  // peer whose listener drops the SYN (listener_admission.hpp: a link whose UCX leaves by an
  // address the other side did not admit) the link thread would then sit in connect() for the
  // kernel's SYN retries (about two minutes), deaf to the bridge stopping. Non-blocking, the
  // link's UCX heartbeat times out after 5 s and says why.
  ::setenv("UCX_TCP_CONN_NB", "y", 0);
  // Tag messages of at least this size (the array chunks) use rendezvous: the receive is posted
  // straight into the mirror segment, and over TCP the mirror's kernel receives into it (UCX's
  // put_zcopy), no user-space copy; smaller ones are eager (one UCX copy on each side, no extra
  // round trip). UCX_RNDV_SCHEME stays UCX's choice: put_zcopy over TCP; on RDMA hardware an
  // RDMA read (get_zcopy) of the source's ring or write into the mirror segment.
  ::setenv("UCX_RNDV_THRESH", "64K", 0);
  // UCX's TCP transport sends a stream in fragments of at most TX_SEG_SIZE (8 KiB by default:
  // one sendto() and one memcpy per 8 KiB) and receives in RX_SEG_SIZE reads (64 KiB). 60 KiB
  // fragments, each one send() that fits a 64 KiB GSO packet with its headers, were the fastest
  // on the dev VM (docs/benchmarks.md "Across hosts", same runs): against the 256 KiB this set
  // before, 1 MiB arrays 1.6-2x and 64 MiB arrays 1.7-2x faster over both veth and loopback;
  // 16, 24, 32 and 48 KiB were slower than 60, and every size from 64 KiB (a fragment and its
  // header no longer in one GSO packet) 1.5-2.5x slower. A plain TCP copy shows the same (60 KiB
  // sends up to 2x faster than one send() of everything). RX_SEG_SIZE must hold a whole fragment.
  if (::getenv("UCX_TCP_TX_SEG_SIZE") == nullptr) {
    ::setenv("UCX_TCP_TX_SEG_SIZE", "60K", 1);
    ::setenv("UCX_TCP_RX_SEG_SIZE", "64K", 0);
  }
  ucp_config_t* config = nullptr;
  if (auto st = ::ucp_config_read(nullptr, nullptr, &config); st != UCS_OK) {
    return std::unexpected(ucx_error("UCX configuration (UCX_* environment)", st));
  }
  ucp_params_t params{};
  params.field_mask = UCP_PARAM_FIELD_FEATURES;
  params.features = UCP_FEATURE_STREAM | UCP_FEATURE_TAG | UCP_FEATURE_WAKEUP;
  ucp_context_h context = nullptr;
  const auto st = ::ucp_init(&params, config, &context);
  ::ucp_config_release(config);
  if (st != UCS_OK) return std::unexpected(ucx_error("ucp_init", st));
  return std::shared_ptr<UcxContext>(new UcxContext(context));
}

UcxContext::~UcxContext() { ::ucp_cleanup(context_); }

Result<UcxWorker> UcxWorker::create(std::shared_ptr<UcxContext> context, ucs_thread_mode_t mode) {
  ucp_worker_params_t params{};
  params.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
  params.thread_mode = mode;
  ucp_worker_h worker = nullptr;
  if (auto st = ::ucp_worker_create(context->get(), &params, &worker); st != UCS_OK) {
    return std::unexpected(ucx_error("ucp_worker_create", st));
  }
  int efd = -1;
  if (auto st = ::ucp_worker_get_efd(worker, &efd); st != UCS_OK) {
    ::ucp_worker_destroy(worker);
    return std::unexpected(ucx_error("ucp_worker_get_efd", st));
  }
  return UcxWorker(std::move(context), worker, efd);
}

UcxWorker::UcxWorker(UcxWorker&& other) noexcept
    : context_(std::move(other.context_)),
      worker_(std::exchange(other.worker_, nullptr)),
      efd_(std::exchange(other.efd_, -1)) {}

UcxWorker::~UcxWorker() {
  if (worker_ != nullptr) ::ucp_worker_destroy(worker_);
}

Result<std::vector<std::byte>> UcxWorker::address() const {
  ucp_address_t* address = nullptr;
  std::size_t length = 0;
  if (auto st = ::ucp_worker_get_address(worker_, &address, &length); st != UCS_OK) {
    return std::unexpected(ucx_error("ucp_worker_get_address", st));
  }
  const auto* bytes = reinterpret_cast<const std::byte*>(address);
  std::vector<std::byte> out(bytes, bytes + length);
  ::ucp_worker_release_address(worker_, address);
  return out;
}

bool UcxWorker::progress() noexcept { return ::ucp_worker_progress(worker_) != 0; }

void UcxWorker::wait(std::chrono::milliseconds timeout, std::chrono::nanoseconds spin) noexcept {
  if (progress()) {
    note_activity();
    return;
  }
  // Busy for a while after activity: the next fragment or message of a busy link is caught
  // without the wake-up from poll.
  const auto spin_end = last_activity_ + spin;
  for (unsigned i = 1; std::chrono::steady_clock::now() < spin_end; ++i) {
    if (progress()) {
      note_activity();
      return;
    }
    if (i % 16 == 0) std::this_thread::yield();  // let a woken process on this core run
  }
  // Armed: the event fd signals the next event; BUSY means events are pending already.
  if (::ucp_worker_arm(worker_) == UCS_ERR_BUSY) return;
  pollfd p{efd_, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) > 0) note_activity();
}

}  // namespace shmarray::bridge
