#include "shmarray/wire/messages.hpp"

#include <flatbuffers/flatbuffers.h>

#include <cstdint>
#include <cstring>

#include "shmarray_generated.h"
#include "wire_detail.hpp"

namespace shmarray::wire {
namespace {

namespace fb = shmarray::fb;
using Builder = flatbuffers::FlatBufferBuilder;

std::vector<std::byte> finish(Builder& b, flatbuffers::Offset<void> root) {
  b.Finish(root);
  const auto* p = reinterpret_cast<const std::byte*>(b.GetBufferPointer());
  return {p, p + b.GetSize()};
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

}  // namespace

// Shared with stream_messages.cpp (wire_detail.hpp).
namespace detail {

flatbuffers::Offset<fb::ArrayInfo> put_info(Builder& b, const ArrayInfo& i) {
  const auto name = b.CreateString(i.name);
  const auto dtype = b.CreateString(i.dtype);
  const auto shape = b.CreateVector(i.shape);
  const auto strides = b.CreateVector(i.strides);
  const auto id = b.CreateString(i.id);
  const auto damaged =
      i.damaged.empty() ? flatbuffers::Offset<flatbuffers::String>() : b.CreateString(i.damaged);
  const auto stream = i.kind == ObjectKind::kStream ? put_stream_status(b, i.stream)
                                                    : flatbuffers::Offset<fb::StreamStatus>();
  return fb::CreateArrayInfo(b, name, dtype, shape, strides, static_cast<std::uint8_t>(i.order),
                             i.itemsize, i.nbytes, i.data_offset, i.segment_bytes, id,
                             i.owner_uid, i.owner_gid, i.mode, i.created_unix_ns, i.open_handles,
                             i.version, i.ephemeral, damaged, static_cast<std::uint8_t>(i.kind),
                             stream);
}

Result<ArrayInfo> get_info(const fb::ArrayInfo* f) {
  if (f == nullptr) return fail(ErrorCode::kProtocolError, "message lacks its array info");
  ArrayInfo i;
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
  return i;
}

}  // namespace detail
namespace {

using detail::get_info;
using detail::put_info;

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

}  // namespace

// --- encoders ---------------------------------------------------------------------------------

std::vector<std::byte> encode_body(const HelloRequest& m) {
  Builder b;
  return finish(b, as_void(fb::CreateHelloRequest(b, m.min_version, m.max_version,
                                                  b.CreateString(m.client_name))));
}
std::vector<std::byte> encode_body(const HelloReply& m) {
  Builder b;
  return finish(b, as_void(fb::CreateHelloReply(b, m.version, m.broker_pid,
                                                b.CreateString(m.broker_version),
                                                m.max_array_bytes)));
}
std::vector<std::byte> encode_body(const CreateRequest& m) {
  Builder b;
  const auto name = b.CreateString(m.name);
  const auto dtype = b.CreateString(m.spec.dtype);
  const auto shape = b.CreateVector(m.spec.shape);
  return finish(b, as_void(fb::CreateCreateRequest(b, name, dtype, shape,
                                                   static_cast<std::uint8_t>(m.spec.order),
                                                   m.spec.mode, m.spec.ephemeral)));
}
std::vector<std::byte> encode_body(const CreateReply& m) {
  Builder b;
  return finish(b, as_void(fb::CreateCreateReply(b, put_info(b, m.info))));
}
std::vector<std::byte> encode_body(const OpenRequest& m) {
  Builder b;
  return finish(b, as_void(fb::CreateOpenRequest(b, b.CreateString(m.name),
                                                 static_cast<std::uint8_t>(m.access),
                                                 m.wait_ms)));
}
std::vector<std::byte> encode_body(const OpenReply& m) {
  Builder b;
  const auto info = put_info(b, m.info);
  return finish(b, as_void(fb::CreateOpenReply(b, info, static_cast<std::uint8_t>(m.access))));
}
std::vector<std::byte> encode_body(const RemoveRequest& m) {
  Builder b;
  return finish(b, as_void(fb::CreateRemoveRequest(b, b.CreateString(m.name))));
}
std::vector<std::byte> encode_body(const RemoveReply&) {
  Builder b;
  return finish(b, as_void(fb::CreateRemoveReply(b)));
}
std::vector<std::byte> encode_body(const ListRequest& m) {
  Builder b;
  return finish(b, as_void(fb::CreateListRequest(b, b.CreateString(m.prefix),
                                                  b.CreateString(m.after), m.limit)));
}
std::vector<std::byte> encode_body(const ListReply& m) {
  Builder b;
  std::vector<flatbuffers::Offset<fb::ArrayInfo>> infos;
  infos.reserve(m.arrays.size());
  for (const auto& info : m.arrays) infos.push_back(put_info(b, info));
  const auto vector = b.CreateVector(infos);
  return finish(b, as_void(fb::CreateListReply(b, vector, b.CreateString(m.next_after))));
}
std::vector<std::byte> encode_body(const StatRequest& m) {
  Builder b;
  return finish(b, as_void(fb::CreateStatRequest(b, b.CreateString(m.name))));
}
std::vector<std::byte> encode_body(const StatReply& m) {
  Builder b;
  return finish(b, as_void(fb::CreateStatReply(b, put_info(b, m.info))));
}
std::vector<std::byte> encode_body(const ChmodRequest& m) {
  Builder b;
  return finish(b, as_void(fb::CreateChmodRequest(b, b.CreateString(m.name), m.mode)));
}
std::vector<std::byte> encode_body(const ChmodReply&) {
  Builder b;
  return finish(b, as_void(fb::CreateChmodReply(b)));
}
std::vector<std::byte> encode_body(const CloseRequest& m) {
  Builder b;
  return finish(b, as_void(fb::CreateCloseRequest(b, b.CreateString(m.id))));
}
std::vector<std::byte> encode_body(const CloseReply&) {
  Builder b;
  return finish(b, as_void(fb::CreateCloseReply(b)));
}
std::vector<std::byte> encode_body(const WatchRequest& m) {
  Builder b;
  return finish(b, as_void(fb::CreateWatchRequest(b, b.CreateString(m.prefix))));
}
std::vector<std::byte> encode_body(const WatchReply&) {
  Builder b;
  return finish(b, as_void(fb::CreateWatchReply(b)));
}
std::vector<std::byte> encode_body(const Event& m) {
  Builder b;
  const auto name = b.CreateString(m.name);
  const auto info = put_info(b, m.info);
  return finish(b, as_void(fb::CreateEvent(b, static_cast<std::uint8_t>(m.kind), name, info)));
}
std::vector<std::byte> encode_body(const ErrorReply& m) {
  Builder b;
  return finish(b, as_void(fb::CreateErrorReply(b, static_cast<std::uint16_t>(m.code),
                                                b.CreateString(m.message))));
}

// --- decoders ---------------------------------------------------------------------------------

template <>
Result<HelloRequest> decode<HelloRequest>(std::span<const std::byte> body) {
  auto r = verified_root<fb::HelloRequest>(body, "HelloRequest");
  if (!r) return std::unexpected(r.error());
  return HelloRequest{(*r)->min_version(), (*r)->max_version(), str((*r)->client_name())};
}
template <>
Result<HelloReply> decode<HelloReply>(std::span<const std::byte> body) {
  auto r = verified_root<fb::HelloReply>(body, "HelloReply");
  if (!r) return std::unexpected(r.error());
  return HelloReply{(*r)->version(), (*r)->broker_pid(), str((*r)->broker_version()),
                    (*r)->max_array_bytes()};
}
template <>
Result<CreateRequest> decode<CreateRequest>(std::span<const std::byte> body) {
  auto r = verified_root<fb::CreateRequest>(body, "CreateRequest");
  if (!r) return std::unexpected(r.error());
  const fb::CreateRequest* f = *r;
  if (f->order() > 1) return fail(ErrorCode::kProtocolError, "CreateRequest has a bad order");
  CreateRequest m;
  m.name = str(f->name());
  m.spec.dtype = str(f->dtype());
  m.spec.shape = copy_scalars(f->shape());
  m.spec.order = static_cast<Order>(f->order());
  m.spec.mode = f->mode();
  m.spec.ephemeral = f->ephemeral();
  return m;
}
template <>
Result<CreateReply> decode<CreateReply>(std::span<const std::byte> body) {
  auto r = verified_root<fb::CreateReply>(body, "CreateReply");
  if (!r) return std::unexpected(r.error());
  auto info = get_info((*r)->info());
  if (!info) return std::unexpected(info.error());
  return CreateReply{std::move(*info)};
}
template <>
Result<OpenRequest> decode<OpenRequest>(std::span<const std::byte> body) {
  auto r = verified_root<fb::OpenRequest>(body, "OpenRequest");
  if (!r) return std::unexpected(r.error());
  auto access = get_access((*r)->access());
  if (!access) return std::unexpected(access.error());
  return OpenRequest{str((*r)->name()), *access, (*r)->wait_ms()};
}
template <>
Result<OpenReply> decode<OpenReply>(std::span<const std::byte> body) {
  auto r = verified_root<fb::OpenReply>(body, "OpenReply");
  if (!r) return std::unexpected(r.error());
  auto info = get_info((*r)->info());
  if (!info) return std::unexpected(info.error());
  auto access = get_access((*r)->access());
  if (!access) return std::unexpected(access.error());
  return OpenReply{std::move(*info), *access};
}
template <>
Result<RemoveRequest> decode<RemoveRequest>(std::span<const std::byte> body) {
  auto r = verified_root<fb::RemoveRequest>(body, "RemoveRequest");
  if (!r) return std::unexpected(r.error());
  return RemoveRequest{str((*r)->name())};
}
template <>
Result<RemoveReply> decode<RemoveReply>(std::span<const std::byte> body) {
  auto r = verified_root<fb::RemoveReply>(body, "RemoveReply");
  if (!r) return std::unexpected(r.error());
  return RemoveReply{};
}
template <>
Result<ListRequest> decode<ListRequest>(std::span<const std::byte> body) {
  auto r = verified_root<fb::ListRequest>(body, "ListRequest");
  if (!r) return std::unexpected(r.error());
  return ListRequest{str((*r)->prefix()), str((*r)->after()), (*r)->limit()};
}
template <>
Result<ListReply> decode<ListReply>(std::span<const std::byte> body) {
  auto r = verified_root<fb::ListReply>(body, "ListReply");
  if (!r) return std::unexpected(r.error());
  ListReply m;
  if ((*r)->arrays() != nullptr) {
    m.arrays.reserve((*r)->arrays()->size());
    for (const fb::ArrayInfo* f : *(*r)->arrays()) {
      auto info = get_info(f);
      if (!info) return std::unexpected(info.error());
      m.arrays.push_back(std::move(*info));
    }
  }
  m.next_after = str((*r)->next_after());
  return m;
}
template <>
Result<StatRequest> decode<StatRequest>(std::span<const std::byte> body) {
  auto r = verified_root<fb::StatRequest>(body, "StatRequest");
  if (!r) return std::unexpected(r.error());
  return StatRequest{str((*r)->name())};
}
template <>
Result<StatReply> decode<StatReply>(std::span<const std::byte> body) {
  auto r = verified_root<fb::StatReply>(body, "StatReply");
  if (!r) return std::unexpected(r.error());
  auto info = get_info((*r)->info());
  if (!info) return std::unexpected(info.error());
  return StatReply{std::move(*info)};
}
template <>
Result<ChmodRequest> decode<ChmodRequest>(std::span<const std::byte> body) {
  auto r = verified_root<fb::ChmodRequest>(body, "ChmodRequest");
  if (!r) return std::unexpected(r.error());
  return ChmodRequest{str((*r)->name()), (*r)->mode()};
}
template <>
Result<ChmodReply> decode<ChmodReply>(std::span<const std::byte> body) {
  auto r = verified_root<fb::ChmodReply>(body, "ChmodReply");
  if (!r) return std::unexpected(r.error());
  return ChmodReply{};
}
template <>
Result<CloseRequest> decode<CloseRequest>(std::span<const std::byte> body) {
  auto r = verified_root<fb::CloseRequest>(body, "CloseRequest");
  if (!r) return std::unexpected(r.error());
  return CloseRequest{str((*r)->id())};
}
template <>
Result<CloseReply> decode<CloseReply>(std::span<const std::byte> body) {
  auto r = verified_root<fb::CloseReply>(body, "CloseReply");
  if (!r) return std::unexpected(r.error());
  return CloseReply{};
}
template <>
Result<WatchRequest> decode<WatchRequest>(std::span<const std::byte> body) {
  auto r = verified_root<fb::WatchRequest>(body, "WatchRequest");
  if (!r) return std::unexpected(r.error());
  return WatchRequest{str((*r)->prefix())};
}
template <>
Result<WatchReply> decode<WatchReply>(std::span<const std::byte> body) {
  auto r = verified_root<fb::WatchReply>(body, "WatchReply");
  if (!r) return std::unexpected(r.error());
  return WatchReply{};
}
template <>
Result<Event> decode<Event>(std::span<const std::byte> body) {
  auto r = verified_root<fb::Event>(body, "Event");
  if (!r) return std::unexpected(r.error());
  const std::uint8_t kind = (*r)->kind();
  if (kind != 1 && kind != 2) return fail(ErrorCode::kProtocolError, "Event has a bad kind");
  auto info = get_info((*r)->info());
  if (!info) return std::unexpected(info.error());
  return Event{static_cast<EventKind>(kind), str((*r)->name()), std::move(*info)};
}
template <>
Result<ErrorReply> decode<ErrorReply>(std::span<const std::byte> body) {
  auto r = verified_root<fb::ErrorReply>(body, "ErrorReply");
  if (!r) return std::unexpected(r.error());
  const std::uint16_t code = (*r)->code();
  return ErrorReply{is_valid_error_code(code) ? static_cast<ErrorCode>(code)
                                              : ErrorCode::kInternal,
                    str((*r)->message())};
}

}  // namespace shmarray::wire
