#pragma once
// Array bytes above kCoalesceArrayBytes on the peer link (docs/protocol.md "Peer link"): not on
// the UCX stream with the control messages but on the tag API, in chunks, each a rendezvous
// (UCX_RNDV_THRESH is below a chunk) whose receive the mirror posts straight into the mirror
// segment at the chunk's offset. Over TCP, UCX's rendezvous is a put_zcopy: the source's kernel
// sends from the chunk's buffer and the mirror's kernel receives (recv) straight into the
// segment, so no user-space copy is left on the mirror; on RDMA hardware it is an RDMA write (or
// read) between the two registered buffers.
//
// The source never lets the kernel read a source mapping (a local writer may truncate it: the
// kernel's read of a page that is gone is EFAULT, which fails the UCX endpoint and drops the
// link). ChunkSender copies each chunk of a mapping in user space, where a truncation faults
// into sigbus_guard, into a private staging ring of a few chunks and sends it from there, the
// next chunk copied while the previous ones travel. Bytes that are the bridge's own (a
// seqlock-consistent copy) are sent straight from where they are.
//
// Tags: the link's transfer number (one per ArrayBegin, increasing) in the high bits, the chunk
// index in the low kChunkIndexBits, matched with a full mask: a chunk of an abandoned, stale or
// retried transfer can never land in another transfer's buffer.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "peer_messages.hpp"
#include "shmarray/error.hpp"
#include "ucx_endpoint.hpp"
#include "ucx_memory.hpp"

namespace shmarray::bridge {

// The smallest chunk ChunkSender splits an array into.
inline constexpr std::uint64_t kMinPipelineChunk = 256 * 1024;

[[nodiscard]] constexpr std::uint64_t data_tag(std::uint64_t transfer, std::uint64_t chunk) {
  return (transfer << kChunkIndexBits) | chunk;
}
// How many chunks `nbytes` make (the last one may be short).
[[nodiscard]] constexpr std::uint64_t chunk_count(std::uint64_t nbytes, std::uint64_t chunk) {
  return chunk == 0 ? 0 : (nbytes + chunk - 1) / chunk;
}

class InFlight;

// The source side: the staging ring of one link.
class ChunkSender {
 public:
  // The largest chunk, the ring's slots and the smallest array sent in chunks:
  // SHMARRAY_BRIDGE_CHUNK_BYTES / SHMARRAY_BRIDGE_CHUNK_SLOTS / SHMARRAY_BRIDGE_CHUNKED_MIN_BYTES
  // if set, else 4 MiB x 4 and never (the chunked path is off by default: docs/across-hosts.md).
  [[nodiscard]] static Result<ChunkSender> create(std::shared_ptr<UcxContext> context);
  ChunkSender(ChunkSender&&) noexcept;
  ChunkSender& operator=(ChunkSender&&) = delete;
  ~ChunkSender();

  // Whether an array of `nbytes` goes in chunks on the tag API (else raw on the stream). Over TCP
  // on the 2-vCPU dev VM the rendezvous' round trips made 1 MiB arrays slower than the stream's
  // copies (docs/benchmarks.md "Across hosts"); from 64 MiB the chunks were as fast or a few
  // per cent faster.
  [[nodiscard]] bool takes(std::uint64_t nbytes) const noexcept { return nbytes >= min_bytes_; }
  // The chunk size for an array of `nbytes`: a quarter of it (so that copying the next chunk
  // overlaps sending the previous ones), at least kMinPipelineChunk, at most the largest chunk.
  [[nodiscard]] std::uint64_t chunk_bytes_for(std::uint64_t nbytes) const noexcept;
  // Starts sending `bytes` as transfer `transfer` in chunks of chunk_bytes_for(bytes.size()).
  // `shared`: the bytes lie in a mapping another process may truncate: each chunk is copied
  // through the ring first (returns once the last one is copied, so the caller's seqlock check
  // after it covers every byte sent); else they are sent straight from `bytes`, which must stay
  // unchanged until finish(). The chunks still in flight complete in finish(), which the caller
  // calls (under the same send lock) after the transfer's ArrayEnd: that message need not wait
  // for the last chunk's acknowledgement. A failure force-closes the endpoint.
  [[nodiscard]] Result<void> start(UcxEndpoint& ep, std::span<const std::byte> bytes,
                                   std::uint64_t transfer, bool shared);
  // Waits until UCX is done with every chunk started (the mirror has them).
  [[nodiscard]] Result<void> finish();

 private:
  ChunkSender(std::uint64_t chunk, std::size_t slots, std::uint64_t min_bytes,
              std::vector<std::byte> ring);
  std::uint64_t chunk_bytes_;
  std::size_t slots_;
  std::uint64_t min_bytes_;
  std::vector<std::byte> ring_;
  std::optional<UcxMemory> ring_memh_;  // after ring_: unregistered before it goes
  std::unique_ptr<InFlight> pending_;   // last: cancelled before the ring goes
};

// The mirror side: receives transfer `transfer` (chunks of `chunk_bytes`) straight into `into`
// (`memh`: its registration, or nullptr). All the chunks' receives are posted at once; returns
// when every chunk has arrived. On failure (peer gone, timeout, a chunk of the wrong size) the
// endpoint is force-closed and no receive is left writing into `into`.
[[nodiscard]] Result<void> receive_chunks(UcxEndpoint& ep, std::span<std::byte> into,
                                          std::uint64_t transfer, std::uint64_t chunk_bytes,
                                          ucp_mem_h memh);
// Receives and drops transfer `transfer` of `nbytes` (an array this side cannot hold).
[[nodiscard]] Result<void> discard_chunks(UcxEndpoint& ep, std::uint64_t nbytes,
                                          std::uint64_t transfer, std::uint64_t chunk_bytes);

}  // namespace shmarray::bridge
