#include "shmarray/stream_types.hpp"

#include <string>

namespace shmarray {

std::string_view to_string(ObjectKind kind) noexcept {
  return kind == ObjectKind::kStream ? "stream" : "array";
}

std::string_view to_string(Overflow overflow) noexcept {
  return overflow == Overflow::kDropOldest ? "drop_oldest" : "block";
}

Result<void> validate_stream_spec(const StreamSpec& spec) {
  auto bad = [](std::string what) {
    return fail(ErrorCode::kInvalidArgument, "stream spec: " + std::move(what));
  };
  if (spec.slots < 2 || spec.slots > kMaxStreamSlots) {
    return bad("slots is " + std::to_string(spec.slots) + "; it must be 2.." +
               std::to_string(kMaxStreamSlots));
  }
  if (spec.slot_bytes == 0) return bad("slot_bytes is 0; give the largest message's size in bytes");
  if (spec.history >= spec.slots) {
    return bad("history " + std::to_string(spec.history) + " must be below slots (" +
               std::to_string(spec.slots) + "): raise slots");
  }
  if (spec.max_subscribers == 0 || spec.max_subscribers > kMaxStreamSubscribers) {
    return bad("max_subscribers is " + std::to_string(spec.max_subscribers) + "; it must be 1.." +
               std::to_string(kMaxStreamSubscribers));
  }
  if (static_cast<std::uint8_t>(spec.overflow) > 1) return bad("unknown overflow policy");
  if ((spec.mode & ~0777u) != 0) return bad("mode must be within 0777");
  return {};
}

}  // namespace shmarray
