#include "mirror_format.hpp"

#include "json.hpp"

namespace shmarray::cli {

std::string mirror_json_fields(const ArrayInfo& info) {
  if (info.mirror_of.empty()) return "";
  const std::string mirror = JsonObject()
                                 .uint_field("source_version", info.mirror_source_version)
                                 .uint_field("lag_versions", info.mirror_lag_versions)
                                 .uint_field("lag_ms", info.mirror_lag_ms)
                                 .string_field("link", info.mirror_link)
                                 .str();
  return ", \"mirror_of\": " + json_quote(info.mirror_of) + ", \"mirror\": " + mirror;
}

std::string mirror_text(const ArrayInfo& info) {
  if (info.mirror_of.empty()) return "";
  return "mirror_of: " + info.mirror_of + "\n" +
         "source_version: " + std::to_string(info.mirror_source_version) + "\n" +
         "lag: " + std::to_string(info.mirror_lag_versions) + " versions, " +
         std::to_string(info.mirror_lag_ms) + " ms\n" + "link: " + info.mirror_link + "\n";
}

std::string mirrors_table(std::span<const MirrorInfo> mirrors) {
  if (mirrors.empty()) return "no mirrors ('shmarray mirror add PREFIX HOST:PORT' adds one)\n";
  std::string out = "PREFIX\tSOURCE\tARRAYS\tLINK\n";
  for (const auto& m : mirrors) {
    out += m.prefix + "\t" + m.peer + "\t" + std::to_string(m.arrays.size()) + "\t" + m.link + "\n";
  }
  return out;
}

std::string mirrors_json(std::span<const MirrorInfo> mirrors) {
  std::string out = "[";
  for (std::size_t i = 0; i < mirrors.size(); ++i) {
    const auto& m = mirrors[i];
    std::string arrays = "[";
    for (std::size_t j = 0; j < m.arrays.size(); ++j) {
      const auto& a = m.arrays[j];
      arrays += (j > 0 ? ", " : "") + JsonObject()
                                          .string_field("name", a.name)
                                          .uint_field("source_version", a.source_version)
                                          .uint_field("mirror_version", a.mirror_version)
                                          .uint_field("lag_ms", a.lag_ms)
                                          .str();
    }
    arrays += "]";
    out += (i > 0 ? ",\n  " : "\n  ") + JsonObject()
                                           .string_field("prefix", m.prefix)
                                           .string_field("peer", m.peer)
                                           .string_field("link", m.link)
                                           .raw_field("arrays", arrays)
                                           .str();
  }
  return out + (mirrors.empty() ? "]" : "\n]");
}

}  // namespace shmarray::cli
