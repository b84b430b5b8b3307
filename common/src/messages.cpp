#include "shmarray/wire/messages.hpp"

#include <flatbuffers/flatbuffers.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "shmarray_generated.h"

namespace shmarray::wire {
namespace {

namespace fb = shmarray::fb;
using Builder = flatbuffers::FlatBufferBuilder;

// One builder per thread, reused: Clear() keeps its buffer, so encoding a message allocates only
// the bytes it returns (a new builder allocated and freed its own buffer for every message).
// A buffer grown past kKeptBuilderBytes (a big list reply) is freed after use, not kept.
constexpr std::size_t kKeptBuilderBytes = 64 * 1024;

class ReusedBuilder {
 public:
  ReusedBuilder() : b_(builder()) { b_.Clear(); }
  ~ReusedBuilder() {
    if (b_.GetSize() > kKeptBuilderBytes) b_.Reset();
  }
  ReusedBuilder(const ReusedBuilder&) = delete;
  ReusedBuilder& operator=(const ReusedBuilder&) = delete;
  Builder& get() noexcept { return b_; }

 private:
  static Builder& builder() {
    thread_local Builder b(1024);
    return b;
  }
  Builder& b_;
};

// The finished buffer of `b`, after `prefix` bytes left for the caller (a frame header).
std::vector<std::byte> finish(Builder& b, flatbuffers::Offset<void> root, std::size_t prefix = 0) {
  b.Finish(root);
  std::vector<std::byte> out(prefix + b.GetSize());
  std::memcpy(out.data() + prefix, b.GetBufferPointer(), b.GetSize());
  return out;
}

// Fills the kFrameHeaderSize bytes that `frame` starts with (finish() left them).
void put_frame_header(std::vector<std::byte>& frame, MessageType type, std::uint64_t request_id,
                      bool has_fd) {
  FrameHeader h;
  h.type = type;
  h.request_id = request_id;
  h.body_length = static_cast<std::uint32_t>(frame.size() - kFrameHeaderSize);
  h.flags = has_fd ? kFlagHasFd : 0;
  const auto header = encode_header(h);
  std::memcpy(frame.data(), header.data(), header.size());
}

template <class T>
flatbuffers::Offset<void> as_void(flatbuffers::Offset<T> o) {
  return flatbuffers::Offset<void>(o.o);
}

// Copies a vector of 8-byte scalars with memcpy: the verifier checks a vector's 4-byte length
// prefix alignment but not its elements', so hostile bodies can hold misaligned elements.
template <class T>
std::vector<T> copy_scalars(const flatbuffers::Vector<T>* v) {
  std::vector<T> out;
  if (v == nullptr || v->size() == 0) return out;
  out.resize(v->size());
  std::memcpy(out.data(), v->Data(), v->size() * sizeof(T));
  return out;
}

std::string str(const flatbuffers::String* s) { return s == nullptr ? std::string() : s->str(); }

flatbuffers::Offset<fb::StreamStatus> put_stream_status(Builder& b, const StreamStatus& s) {
  std::vector<flatbuffers::Offset<fb::SubscriberStatus>> subs;
  subs.reserve(s.subscribers.size());
  for (const auto& sub : s.subscribers) {
    subs.push_back(fb::CreateSubscriberStatus(b, sub.pid, sub.position, sub.held, sub.missed,
                                              sub.max_held));
  }
  const auto list = b.CreateVector(subs);
  return fb::CreateStreamStatus(b, s.slots, s.slot_bytes, s.history, s.max_subscribers,
                                static_cast<std::uint8_t>(s.overflow), s.last_seq,
                                s.publisher_pid, list);
}

Result<StreamStatus> get_stream_status(const fb::StreamStatus* f) {
  if (f == nullptr) return fail(ErrorCode::kProtocolError, "stream info lacks its status");
  if (f->overflow() > 1) return fail(ErrorCode::kProtocolError, "stream info has a bad overflow");
  StreamStatus s;
  s.slots = f->slots();
  s.slot_bytes = f->slot_bytes();
  s.history = f->history();
  s.max_subscribers = f->max_subscribers();
  s.overflow = static_cast<Overflow>(f->overflow());
  s.last_seq = f->last_seq();
  s.publisher_pid = f->publisher_pid();
  if (const auto* subs = f->subscribers()) {
    if (subs->size() > kMaxStreamSubscribers) {
      return fail(ErrorCode::kProtocolError, "stream info lists too many subscribers");
    }
    for (const auto* sub : *subs) {
      if (sub == nullptr) return fail(ErrorCode::kProtocolError, "null subscriber entry");
      s.subscribers.push_back(
          {sub->pid(), sub->position(), sub->held(), sub->missed(), sub->max_held()});
    }
  }
  return s;
}

flatbuffers::Offset<fb::ArrayInfo> put_info(Builder& b, const ArrayInfo& i,
                                            std::uint32_t open_handles, std::uint64_t version) {
  const auto name = b.CreateString(i.name);
  const auto dtype = b.CreateString(i.dtype);
  const auto shape = b.CreateVector(i.shape);
  const auto strides = b.CreateVector(i.strides);
  const auto id = b.CreateString(i.id);
  const auto damaged =
      i.damaged.empty() ? flatbuffers::Offset<flatbuffers::String>() : b.CreateString(i.damaged);
  const auto stream = i.kind == ObjectKind::kStream ? put_stream_status(b, i.stream)
                                                    : flatbuffers::Offset<fb::StreamStatus>();
  const auto mirror_of = i.mirror_of.empty() ? flatbuffers::Offset<flatbuffers::String>()
                                             : b.CreateString(i.mirror_of);
  const auto mirror_link = i.mirror_link.empty() ? flatbuffers::Offset<flatbuffers::String>()
                                                 : b.CreateString(i.mirror_link);
  return fb::CreateArrayInfo(b, name, dtype, shape, strides, static_cast<std::uint8_t>(i.order),
                             i.itemsize, i.nbytes, i.data_offset, i.segment_bytes, id,
                             i.owner_uid, i.owner_gid, i.mode, i.created_unix_ns, open_handles,
                             version, i.ephemeral, damaged, static_cast<std::uint8_t>(i.kind),
                             stream, mirror_of, mirror_link, i.mirror_source_version,
                             i.mirror_lag_versions, i.mirror_lag_ms);
}

flatbuffers::Offset<fb::ArrayInfo> put_info(Builder& b, const ArrayInfo& i) {
  return put_info(b, i, i.open_handles, i.version);
}

// Fills `i` (a default ArrayInfo) from `f`: in place, so that a reply holding the info is not
// moved member by member once more (an ArrayInfo move is ~250 instructions).
Result<void> get_info_into(const fb::ArrayInfo* f, ArrayInfo& i) {
  if (f == nullptr) return fail(ErrorCode::kProtocolError, "message lacks its array info");
  i.name = str(f->name());
  i.dtype = str(f->dtype());
  i.shape = copy_scalars(f->shape());
  i.strides = copy_scalars(f->strides());
  if (f->order() > 1) return fail(ErrorCode::kProtocolError, "array info has a bad order");
  i.order = static_cast<Order>(f->order());
  i.itemsize = f->itemsize();
  i.nbytes = f->nbytes();
  i.data_offset = f->data_offset();
  i.segment_bytes = f->segment_bytes();
  i.id = str(f->id());
  i.owner_uid = f->owner_uid();
  i.owner_gid = f->owner_gid();
  i.mode = f->mode();
  i.created_unix_ns = f->created_unix_ns();
  i.open_handles = f->open_handles();
  i.version = f->version();
  i.ephemeral = f->ephemeral();
  i.damaged = str(f->damaged());
  if (f->kind() > 1) return fail(ErrorCode::kProtocolError, "array info has a bad kind");
  i.kind = static_cast<ObjectKind>(f->kind());
  if (i.kind == ObjectKind::kStream) {
    auto stream = get_stream_status(f->stream());
    if (!stream) return std::unexpected(stream.error());
    i.stream = std::move(*stream);
  }
  i.mirror_of = str(f->mirror_of());
  i.mirror_link = str(f->mirror_link());
  i.mirror_source_version = f->mirror_source_version();
  i.mirror_lag_versions = f->mirror_lag_versions();
  i.mirror_lag_ms = f->mirror_lag_ms();
  return {};
}

Result<ArrayInfo> get_info(const fb::ArrayInfo* f) {
  ArrayInfo i;
  if (auto ok = get_info_into(f, i); !ok) return std::unexpected(ok.error());
  return i;
}

// A verified root table. FlatBuffers reads scalars in place, so a body that does not start on an
// 8-byte boundary (a slice of a larger buffer) is first copied to aligned storage.
template <class T>
struct Verified {
  std::vector<std::uint64_t> storage;
  const T* root = nullptr;
  const T* operator->() const { return root; }
  operator const T*() const { return root; }  // NOLINT: reads like the pointer it wraps
};

// Verifies `body` as a FlatBuffer whose root is T, before anything reads it.
template <class T>
Result<Verified<T>> verified_root(std::span<const std::byte> body, std::string_view what) {
  Verified<T> out;
  const auto* data = reinterpret_cast<const std::uint8_t*>(body.data());
  if (reinterpret_cast<std::uintptr_t>(data) % alignof(std::uint64_t) != 0) {
    out.storage.resize((body.size() + 7) / 8);
    std::memcpy(out.storage.data(), body.data(), body.size());
    data = reinterpret_cast<const std::uint8_t*>(out.storage.data());
  }
  flatbuffers::Verifier::Options options;
  options.max_depth = 16;
  options.max_tables = 1'000'000;
  flatbuffers::Verifier verifier(data, body.size(), options);
  if (body.empty() || !verifier.VerifyBuffer<T>(nullptr)) {
    return fail(ErrorCode::kProtocolError,
                "malformed " + std::string(what) + " body (" + std::to_string(body.size()) +
                    " bytes failed verification)");
  }
  out.root = flatbuffers::GetRoot<T>(data);
  return out;
}

Result<Access> get_access(std::uint8_t value) {
  if (value > 1) return fail(ErrorCode::kProtocolError, "bad access value");
  return static_cast<Access>(value);
}


// --- field conversions: one to_table and one from_table per message ----------------------------
// Each sees only its own fields; verification, framing and the list of messages are shared.

flatbuffers::Offset<fb::HelloRequest> to_table(Builder& b, const HelloRequest& m) {
  return fb::CreateHelloRequest(b, m.min_version, m.max_version, b.CreateString(m.client_name));
}
Result<HelloRequest> from_table(const fb::HelloRequest& f) {
  return HelloRequest{f.min_version(), f.max_version(), str(f.client_name())};
}

flatbuffers::Offset<fb::HelloReply> to_table(Builder& b, const HelloReply& m) {
  return fb::CreateHelloReply(b, m.version, m.broker_pid, b.CreateString(m.broker_version),
                              m.max_array_bytes);
}
Result<HelloReply> from_table(const fb::HelloReply& f) {
  return HelloReply{f.version(), f.broker_pid(), str(f.broker_version()), f.max_array_bytes()};
}

flatbuffers::Offset<fb::CreateRequest> to_table(Builder& b, const CreateRequest& m) {
  const auto name = b.CreateString(m.name);
  const auto dtype = b.CreateString(m.spec.dtype);
  const auto shape = b.CreateVector(m.spec.shape);
  return fb::CreateCreateRequest(b, name, dtype, shape, static_cast<std::uint8_t>(m.spec.order),
                                 m.spec.mode, m.spec.ephemeral);
}
Result<CreateRequest> from_table(const fb::CreateRequest& f) {
  if (f.order() > 1) return fail(ErrorCode::kProtocolError, "CreateRequest has a bad order");
  CreateRequest m;
  m.name = str(f.name());
  m.spec.dtype = str(f.dtype());
  m.spec.shape = copy_scalars(f.shape());
  m.spec.order = static_cast<Order>(f.order());
  m.spec.mode = f.mode();
  m.spec.ephemeral = f.ephemeral();
  return m;
}

flatbuffers::Offset<fb::CreateReply> to_table(Builder& b, const CreateReply& m) {
  return fb::CreateCreateReply(b, put_info(b, m.info));
}
Result<CreateReply> from_table(const fb::CreateReply& f) {
  Result<CreateReply> m(std::in_place);
  if (auto ok = get_info_into(f.info(), m->info); !ok) return std::unexpected(ok.error());
  return m;
}

flatbuffers::Offset<fb::OpenRequest> to_table(Builder& b, const OpenRequest& m) {
  return fb::CreateOpenRequest(b, b.CreateString(m.name), static_cast<std::uint8_t>(m.access),
                               m.wait_ms, m.owner ? static_cast<std::int64_t>(*m.owner) : -1);
}
Result<OpenRequest> from_table(const fb::OpenRequest& f) {
  auto access = get_access(f.access());
  if (!access) return std::unexpected(access.error());
  std::optional<std::uint32_t> owner;
  if (f.owner_uid() != -1) {
    if (f.owner_uid() < 0 || f.owner_uid() > UINT32_MAX) {
      return fail(ErrorCode::kProtocolError,
                  "OpenRequest owner_uid " + std::to_string(f.owner_uid()) + " is not a uid");
    }
    owner = static_cast<std::uint32_t>(f.owner_uid());
  }
  return OpenRequest{str(f.name()), *access, f.wait_ms(), owner};
}

flatbuffers::Offset<fb::OpenReply> to_table(Builder& b, const OpenReply& m) {
  const auto info = put_info(b, m.info);
  return fb::CreateOpenReply(b, info, static_cast<std::uint8_t>(m.access));
}
Result<OpenReply> from_table(const fb::OpenReply& f) {
  Result<OpenReply> m(std::in_place);
  if (auto ok = get_info_into(f.info(), m->info); !ok) return std::unexpected(ok.error());
  auto access = get_access(f.access());
  if (!access) return std::unexpected(access.error());
  m->access = *access;
  return m;
}

flatbuffers::Offset<fb::RemoveRequest> to_table(Builder& b, const RemoveRequest& m) {
  return fb::CreateRemoveRequest(b, b.CreateString(m.name));
}
Result<RemoveRequest> from_table(const fb::RemoveRequest& f) {
  return RemoveRequest{str(f.name())};
}

flatbuffers::Offset<fb::ListRequest> to_table(Builder& b, const ListRequest& m) {
  return fb::CreateListRequest(b, b.CreateString(m.prefix), b.CreateString(m.after), m.limit);
}
Result<ListRequest> from_table(const fb::ListRequest& f) {
  return ListRequest{str(f.prefix()), str(f.after()), f.limit()};
}

flatbuffers::Offset<fb::ListReply> to_table(Builder& b, const ListReply& m) {
  std::vector<flatbuffers::Offset<fb::ArrayInfo>> infos;
  infos.reserve(m.arrays.size());
  for (const auto& info : m.arrays) infos.push_back(put_info(b, info));
  const auto vector = b.CreateVector(infos);
  return fb::CreateListReply(b, vector, b.CreateString(m.next_after));
}
Result<ListReply> from_table(const fb::ListReply& f) {
  ListReply m;
  if (f.arrays() != nullptr) {
    m.arrays.reserve(f.arrays()->size());
    for (const fb::ArrayInfo* element : *f.arrays()) {
      auto info = get_info(element);
      if (!info) return std::unexpected(info.error());
      m.arrays.push_back(std::move(*info));
    }
  }
  m.next_after = str(f.next_after());
  return m;
}

flatbuffers::Offset<fb::StatRequest> to_table(Builder& b, const StatRequest& m) {
  return fb::CreateStatRequest(b, b.CreateString(m.name));
}
Result<StatRequest> from_table(const fb::StatRequest& f) { return StatRequest{str(f.name())}; }

flatbuffers::Offset<fb::StatReply> to_table(Builder& b, const StatReply& m) {
  return fb::CreateStatReply(b, put_info(b, m.info));
}
Result<StatReply> from_table(const fb::StatReply& f) {
  auto info = get_info(f.info());
  if (!info) return std::unexpected(info.error());
  return StatReply{std::move(*info)};
}

flatbuffers::Offset<fb::ChmodRequest> to_table(Builder& b, const ChmodRequest& m) {
  return fb::CreateChmodRequest(b, b.CreateString(m.name), m.mode);
}
Result<ChmodRequest> from_table(const fb::ChmodRequest& f) {
  return ChmodRequest{str(f.name()), f.mode()};
}

flatbuffers::Offset<fb::CloseRequest> to_table(Builder& b, const CloseRequest& m) {
  return fb::CreateCloseRequest(b, b.CreateString(m.id));
}
Result<CloseRequest> from_table(const fb::CloseRequest& f) { return CloseRequest{str(f.id())}; }

flatbuffers::Offset<fb::WatchRequest> to_table(Builder& b, const WatchRequest& m) {
  return fb::CreateWatchRequest(b, b.CreateString(m.prefix));
}
Result<WatchRequest> from_table(const fb::WatchRequest& f) {
  return WatchRequest{str(f.prefix())};
}

flatbuffers::Offset<fb::Event> to_table(Builder& b, const Event& m) {
  const auto name = b.CreateString(m.name);
  const auto info = put_info(b, m.info);
  return fb::CreateEvent(b, static_cast<std::uint8_t>(m.kind), name, info);
}
Result<Event> from_table(const fb::Event& f) {
  const std::uint8_t kind = f.kind();
  if (kind != 1 && kind != 2) return fail(ErrorCode::kProtocolError, "Event has a bad kind");
  auto info = get_info(f.info());
  if (!info) return std::unexpected(info.error());
  return Event{static_cast<EventKind>(kind), str(f.name()), std::move(*info)};
}

flatbuffers::Offset<fb::ErrorReply> to_table(Builder& b, const ErrorReply& m) {
  return fb::CreateErrorReply(b, static_cast<std::uint16_t>(m.code), b.CreateString(m.message));
}
Result<ErrorReply> from_table(const fb::ErrorReply& f) {
  const std::uint16_t code = f.code();
  return ErrorReply{is_valid_error_code(code) ? static_cast<ErrorCode>(code) : ErrorCode::kInternal,
                    str(f.message())};
}

// Streams (wire/stream_messages.hpp).
flatbuffers::Offset<fb::CreateStreamRequest> to_table(Builder& b, const CreateStreamRequest& m) {
  const auto name = b.CreateString(m.name);
  return fb::CreateCreateStreamRequest(b, name, m.spec.slots, m.spec.slot_bytes, m.spec.history,
                                       m.spec.max_subscribers,
                                       static_cast<std::uint8_t>(m.spec.overflow), m.spec.mode,
                                       m.spec.ephemeral);
}
Result<CreateStreamRequest> from_table(const fb::CreateStreamRequest& f) {
  if (f.overflow() > 1) return fail(ErrorCode::kProtocolError, "bad overflow value");
  CreateStreamRequest m;
  m.name = str(f.name());
  m.spec.slots = f.slots();
  m.spec.slot_bytes = f.slot_bytes();
  m.spec.history = f.history();
  m.spec.max_subscribers = f.max_subscribers();
  m.spec.overflow = static_cast<Overflow>(f.overflow());
  m.spec.mode = f.mode();
  m.spec.ephemeral = f.ephemeral();
  return m;
}

flatbuffers::Offset<fb::StreamReply> to_table(Builder& b, const StreamReply& m) {
  return fb::CreateStreamReply(b, put_info(b, m.info));
}
Result<StreamReply> from_table(const fb::StreamReply& f) {
  auto info = get_info(f.info());
  if (!info) return std::unexpected(info.error());
  return StreamReply{std::move(*info)};
}

flatbuffers::Offset<fb::OpenPublisherRequest> to_table(Builder& b, const OpenPublisherRequest& m) {
  return fb::CreateOpenPublisherRequest(b, b.CreateString(m.name));
}
Result<OpenPublisherRequest> from_table(const fb::OpenPublisherRequest& f) {
  return OpenPublisherRequest{str(f.name())};
}

flatbuffers::Offset<fb::SubscribeRequest> to_table(Builder& b, const SubscribeRequest& m) {
  const auto name = b.CreateString(m.name);
  return fb::CreateSubscribeRequest(b, name, m.from_history, m.max_held);
}
Result<SubscribeRequest> from_table(const fb::SubscribeRequest& f) {
  return SubscribeRequest{str(f.name()), f.from_history(), f.max_held()};
}

flatbuffers::Offset<fb::SubscribeReply> to_table(Builder& b, const SubscribeReply& m) {
  const auto info = put_info(b, m.info);
  return fb::CreateSubscribeReply(b, info, m.index, m.generation, m.start_seq);
}
Result<SubscribeReply> from_table(const fb::SubscribeReply& f) {
  auto info = get_info(f.info());
  if (!info) return std::unexpected(info.error());
  return SubscribeReply{std::move(*info), f.index(), f.generation(), f.start_seq()};
}

flatbuffers::Offset<fb::StreamMembersRequest> to_table(Builder& b, const StreamMembersRequest& m) {
  return fb::CreateStreamMembersRequest(b, b.CreateString(m.id));
}
Result<StreamMembersRequest> from_table(const fb::StreamMembersRequest& f) {
  return StreamMembersRequest{str(f.id())};
}

flatbuffers::Offset<fb::StreamMembersReply> to_table(Builder& b, const StreamMembersReply& m) {
  std::vector<flatbuffers::Offset<fb::StreamMember>> list;
  list.reserve(m.members.size());
  for (const auto& x : m.members) {
    list.push_back(fb::CreateStreamMember(b, x.index, x.generation, x.pid, x.max_held));
  }
  const auto members = b.CreateVector(list);
  return fb::CreateStreamMembersReply(b, members);
}
Result<StreamMembersReply> from_table(const fb::StreamMembersReply& f) {
  StreamMembersReply m;
  if (const auto* list = f.members()) {
    if (list->size() > kMaxMembersPerReply) {
      return fail(ErrorCode::kProtocolError, "StreamMembersReply lists too many members");
    }
    for (const auto* x : *list) {
      if (x == nullptr) return fail(ErrorCode::kProtocolError, "null stream member");
      m.members.push_back({x->index(), x->generation(), x->pid(), x->max_held()});
    }
  }
  return m;
}

flatbuffers::Offset<fb::SubscriberStateRequest> to_table(Builder& b,
                                                         const SubscriberStateRequest& m) {
  const auto id = b.CreateString(m.id);
  return fb::CreateSubscriberStateRequest(b, id, m.index, m.generation);
}
Result<SubscriberStateRequest> from_table(const fb::SubscriberStateRequest& f) {
  return SubscriberStateRequest{str(f.id()), f.index(), f.generation()};
}

flatbuffers::Offset<fb::DetachRequest> to_table(Builder& b, const DetachRequest& m) {
  const auto id = b.CreateString(m.id);
  return fb::CreateDetachRequest(b, id, m.index, m.generation);
}
Result<DetachRequest> from_table(const fb::DetachRequest& f) {
  return DetachRequest{str(f.id()), f.index(), f.generation()};
}

flatbuffers::Offset<fb::ReadmitSubscriberRequest> to_table(Builder& b,
                                                           const ReadmitSubscriberRequest& m) {
  const auto id = b.CreateString(m.id);
  return fb::CreateReadmitSubscriberRequest(b, id, m.index, m.generation, m.cursor, m.max_held);
}
Result<ReadmitSubscriberRequest> from_table(const fb::ReadmitSubscriberRequest& f) {
  return ReadmitSubscriberRequest{str(f.id()), f.index(), f.generation(), f.cursor(),
                                  f.max_held()};
}

flatbuffers::Offset<fb::ReadmitSubscriberReply> to_table(Builder& b,
                                                         const ReadmitSubscriberReply& m) {
  return fb::CreateReadmitSubscriberReply(b, m.index, m.generation);
}
Result<ReadmitSubscriberReply> from_table(const fb::ReadmitSubscriberReply& f) {
  return ReadmitSubscriberReply{f.index(), f.generation()};
}

// Mirrors (mirror_types.hpp).
flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<fb::MirrorInfo>>> put_mirrors(
    Builder& b, const std::vector<MirrorInfo>& mirrors) {
  std::vector<flatbuffers::Offset<fb::MirrorInfo>> out;
  for (const auto& m : mirrors) {
    std::vector<flatbuffers::Offset<fb::MirroredArray>> arrays;
    for (const auto& a : m.arrays) {
      arrays.push_back(fb::CreateMirroredArray(b, b.CreateString(a.name), a.source_version,
                                               a.mirror_version, a.lag_ms));
    }
    const auto prefix = b.CreateString(m.prefix);
    const auto peer = b.CreateString(m.peer);
    const auto link = b.CreateString(m.link);
    out.push_back(fb::CreateMirrorInfo(b, prefix, peer, link, b.CreateVector(arrays)));
  }
  return b.CreateVector(out);
}
std::vector<MirrorInfo> get_mirrors(
    const flatbuffers::Vector<flatbuffers::Offset<fb::MirrorInfo>>* list) {
  std::vector<MirrorInfo> out;
  if (list == nullptr) return out;
  for (const auto* m : *list) {
    if (m == nullptr) continue;
    MirrorInfo info{str(m->prefix()), str(m->peer()), str(m->link()), {}};
    if (m->arrays() != nullptr) {
      for (const auto* a : *m->arrays()) {
        if (a == nullptr) continue;
        info.arrays.push_back(
            {str(a->name()), a->source_version(), a->mirror_version(), a->lag_ms()});
      }
    }
    out.push_back(std::move(info));
  }
  return out;
}
flatbuffers::Offset<fb::MirrorRequest> to_table(Builder& b, const MirrorRequest& m) {
  const auto prefix = b.CreateString(m.prefix);
  const auto peer = b.CreateString(m.peer);
  const auto report = put_mirrors(b, m.report);
  return fb::CreateMirrorRequest(b, static_cast<std::uint8_t>(m.op), prefix, peer, report);
}
Result<MirrorRequest> from_table(const fb::MirrorRequest& f) {
  if (f.op() < 1 || f.op() > 4) return fail(ErrorCode::kProtocolError, "bad mirror operation");
  return MirrorRequest{static_cast<MirrorOp>(f.op()), str(f.prefix()), str(f.peer()),
                       get_mirrors(f.report())};
}
flatbuffers::Offset<fb::MirrorReply> to_table(Builder& b, const MirrorReply& m) {
  return fb::CreateMirrorReply(b, put_mirrors(b, m.mirrors));
}
Result<MirrorReply> from_table(const fb::MirrorReply& f) {
  return MirrorReply{get_mirrors(f.mirrors())};
}

// Replies that carry nothing (RemoveReply, ChmodReply, CloseReply, WatchReply).
template <class M>
  requires std::is_empty_v<M>
flatbuffers::Offset<void> empty_table(Builder& b) {
  flatbuffers::uoffset_t start = b.StartTable();
  return flatbuffers::Offset<void>(b.EndTable(start));
}

// The FlatBuffers table of each message: same name in namespace fb (wire/message_table.hpp).
template <class M>
struct TableOf;
#define SHMARRAY_TABLE_OF(name, number) \
  template <>                           \
  struct TableOf<name> {                \
    using type = fb::name;              \
  };
SHMARRAY_WIRE_MESSAGES(SHMARRAY_TABLE_OF)
#undef SHMARRAY_TABLE_OF

}  // namespace

// --- the generic pair, instantiated once per message of the table --------------------------------

template <class M>
std::vector<std::byte> encode_with_prefix(const M& m, std::size_t prefix) {
  ReusedBuilder reused;
  Builder& b = reused.get();
  if constexpr (std::is_empty_v<M>) {
    return finish(b, empty_table<M>(b), prefix);
  } else {
    return finish(b, as_void(to_table(b, m)), prefix);
  }
}

template <class M>
std::vector<std::byte> encode_body(const M& m) {
  return encode_with_prefix(m, 0);
}

template <class M>
std::vector<std::byte> encode_message(const M& m, std::uint64_t request_id, bool has_fd) {
  auto frame = encode_with_prefix(m, kFrameHeaderSize);
  put_frame_header(frame, M::kType, request_id, has_fd);
  return frame;
}

template <class M>
Result<M> decode(std::span<const std::byte> body) {
  const std::string_view name = to_string(M::kType);
  auto root = verified_root<typename TableOf<M>::type>(body, name);
  if (!root) return std::unexpected(root.error());
  if constexpr (std::is_empty_v<M>) {
    return M{};
  } else {
    return from_table(*root->root);
  }
}

#define SHMARRAY_INSTANTIATE_CODEC(name, number)                  \
  template std::vector<std::byte> encode_body<name>(const name&); \
  template Result<name> decode<name>(std::span<const std::byte>); \
  template std::vector<std::byte> encode_message<name>(const name&, std::uint64_t, bool);
SHMARRAY_WIRE_MESSAGES(SHMARRAY_INSTANTIATE_CODEC)
#undef SHMARRAY_INSTANTIATE_CODEC

namespace {

// A frame whose body is the table `make(builder)` returns.
template <class Make>
std::vector<std::byte> encode_frame_of(MessageType type, std::uint64_t request_id, bool has_fd,
                                       Make make) {
  ReusedBuilder reused;
  Builder& b = reused.get();
  auto frame = finish(b, as_void(make(b)), kFrameHeaderSize);
  put_frame_header(frame, type, request_id, has_fd);
  return frame;
}

}  // namespace

std::vector<std::byte> encode_open_reply(const ArrayInfo& info, std::uint32_t open_handles,
                                         std::uint64_t version, Access access,
                                         std::uint64_t request_id, bool has_fd) {
  return encode_frame_of(MessageType::kOpenReply, request_id, has_fd, [&](Builder& b) {
    const auto table = put_info(b, info, open_handles, version);
    return fb::CreateOpenReply(b, table, static_cast<std::uint8_t>(access));
  });
}

std::vector<std::byte> encode_create_reply(const ArrayInfo& info, std::uint32_t open_handles,
                                           std::uint64_t version, std::uint64_t request_id,
                                           bool has_fd) {
  return encode_frame_of(MessageType::kCreateReply, request_id, has_fd, [&](Builder& b) {
    return fb::CreateCreateReply(b, put_info(b, info, open_handles, version));
  });
}

}  // namespace shmarray::wire
