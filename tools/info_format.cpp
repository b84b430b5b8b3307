#include "info_format.hpp"

#include "frame_format.hpp"
#include "shmarray/frame_layout.hpp"

#include <array>
#include <cstdio>
#include <ctime>

#include "json.hpp"
#include "mirror_format.hpp"
#include "table.hpp"

namespace shmarray::cli {

namespace {

template <class T>
std::string tuple_of(std::span<const T> values) {
  std::string out = "(";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ", ";
    out += std::to_string(values[i]);
  }
  if (values.size() == 1) out += ",";
  return out + ")";
}

std::string name_or_id(const NameLookup& lookup, std::uint32_t id) {
  std::string name = lookup ? lookup(id) : std::string();
  return name.empty() ? std::to_string(id) : name;
}

// "1000 (alice)", or "1000" when the id has no name.
std::string id_with_name(const NameLookup& lookup, std::uint32_t id) {
  const std::string name = lookup ? lookup(id) : std::string();
  return name.empty() ? std::to_string(id) : std::to_string(id) + " (" + name + ")";
}

}  // namespace

std::string tuple_str(std::span<const std::uint64_t> values) { return tuple_of(values); }
std::string tuple_str(std::span<const std::int64_t> values) { return tuple_of(values); }

std::string human_size(std::uint64_t bytes) {
  if (bytes < 1024) return std::to_string(bytes) + " B";
  static constexpr std::array<const char*, 6> kUnits = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double value = static_cast<double>(bytes) / 1024.0;
  std::size_t unit = 0;
  // Move up a unit when one decimal would round to "1024.0".
  while (value >= 1023.95 && unit + 1 < kUnits.size()) {
    value /= 1024.0;
    ++unit;
  }
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.1f %s", value, kUnits[unit]);
  return buffer;
}

std::string mode_str(std::uint32_t mode) {
  char buffer[16];
  std::snprintf(buffer, sizeof buffer, "%04o", mode);
  return buffer;
}

std::string utc_time_str(std::int64_t unix_ns) {
  // Floor division, so times before 1970 keep a non-negative nanosecond part.
  std::int64_t seconds = unix_ns / 1'000'000'000;
  std::int64_t nanos = unix_ns % 1'000'000'000;
  if (nanos < 0) {
    nanos += 1'000'000'000;
    --seconds;
  }
  const std::time_t t = static_cast<std::time_t>(seconds);
  std::tm tm{};
  if (gmtime_r(&t, &tm) == nullptr) return "?";
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%04d-%02d-%02dT%02d:%02d:%02d.%09lldZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<long long>(nanos));
  return buffer;
}

std::string list_table(std::span<const ArrayInfo> infos, const NameLookup& user_name) {
  Table table({{"NAME"},
               {"KIND"},
               {"DTYPE"},
               {"SHAPE"},
               {"SIZE", Align::kRight},
               {"OWNER"},
               {"MODE"},
               {"OPEN", Align::kRight},
               {"VERSION", Align::kRight}});
  for (const ArrayInfo& info : infos) {
    const auto dtype = DType::parse(info.dtype);
    // A stream: its ring (slots x slot size) and its last sequence number as the version.
    const bool stream = info.kind == ObjectKind::kStream;
    // A frame: its column count and rows instead of its (long) dtype and 0-d shape.
    const bool frame = !stream && dtype && is_frame(*dtype, info.shape);
    auto layout = frame ? frame_layout_of(*dtype, info.shape) : Result<FrameLayout>();
    const bool table_row = frame && layout.has_value();
    const std::string version = stream ? std::to_string(info.stream.last_seq)
                                       : std::to_string(info.version);
    std::string dtype_column = info.dtype;
    std::string shape_column = tuple_str(info.shape);
    if (stream) {
      dtype_column = "-";
      shape_column = std::to_string(info.stream.slots) + " x " + human_size(info.stream.slot_bytes);
    } else if (table_row) {
      dtype_column = std::to_string(layout->columns.size()) + " columns";
      shape_column = "(" + std::to_string(layout->rows) + ",)";
    }
    table.add_row({info.name, stream ? "stream" : frame ? "frame" : "array", dtype_column,
                   shape_column, human_size(info.nbytes), name_or_id(user_name, info.owner_uid),
                   mode_str(info.mode), std::to_string(info.open_handles),
                   info.damaged.empty() ? version : "DAMAGED"});
  }
  return table.render();
}

