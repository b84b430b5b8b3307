#pragma once
// How the CLI shows mirrors across hosts (docs/across-hosts.md): the mirror fields of a mirrored
// array in `stat` and `ls --json`, and `shmarray mirror ls` as a table or JSON.
#include <span>
#include <string>

#include "shmarray/mirror_types.hpp"
#include "shmarray/types.hpp"

namespace shmarray::cli {

// `, "mirror_of": "HOST:PORT", "mirror": {...}` for a mirror (to go before the closing brace of
// its JSON object), "" for other arrays.
[[nodiscard]] std::string mirror_json_fields(const ArrayInfo& info);
// stat lines: mirror_of, source version, lag (versions and ms), link; "" for other arrays.
[[nodiscard]] std::string mirror_text(const ArrayInfo& info);
// `shmarray mirror ls`.
[[nodiscard]] std::string mirrors_table(std::span<const MirrorInfo> mirrors);
[[nodiscard]] std::string mirrors_json(std::span<const MirrorInfo> mirrors);

}  // namespace shmarray::cli
