#include "shmarray/stream/stream_layout.hpp"

#include "shmarray/segment_layout.hpp"

namespace shmarray::stream {
namespace {

// a * b + c with overflow checks; false on overflow.
bool mul_add(std::uint64_t a, std::uint64_t b, std::uint64_t c, std::uint64_t& out) {
  if (a != 0 && b > (UINT64_MAX - c) / a) return false;
  out = a * b + c;
  return true;
}

bool round_up(std::uint64_t v, std::uint64_t to, std::uint64_t& out) {
  if (v > UINT64_MAX - (to - 1)) return false;
  out = (v + to - 1) / to * to;
  return true;
}

}  // namespace

Result<StreamGeometry> stream_geometry(const StreamSpec& spec, std::uint64_t max_bytes) {
  if (auto ok = validate_stream_spec(spec); !ok) return std::unexpected(ok.error());
  StreamGeometry g;
  g.spec = spec;
  g.table_offset = kPage;
  const auto too_large = [&] {
    return fail(ErrorCode::kResourceExhausted,
                "a stream of " + std::to_string(spec.slots) + " slots of " +
                    std::to_string(spec.slot_bytes) + " bytes exceeds the broker's limit of " +
                    std::to_string(max_bytes) + " bytes: lower slots or slot_bytes");
  };
  std::uint64_t end = 0;
  if (!mul_add(spec.slots, sizeof(TableEntry), g.table_offset, end)) return too_large();
  if (!round_up(end, 64, g.descriptors_offset)) return too_large();
  if (!mul_add(spec.slots, kDescriptorBytes, g.descriptors_offset, end)) return too_large();
  if (!round_up(end, kPage, g.slots_offset)) return too_large();
  if (!round_up(spec.slot_bytes, kPage, g.slot_stride)) return too_large();
  if (!mul_add(spec.slots, g.slot_stride, g.slots_offset, g.segment_bytes)) return too_large();
  if (g.segment_bytes > max_bytes) return too_large();
  return g;
}

StreamSpec spec_of(const ArrayInfo& info) {
  StreamSpec spec;
  spec.slots = info.stream.slots;
  spec.slot_bytes = info.stream.slot_bytes;
  spec.history = info.stream.history;
  spec.max_subscribers = info.stream.max_subscribers;
  spec.overflow = info.stream.overflow;
  spec.mode = info.mode;
  spec.ephemeral = info.ephemeral;
  return spec;
}

void describe_stream_segment(ArrayInfo& info, const StreamGeometry& g) {
  info.kind = ObjectKind::kStream;
  info.dtype = "|u1";
  info.itemsize = 1;
  info.nbytes = g.segment_bytes - kHeaderBytes;
  info.shape = {info.nbytes};
  info.strides = {1};
  info.order = Order::kC;
  info.data_offset = kHeaderBytes;
  info.segment_bytes = g.segment_bytes;
  info.stream.slots = g.spec.slots;
  info.stream.slot_bytes = g.spec.slot_bytes;
  info.stream.history = g.spec.history;
  info.stream.max_subscribers = g.spec.max_subscribers;
  info.stream.overflow = g.spec.overflow;
}

}  // namespace shmarray::stream