std::string stat_text(const ArrayInfo& info, const NameLookup& user_name,
                      const NameLookup& group_name) {
  const auto with_size = [](std::uint64_t bytes) {
    return std::to_string(bytes) + " (" + human_size(bytes) + ")";
  };
  // Structured dtypes as NumPy prints them (str(dtype)); others as their typestr.
  const auto dtype = DType::parse(info.dtype);
  const std::pair<const char*, std::string> lines[] = {
      {"name", info.name},
      {"dtype", dtype && dtype->is_structured() ? dtype->numpy_str() : info.dtype},
      {"shape", tuple_str(info.shape)},
      {"strides", tuple_str(info.strides)},
      {"order", std::string(to_string(info.order))},
      {"itemsize", std::to_string(info.itemsize)},
      {"nbytes", with_size(info.nbytes)},
      {"data_offset", std::to_string(info.data_offset)},
      {"segment_bytes", with_size(info.segment_bytes)},
      {"id", info.id},
      {"owner_uid", id_with_name(user_name, info.owner_uid)},
      {"owner_gid", id_with_name(group_name, info.owner_gid)},
      {"mode", mode_str(info.mode)},
      {"created_unix_ns",
       std::to_string(info.created_unix_ns) + " (" + utc_time_str(info.created_unix_ns) + ")"},
      {"open_handles", std::to_string(info.open_handles)},
      {"version", std::to_string(info.version)},
      {"ephemeral", info.ephemeral ? "true" : "false"},
      {"damaged", info.damaged.empty() ? "no" : info.damaged},
  };
  std::string out;
  const bool stream = info.kind == ObjectKind::kStream;
  const bool frame = !stream && dtype && is_frame(*dtype, info.shape);
  out += std::string("kind: ") + (stream ? "stream" : frame ? "frame" : "array") + "\n";
  for (const auto& [key, value] : lines) out += std::string(key) + ": " + value + "\n";
  out += mirror_text(info);
  if (stream) out += stream_text(info.stream);
  if (frame) {
    auto layout = frame_layout_of(*dtype, info.shape);
    if (layout) out += "rows: " + std::to_string(layout->rows) + "\n";
    out += "columns:\n";
    for (const auto& line : frame_column_lines(*dtype, info.shape)) out += "  " + line + "\n";
  }
  return out;
}

std::string stream_text(const StreamStatus& s) {
  std::string out;
  out += "slots: " + std::to_string(s.slots) + "\n";
  out += "slot_bytes: " + std::to_string(s.slot_bytes) + " (" + human_size(s.slot_bytes) + ")\n";
  out += "history: " + std::to_string(s.history) + "\n";
  out += "overflow: " + std::string(to_string(s.overflow)) + "\n";
  out += "max_subscribers: " + std::to_string(s.max_subscribers) + "\n";
  out += "last_seq: " + std::to_string(s.last_seq) + "\n";
  out += "publisher_pid: " + (s.publisher_pid == 0 ? std::string("none (open_publisher may take over)")
                                                    : std::to_string(s.publisher_pid)) + "\n";
  out += "subscribers: " + std::to_string(s.subscribers.size()) + "\n";
  for (const auto& sub : s.subscribers) {
    out += "  pid " + std::to_string(sub.pid) + ": position " + std::to_string(sub.position) +
           ", held " + std::to_string(sub.held) + "/" + std::to_string(sub.max_held) +
           ", missed " + std::to_string(sub.missed) + "\n";
  }
  return out;
}

std::string info_json(const ArrayInfo& info) {
  std::string json = JsonObject()
      .string_field("name", info.name)
      .string_field("dtype", info.dtype)
      .raw_field("shape", json_uint_array(info.shape))
      .raw_field("strides", json_int_array(info.strides))
      .string_field("order", to_string(info.order))
      .uint_field("itemsize", info.itemsize)
      .uint_field("nbytes", info.nbytes)
      .uint_field("data_offset", info.data_offset)
      .uint_field("segment_bytes", info.segment_bytes)
      .string_field("id", info.id)
      .uint_field("owner_uid", info.owner_uid)
      .uint_field("owner_gid", info.owner_gid)
      .string_field("mode", mode_str(info.mode))
      .int_field("created_unix_ns", info.created_unix_ns)
      .uint_field("open_handles", info.open_handles)
      .uint_field("version", info.version)
      .bool_field("ephemeral", info.ephemeral)
      .raw_field("damaged", info.damaged.empty() ? "null" : json_quote(info.damaged))
      .str();
  if (!info.mirror_of.empty()) {
    json.pop_back();  // the closing brace
    json += mirror_json_fields(info) + "}";
  }
  if (info.kind != ObjectKind::kStream) return json;  // arrays: no "kind" (as before streams)
  std::string subs = "[";
  for (const auto& sub : info.stream.subscribers) {
    subs += std::string(subs.size() > 1 ? ", " : "") +
            JsonObject()
                .uint_field("pid", sub.pid)
                .uint_field("position", sub.position)
                .uint_field("held", sub.held)
                .uint_field("max_held", sub.max_held)
                .uint_field("missed", sub.missed)
                .str();
  }
  subs += "]";
  const std::string stream = JsonObject()
                                 .uint_field("slots", info.stream.slots)
                                 .uint_field("slot_bytes", info.stream.slot_bytes)
                                 .uint_field("history", info.stream.history)
                                 .string_field("overflow", to_string(info.stream.overflow))
                                 .uint_field("max_subscribers", info.stream.max_subscribers)
                                 .uint_field("last_seq", info.stream.last_seq)
                                 .uint_field("publisher_pid", info.stream.publisher_pid)
                                 .raw_field("subscribers", subs)
                                 .str();
  json.pop_back();  // the closing brace
  return json + ", \"kind\": \"stream\", \"stream\": " + stream + "}";
}

std::string infos_json(std::span<const ArrayInfo> infos) {
  if (infos.empty()) return "[]";
  std::string out = "[\n";
  for (std::size_t i = 0; i < infos.size(); ++i) {
    out += "  " + info_json(infos[i]) + (i + 1 < infos.size() ? ",\n" : "\n");
  }
  return out + "]";
}

}  // namespace shmarray::cli
