#include "chunked_transfer.hpp"

#include <algorithm>
#include <cstring>
#include <string>

#include "env_number.hpp"
#include "peer_channel.hpp"
#include "spin_policy.hpp"

namespace shmarray::bridge {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::uint64_t kDefaultChunkBytes = 4 * 1024 * 1024;
constexpr std::size_t kDefaultSlots = 4;
// Off unless SHMARRAY_BRIDGE_CHUNKED_MIN_BYTES turns it on: over TCP the stream measured faster
// on a 16-CPU host at 64 MiB and 1 GiB (veth 0.99x / 0.92x the TCP copy's time on the stream,
// 1.15x / 1.02x chunked; docs/benchmarks.md "Across hosts", 16-CPU host). The chunked path is
// the one that lets RDMA hardware move the bytes with no CPU copy on the mirror host.
constexpr std::uint64_t kDefaultChunkedMinBytes = UINT64_MAX;
// The ring's copy goes in pieces of this size, with a round of UCX progress after each, so the
// chunks already posted keep moving (over TCP: the socket is refilled) while the next is copied.
constexpr std::size_t kCopyPiece = 256 * 1024;
// Chunks in flight at once: receives the mirror keeps posted ahead (more than the source's ring
// holds, so a chunk's rendezvous finds its receive posted), sends of the bridge's own bytes.
constexpr std::uint64_t kChunksInFlight = 16;

}  // namespace

// The requests of one transfer in flight, by slot. Whatever is left when it goes (the transfer
// failed) is cancelled, and UCX has let go of its buffer before the destructor returns.
class InFlight {
 public:
  InFlight(UcxEndpoint& ep, std::size_t slots, std::string_view what, Clock::time_point deadline)
      : ep_(ep), requests_(slots, nullptr), what_(what), deadline_(deadline) {}
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;
  ~InFlight() {
    for (void* r : requests_) {
      if (r != nullptr) ep_.cancel_request(r);
    }
  }

  Result<void> put(std::size_t slot, Result<void*> started) {
    if (!started) return std::unexpected(started.error());
    requests_[slot] = *started;
    return {};
  }

  // Polls every request once (one round of progress first); frees the finished ones.
  Result<void> poll() {
    (void)ep_.worker().progress();
    for (void*& r : requests_) {
      if (r == nullptr) continue;
      auto done = ep_.poll_request(r, what_);
      if (!done) {
        r = nullptr;  // freed by poll_request
        return std::unexpected(done.error());
      }
      if (*done) r = nullptr;
    }
    return {};
  }

  // Waits until the request of `slot` (or, with slot == npos, every request) has finished.
  Result<void> wait(std::size_t slot = std::string::npos) {
    for (;;) {
      if (auto ok = poll(); !ok) return ok;
      const bool done = slot == std::string::npos
                            ? std::all_of(requests_.begin(), requests_.end(),
                                          [](void* r) { return r == nullptr; })
                            : requests_[slot] == nullptr;
      if (done) return {};
      if (g_stopping.load()) {
        ep_.fail_link();
        return fail(ErrorCode::kCancelled, "the bridge is stopping");
      }
      if (Clock::now() >= deadline_) {
        ep_.fail_link();
        return fail(ErrorCode::kDeadlineExceeded,
                    std::string(what_) + ": the peer took longer than the transfer's time limit");
      }
      ep_.worker().wait(std::chrono::milliseconds(50), transfer_spin());
    }
  }

 private:
  UcxEndpoint& ep_;
  std::vector<void*> requests_;
  std::string_view what_;
  Clock::time_point deadline_;
};

Result<ChunkSender> ChunkSender::create(std::shared_ptr<UcxContext> context) {
  const std::uint64_t chunk = env_number("SHMARRAY_BRIDGE_CHUNK_BYTES", kDefaultChunkBytes,
                                       kMinPipelineChunk, kMaxChunkBytes);
  const std::size_t slots = env_number("SHMARRAY_BRIDGE_CHUNK_SLOTS", kDefaultSlots, 1, 64);
  const std::uint64_t min_bytes = env_number("SHMARRAY_BRIDGE_CHUNKED_MIN_BYTES",
                                           kDefaultChunkedMinBytes, 4097, UINT64_MAX);
  if (min_bytes == UINT64_MAX) {
    return ChunkSender(chunk, slots, min_bytes, {});  // off: no ring, nothing registered
  }
  ChunkSender sender(chunk, slots, min_bytes, std::vector<std::byte>(chunk * slots));
  auto memh = UcxMemory::map(std::move(context), sender.ring_);
  if (!memh) return std::unexpected(memh.error());
  sender.ring_memh_.emplace(std::move(*memh));
  return sender;
}

ChunkSender::ChunkSender(std::uint64_t chunk, std::size_t slots, std::uint64_t min_bytes,
                         std::vector<std::byte> ring)
    : chunk_bytes_(chunk), slots_(slots), min_bytes_(min_bytes), ring_(std::move(ring)) {}
