#include "ucx_memory.hpp"

#include <utility>

namespace shmarray::bridge {

Result<UcxMemory> UcxMemory::map(std::shared_ptr<UcxContext> context,
                                 std::span<const std::byte> bytes) {
  ucp_mem_map_params_t params{};
  params.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS | UCP_MEM_MAP_PARAM_FIELD_LENGTH;
  params.address = const_cast<std::byte*>(bytes.data());
  params.length = bytes.size();
  ucp_mem_h memh = nullptr;
  if (auto st = ::ucp_mem_map(context->get(), &params, &memh); st != UCS_OK) {
    return std::unexpected(ucx_error("registering " + std::to_string(bytes.size()) +
                                         " bytes with UCX (ucp_mem_map)",
                                     st));
  }
  return UcxMemory(std::move(context), memh);
}

UcxMemory::UcxMemory(UcxMemory&& other) noexcept
    : context_(std::move(other.context_)), memh_(std::exchange(other.memh_, nullptr)) {}

UcxMemory& UcxMemory::operator=(UcxMemory&& other) noexcept {
  if (this != &other) {
    release();
    context_ = std::move(other.context_);
    memh_ = std::exchange(other.memh_, nullptr);
  }
  return *this;
}

UcxMemory::~UcxMemory() { release(); }

void UcxMemory::release() noexcept {
  if (memh_ != nullptr) (void)::ucp_mem_unmap(context_->get(), std::exchange(memh_, nullptr));
}

}  // namespace shmarray::bridge
