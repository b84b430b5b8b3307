#pragma once
// RAII over ucp_mem_map: a buffer registered with UCX once, so that tag sends and receives of it
// (rendezvous, docs/protocol.md "Peer link") need no registration per request. Over TCP the
// registration is a formality (UCX's tcp memory domain registers nothing); on RDMA hardware it
// pins the pages and gives the key the peer's RDMA read or write into them needs.
#include <ucp/api/ucp.h>

#include <cstddef>
#include <memory>
#include <span>

#include "shmarray/error.hpp"
#include "ucx_worker.hpp"

namespace shmarray::bridge {

class UcxMemory {
 public:
  // Registers [bytes.data(), bytes.data() + bytes.size()) (mapped by the caller, who keeps it
  // mapped until this is destroyed).
  [[nodiscard]] static Result<UcxMemory> map(std::shared_ptr<UcxContext> context,
                                             std::span<const std::byte> bytes);
  UcxMemory(UcxMemory&& other) noexcept;
  UcxMemory& operator=(UcxMemory&& other) noexcept;
  UcxMemory(const UcxMemory&) = delete;
  UcxMemory& operator=(const UcxMemory&) = delete;
  ~UcxMemory();

  [[nodiscard]] ucp_mem_h get() const noexcept { return memh_; }

 private:
  UcxMemory(std::shared_ptr<UcxContext> c, ucp_mem_h m) : context_(std::move(c)), memh_(m) {}
  void release() noexcept;
  std::shared_ptr<UcxContext> context_;
  ucp_mem_h memh_ = nullptr;
};

}  // namespace shmarray::bridge
