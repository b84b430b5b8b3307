#include "shmarray/wire/stream_messages.hpp"

#include <flatbuffers/flatbuffers.h>

#include <cstring>

#include "shmarray_generated.h"
#include "wire_detail.hpp"

namespace shmarray::wire {
namespace {

namespace fb = shmarray::fb;
using Builder = flatbuffers::FlatBufferBuilder;
using detail::get_info;
using detail::put_info;

template <class T>
std::vector<std::byte> finish(Builder& b, flatbuffers::Offset<T> root) {
  b.Finish(root);
  const auto* p = reinterpret_cast<const std::byte*>(b.GetBufferPointer());
  return {p, p + b.GetSize()};
}

std::string str(const flatbuffers::String* s) { return s == nullptr ? std::string() : s->str(); }

// As messages.cpp: verify before reading; copy a misaligned body to aligned storage first.
template <class T>
struct Verified {
  std::vector<std::uint64_t> storage;
  const T* root = nullptr;
  const T* operator->() const { return root; }
};

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
  options.max_tables = 100'000;
  flatbuffers::Verifier verifier(data, body.size(), options);
  if (body.empty() || !verifier.VerifyBuffer<T>(nullptr)) {
    return fail(ErrorCode::kProtocolError, "malformed " + std::string(what) + " body (" +
                                               std::to_string(body.size()) +
                                               " bytes failed verification)");
  }
  out.root = flatbuffers::GetRoot<T>(data);
  return out;
}

}  // namespace

namespace detail {

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

}  // namespace detail

std::vector<std::byte> encode_body(const CreateStreamRequest& m) {
  Builder b;
  const auto name = b.CreateString(m.name);
  return finish(b, fb::CreateCreateStreamRequest(
                       b, name, m.spec.slots, m.spec.slot_bytes, m.spec.history,
                       m.spec.max_subscribers, static_cast<std::uint8_t>(m.spec.overflow),
                       m.spec.mode, m.spec.ephemeral));
}
std::vector<std::byte> encode_body(const StreamReply& m) {
  Builder b;
  return finish(b, fb::CreateStreamReply(b, put_info(b, m.info)));
}
std::vector<std::byte> encode_body(const OpenPublisherRequest& m) {
  Builder b;
  return finish(b, fb::CreateOpenPublisherRequest(b, b.CreateString(m.name)));
}
std::vector<std::byte> encode_body(const SubscribeRequest& m) {
  Builder b;
  const auto name = b.CreateString(m.name);
  return finish(b, fb::CreateSubscribeRequest(b, name, m.from_history, m.max_held));
}
std::vector<std::byte> encode_body(const SubscribeReply& m) {
  Builder b;
  const auto info = put_info(b, m.info);
  return finish(b, fb::CreateSubscribeReply(b, info, m.index, m.generation, m.start_seq));
}
std::vector<std::byte> encode_body(const StreamMembersRequest& m) {
  Builder b;
  return finish(b, fb::CreateStreamMembersRequest(b, b.CreateString(m.id)));
}
std::vector<std::byte> encode_body(const StreamMembersReply& m) {
  Builder b;
  std::vector<flatbuffers::Offset<fb::StreamMember>> list;
  for (const auto& x : m.members) {
    list.push_back(fb::CreateStreamMember(b, x.index, x.generation, x.pid, x.max_held));
  }
  const auto members = b.CreateVector(list);
  return finish(b, fb::CreateStreamMembersReply(b, members));
}
std::vector<std::byte> encode_body(const SubscriberStateRequest& m) {
  Builder b;
  const auto id = b.CreateString(m.id);
  return finish(b, fb::CreateSubscriberStateRequest(b, id, m.index, m.generation));
}
std::vector<std::byte> encode_body(const SubscriberStateReply&) {
  Builder b;
  return finish(b, fb::CreateSubscriberStateReply(b));
}

std::vector<std::byte> encode_body(const DetachRequest& m) {
  Builder b;
  const auto id = b.CreateString(m.id);
  return finish(b, fb::CreateDetachRequest(b, id, m.index, m.generation));
}
std::vector<std::byte> encode_body(const DetachReply&) {
  Builder b;
  return finish(b, fb::CreateDetachReply(b));
}

