#pragma once
// Text for ArrayInfo: the `ls` table, `stat` lines and --json objects, plus the small value
// formats they share (Python-tuple shapes, human sizes, octal modes, UTC times). Pure functions.
#include <cstdint>
#include <functional>
#include <span>
#include <string>

#include "shmarray/types.hpp"

namespace shmarray::cli {

// Python tuple syntax, as NumPy shows shapes: "()", "(5,)", "(1024, 1024)".
[[nodiscard]] std::string tuple_str(std::span<const std::uint64_t> values);
[[nodiscard]] std::string tuple_str(std::span<const std::int64_t> values);
// "96 B" below 1 KiB, else one decimal and a binary unit: "8.0 MiB", "1.5 GiB".
[[nodiscard]] std::string human_size(std::uint64_t bytes);
// Four octal digits: "0600".
[[nodiscard]] std::string mode_str(std::uint32_t mode);
// ISO 8601 in UTC with nanoseconds: "2024-05-01T12:34:56.000000123Z".
[[nodiscard]] std::string utc_time_str(std::int64_t unix_ns);

// Maps a uid (or gid) to a name; returns "" when there is none.
using NameLookup = std::function<std::string(std::uint32_t)>;

// The `ls` table: NAME DTYPE SHAPE SIZE OWNER MODE OPEN VERSION, header included. OWNER is the
// user name from `user_name`, or the uid when it has none.
[[nodiscard]] std::string list_table(std::span<const ArrayInfo> infos, const NameLookup& user_name);

// `stat`: every ArrayInfo field as "key: value", one per line, keys named as the fields. Sizes,
// owner and creation time get a human form in parentheses after the raw value.
[[nodiscard]] std::string stat_text(const ArrayInfo& info, const NameLookup& user_name,
                                    const NameLookup& group_name);

// Every ArrayInfo field as one JSON object (keys named as the fields; order as "C"/"F"; mode as
// the string of four octal digits the text shows, e.g. "0600").
[[nodiscard]] std::string info_json(const ArrayInfo& info);
// The stream part of `stat` (kind, ring, last sequence number, publisher, one line per
// subscriber: pid, position, held/max_held, missed).
[[nodiscard]] std::string stream_text(const StreamStatus& stream);
// A JSON array of info_json objects, one per line: "[\n  {...},\n  {...}\n]" ("[]" when empty).
[[nodiscard]] std::string infos_json(std::span<const ArrayInfo> infos);

}  // namespace shmarray::cli