ChunkSender::ChunkSender(ChunkSender&&) noexcept = default;
ChunkSender::~ChunkSender() = default;

std::uint64_t ChunkSender::chunk_bytes_for(std::uint64_t nbytes) const noexcept {
  const std::uint64_t quarter = (nbytes / 4 + kMinChunkBytes - 1) / kMinChunkBytes * kMinChunkBytes;
  return std::min(chunk_bytes_, std::max(kMinPipelineChunk, quarter));
}

Result<void> ChunkSender::finish() {
  if (!pending_) return {};
  auto done = pending_->wait();
  pending_.reset();  // what a failure left is cancelled here
  return done;
}

Result<void> ChunkSender::start(UcxEndpoint& ep, std::span<const std::byte> bytes,
                                std::uint64_t transfer, bool shared) {
  if (auto ok = finish(); !ok) return ok;  // the ring's slots are free again
  const std::uint64_t chunk = chunk_bytes_for(bytes.size());
  const std::uint64_t chunks = chunk_count(bytes.size(), chunk);
  if (chunks > kMaxChunks || transfer > kMaxTransfer) {
    return fail(ErrorCode::kResourceExhausted,
                "an array of " + std::to_string(bytes.size()) + " bytes is over the peer link's " +
                    std::to_string(kMaxChunks) + " chunks of " + std::to_string(chunk) + " bytes");
  }
  const auto deadline = Clock::now() + transfer_timeout(bytes.size());
  const std::size_t window = std::min<std::uint64_t>(chunks, shared ? slots_ : kChunksInFlight);
  pending_ = std::make_unique<InFlight>(ep, window, "send to peer", deadline);
  InFlight& sends = *pending_;
  for (std::uint64_t i = 0; i < chunks; ++i) {
    const std::size_t slot = i % window;
    if (auto ok = sends.wait(slot); !ok) return ok;  // the slot's previous chunk has left
    const std::uint64_t at = i * chunk;
    const std::size_t n = std::min<std::uint64_t>(chunk, bytes.size() - at);
    if (!shared) {
      // The bridge's own bytes: straight from them.
      if (auto ok = sends.put(slot, ep.tag_send_start(bytes.subspan(at, n), data_tag(transfer, i),
                                                      nullptr));
          !ok) {
        return ok;
      }
      continue;
    }
    std::byte* into = ring_.data() + slot * chunk_bytes_;
    for (std::size_t done = 0; done < n; done += kCopyPiece) {
      // A user-space read of the mapping: a truncation faults here, into sigbus_guard (zeros).
      std::memcpy(into + done, bytes.data() + at + done, std::min(kCopyPiece, n - done));
      if (auto ok = sends.poll(); !ok) return ok;
    }
    if (auto ok = sends.put(slot, ep.tag_send_start(std::span(into, n), data_tag(transfer, i),
                                                    ring_memh_->get()));
        !ok) {
      return ok;
    }
  }
  return {};
}

Result<void> receive_chunks(UcxEndpoint& ep, std::span<std::byte> into, std::uint64_t transfer,
                            std::uint64_t chunk_bytes, ucp_mem_h memh) {
  const std::uint64_t chunks = chunk_count(into.size(), chunk_bytes);
  const std::size_t window = std::min<std::uint64_t>(chunks, kChunksInFlight);
  InFlight receives(ep, window, "receive from peer",
                    Clock::now() + transfer_timeout(into.size()));
  for (std::uint64_t i = 0; i < chunks; ++i) {
    const std::size_t slot = i % window;
    if (auto ok = receives.wait(slot); !ok) return ok;
    const auto piece = into.subspan(
        i * chunk_bytes, std::min<std::uint64_t>(chunk_bytes, into.size() - i * chunk_bytes));
    if (auto ok = receives.put(slot, ep.tag_recv_start(piece, data_tag(transfer, i), memh)); !ok) {
      return ok;
    }
  }
  return receives.wait();
}

Result<void> discard_chunks(UcxEndpoint& ep, std::uint64_t nbytes, std::uint64_t transfer,
                            std::uint64_t chunk_bytes) {
  std::vector<std::byte> scratch(std::min(nbytes, chunk_bytes));
  const std::uint64_t chunks = chunk_count(nbytes, chunk_bytes);
  for (std::uint64_t i = 0; i < chunks; ++i) {
    const auto n = std::min<std::uint64_t>(chunk_bytes, nbytes - i * chunk_bytes);
    InFlight receive(ep, 1, "receive from peer", Clock::now() + transfer_timeout(n));
    if (auto ok = receive.put(0, ep.tag_recv_start(std::span(scratch).first(n),
                                                   data_tag(transfer, i), nullptr));
        !ok) {
      return ok;
    }
    if (auto ok = receive.wait(); !ok) return ok;
  }
  return {};
}

}  // namespace shmarray::bridge