template <>
Result<CreateStreamRequest> decode<CreateStreamRequest>(std::span<const std::byte> body) {
  auto r = verified_root<fb::CreateStreamRequest>(body, "CreateStreamRequest");
  if (!r) return std::unexpected(r.error());
  if (r->root->overflow() > 1) return fail(ErrorCode::kProtocolError, "bad overflow value");
  CreateStreamRequest m;
  m.name = str(r->root->name());
  m.spec.slots = r->root->slots();
  m.spec.slot_bytes = r->root->slot_bytes();
  m.spec.history = r->root->history();
  m.spec.max_subscribers = r->root->max_subscribers();
  m.spec.overflow = static_cast<Overflow>(r->root->overflow());
  m.spec.mode = r->root->mode();
  m.spec.ephemeral = r->root->ephemeral();
  return m;
}
template <>
Result<StreamReply> decode<StreamReply>(std::span<const std::byte> body) {
  auto r = verified_root<fb::StreamReply>(body, "StreamReply");
  if (!r) return std::unexpected(r.error());
  auto info = get_info(r->root->info());
  if (!info) return std::unexpected(info.error());
  return StreamReply{std::move(*info)};
}
template <>
Result<OpenPublisherRequest> decode<OpenPublisherRequest>(std::span<const std::byte> body) {
  auto r = verified_root<fb::OpenPublisherRequest>(body, "OpenPublisherRequest");
  if (!r) return std::unexpected(r.error());
  return OpenPublisherRequest{str(r->root->name())};
}
template <>
Result<SubscribeRequest> decode<SubscribeRequest>(std::span<const std::byte> body) {
  auto r = verified_root<fb::SubscribeRequest>(body, "SubscribeRequest");
  if (!r) return std::unexpected(r.error());
  return SubscribeRequest{str(r->root->name()), r->root->from_history(), r->root->max_held()};
}
template <>
Result<SubscribeReply> decode<SubscribeReply>(std::span<const std::byte> body) {
  auto r = verified_root<fb::SubscribeReply>(body, "SubscribeReply");
  if (!r) return std::unexpected(r.error());
  auto info = get_info(r->root->info());
  if (!info) return std::unexpected(info.error());
  return SubscribeReply{std::move(*info), r->root->index(), r->root->generation(),
                        r->root->start_seq()};
}
template <>
Result<StreamMembersRequest> decode<StreamMembersRequest>(std::span<const std::byte> body) {
  auto r = verified_root<fb::StreamMembersRequest>(body, "StreamMembersRequest");
  if (!r) return std::unexpected(r.error());
  return StreamMembersRequest{str(r->root->id())};
}
template <>
Result<StreamMembersReply> decode<StreamMembersReply>(std::span<const std::byte> body) {
  auto r = verified_root<fb::StreamMembersReply>(body, "StreamMembersReply");
  if (!r) return std::unexpected(r.error());
  StreamMembersReply m;
  if (const auto* list = r->root->members()) {
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
template <>
Result<SubscriberStateRequest> decode<SubscriberStateRequest>(std::span<const std::byte> body) {
  auto r = verified_root<fb::SubscriberStateRequest>(body, "SubscriberStateRequest");
  if (!r) return std::unexpected(r.error());
  return SubscriberStateRequest{str(r->root->id()), r->root->index(), r->root->generation()};
}
template <>
Result<SubscriberStateReply> decode<SubscriberStateReply>(std::span<const std::byte> body) {
  auto r = verified_root<fb::SubscriberStateReply>(body, "SubscriberStateReply");
  if (!r) return std::unexpected(r.error());
  return SubscriberStateReply{};
}

template <>
Result<DetachRequest> decode<DetachRequest>(std::span<const std::byte> body) {
  auto r = verified_root<fb::DetachRequest>(body, "DetachRequest");
  if (!r) return std::unexpected(r.error());
  return DetachRequest{str(r->root->id()), r->root->index(), r->root->generation()};
}
template <>
Result<DetachReply> decode<DetachReply>(std::span<const std::byte> body) {
  auto r = verified_root<fb::DetachReply>(body, "DetachReply");
  if (!r) return std::unexpected(r.error());
  return DetachReply{};
}

}  // namespace shmarray::wire
