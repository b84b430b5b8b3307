#pragma once
// The refusal of an open that required an owner (OpenOptions::owner) and found the array owned by
// another uid. The broker refuses such an open before granting it (so it never counts in
// open_handles); the client checks again, for brokers older than that check. Both say this.
#include <cstdint>
#include <string>
#include <string_view>

#include "shmarray/error.hpp"

namespace shmarray {

[[nodiscard]] inline Error owner_mismatch(std::string_view name, std::uint32_t owner_uid,
                                          std::uint32_t required_uid) {
  return Error(ErrorCode::kPermissionDenied,
               "array '" + std::string(name) + "' is owned by uid " + std::to_string(owner_uid) +
                   ", not by uid " + std::to_string(required_uid) +
                   " as required (OpenOptions::owner): another user may have taken the name; "
                   "nothing was mapped. Ask uid " + std::to_string(owner_uid) +
                   " (or root) to remove it, or use another name");
}

}  // namespace shmarray
