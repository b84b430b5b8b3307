#pragma once
// Account names for ids, from the system's user and group databases (getpwuid_r/getgrgid_r).
#include <cstdint>
#include <string>

namespace shmarray::cli {

// The user name of `uid`, or "" when the database has no entry (or the lookup fails).
[[nodiscard]] std::string user_name(std::uint32_t uid);
// The group name of `gid`, or "" likewise.
[[nodiscard]] std::string group_name(std::uint32_t gid);

}  // namespace shmarray::cli
