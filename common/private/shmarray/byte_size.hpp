#pragma once
// Byte counts as people write them on a command line: "1G", "512M", "64K", "1.5GiB", "4096".
// One parser for every size option (shmarrayd --max-bytes and the other byte limits).
#include <cstdint>
#include <string_view>

#include "shmarray/error.hpp"

namespace shmarray {

// Parses a non-negative byte count: digits with an optional fraction ("1.5"), then an optional
// unit, case-insensitive: none or B (bytes), K/KiB, M/MiB, G/GiB, T/TiB (powers of 1024, as
// dd and systemd count). A fraction rounds down to whole bytes. kInvalidArgument quoting the
// text and naming the accepted forms for anything else (negative, empty, "1GB", "1 G", more
// than 2^64-1 bytes).
[[nodiscard]] Result<std::uint64_t> parse_byte_size(std::string_view text);

}  // namespace shmarray
