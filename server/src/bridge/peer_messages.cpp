#include "peer_messages.hpp"

#include <cstring>

#include "shmarray/dtype.hpp"

namespace shmarray::bridge {
namespace {

class Writer {
 public:
  void u8(std::uint8_t v) { bytes_.push_back(static_cast<std::byte>(v)); }
  void u16(std::uint16_t v) { put(v); }
  void u32(std::uint32_t v) { put(v); }
  void u64(std::uint64_t v) { put(v); }
  void raw(std::span<const std::byte> b) { bytes_.insert(bytes_.end(), b.begin(), b.end()); }
  void text(std::string_view s) {
    u16(static_cast<std::uint16_t>(s.size()));
    raw(std::as_bytes(std::span(s.data(), s.size())));
  }
  std::vector<std::byte> take() { return std::move(bytes_); }

 private:
  template <class T>
  void put(T v) {
    for (std::size_t i = 0; i < sizeof(T); ++i) u8(static_cast<std::uint8_t>(v >> (8 * i)));
  }
  std::vector<std::byte> bytes_;
};

// Bounds-checked reads; the first failure sticks and names the field.
class Reader {
 public:
  explicit Reader(std::span<const std::byte> b) : bytes_(b) {}
  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  std::uint8_t u8(const char* field) { return static_cast<std::uint8_t>(get(1, field)); }
  std::uint16_t u16(const char* field) { return static_cast<std::uint16_t>(get(2, field)); }
  std::uint32_t u32(const char* field) { return static_cast<std::uint32_t>(get(4, field)); }
  std::uint64_t u64(const char* field) { return get(8, field); }
  template <std::size_t N>
  std::array<std::byte, N> raw(const char* field) {
    std::array<std::byte, N> out{};
    if (!take(N, field)) return out;
    std::memcpy(out.data(), bytes_.data() + at_ - N, N);
    return out;
  }
  std::string text(const char* field, std::size_t max) {
    const std::size_t n = u16(field);
    if (!ok()) return {};
    if (n > max) {
      fail_with(std::string(field) + " is " + std::to_string(n) + " bytes, more than " +
                std::to_string(max));
      return {};
    }
    if (!take(n, field)) return {};
    return std::string(reinterpret_cast<const char*>(bytes_.data() + at_ - n), n);
  }
  // The next n bytes (empty, and the failure recorded, if fewer are left).
  std::span<const std::byte> rest(const char* field, std::size_t n) {
    if (!take(n, field)) return {};
    return bytes_.subspan(at_ - n, n);
  }
  bool finished() {
    if (ok() && at_ != bytes_.size()) {
      fail_with(std::to_string(bytes_.size() - at_) + " unexpected bytes after the body");
    }
    return ok();
  }
  void fail_with(std::string why) {
    if (error_.empty()) error_ = std::move(why);
  }

 private:
  bool take(std::size_t n, const char* field) {
    if (!ok()) return false;
    if (bytes_.size() - at_ < n) {
      fail_with(std::string("truncated at ") + field);
      return false;
    }
    at_ += n;
    return true;
  }
  std::uint64_t get(std::size_t n, const char* field) {
    if (!take(n, field)) return 0;
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i) {
      v |= static_cast<std::uint64_t>(bytes_[at_ - n + i]) << (8 * i);
    }
    return v;
  }
  std::span<const std::byte> bytes_;
  std::size_t at_ = 0;
  std::string error_;
};

PeerType type_of(const PeerMessage& m) {
  return std::visit(
      [](const auto& v) -> PeerType {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, Hello>) return PeerType::kHello;
        if constexpr (std::is_same_v<T, Proof>) return PeerType::kProof;
        if constexpr (std::is_same_v<T, Refused>) return PeerType::kRefused;
        if constexpr (std::is_same_v<T, Subscribe>) return PeerType::kSubscribe;
        if constexpr (std::is_same_v<T, Subscribed>) return PeerType::kSubscribed;
        if constexpr (std::is_same_v<T, ArrayBegin>) return PeerType::kArrayBegin;
        if constexpr (std::is_same_v<T, ArrayEnd>) return PeerType::kArrayEnd;
        if constexpr (std::is_same_v<T, ArrayRemoved>) return PeerType::kArrayRemoved;
        if constexpr (std::is_same_v<T, InventoryEnd>) return PeerType::kInventoryEnd;
        if constexpr (std::is_same_v<T, StreamBegin>) return PeerType::kStreamBegin;
        if constexpr (std::is_same_v<T, StreamMessage>) return PeerType::kStreamMessage;
        if constexpr (std::is_same_v<T, PeerAddresses>) return PeerType::kPeerAddresses;
        if constexpr (std::is_same_v<T, WorkerAddress>) return PeerType::kWorkerAddress;
        return PeerType::kHeartbeat;
      },
      m);
}

void encode_body(Writer& w, const PeerMessage& m) {
  std::visit(
      [&w](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, Hello>) {
          w.u8(static_cast<std::uint8_t>(v.role));
          w.raw(v.nonce);
        } else if constexpr (std::is_same_v<T, Proof>) {
          w.raw(v.mac);
        } else if constexpr (std::is_same_v<T, Refused>) {
          w.u16(static_cast<std::uint16_t>(v.code));
          w.text(std::string_view(v.message).substr(0, kMaxPeerMessageText));
        } else if constexpr (std::is_same_v<T, Subscribe>) {
          w.text(v.prefix);
        } else if constexpr (std::is_same_v<T, ArrayBegin>) {
          w.text(v.name);
          w.text(v.dtype);
          w.u8(static_cast<std::uint8_t>(v.order));
          w.u32(v.mode);
          w.u64(v.version);
          w.u64(v.nbytes);
          w.text(v.source_id);
          w.u32(static_cast<std::uint32_t>(v.shape.size()));
          for (auto d : v.shape) w.u64(d);
          w.u64(v.transfer);
          w.u64(v.chunk_bytes);
        } else if constexpr (std::is_same_v<T, ArrayEnd>) {
          w.u8(static_cast<std::uint8_t>(v.end));
          w.u64(v.version);
        } else if constexpr (std::is_same_v<T, ArrayRemoved>) {
          w.text(v.name);
        } else if constexpr (std::is_same_v<T, InventoryEnd>) {
          w.u32(v.count);
        } else if constexpr (std::is_same_v<T, StreamBegin>) {
          w.text(v.name);
          w.u32(v.slots);
          w.u64(v.slot_bytes);
          w.u32(v.history);
          w.u32(v.max_subscribers);
          w.u8(static_cast<std::uint8_t>(v.overflow));
          w.u32(v.mode);
          w.text(v.source_id);
        } else if constexpr (std::is_same_v<T, PeerAddresses>) {
          w.u32(static_cast<std::uint32_t>(v.addresses.size()));
          for (const auto& a : v.addresses) w.raw(a);
          w.u16(static_cast<std::uint16_t>(v.ports.size()));
          for (const auto port : v.ports) w.u16(port);
        } else if constexpr (std::is_same_v<T, WorkerAddress>) {
          w.u32(static_cast<std::uint32_t>(v.address.size()));
          w.raw(v.address);
        } else if constexpr (std::is_same_v<T, StreamMessage>) {
          w.text(v.name);
          w.u64(v.seq);
          w.text(v.dtype);
          w.u8(static_cast<std::uint8_t>(v.order));
          w.u64(v.nbytes);
          w.u32(static_cast<std::uint32_t>(v.shape.size()));
          for (auto d : v.shape) w.u64(d);
        }
      },
      m);
}

Result<void> check_name(const std::string& name, const char* what) {
  if (auto ok = validate_name(name); !ok) {
    return fail(ErrorCode::kProtocolError, std::string("peer sent a bad ") + what + ": " +
                                               ok.error().message());
  }
  return {};
}

bool is_hex_id(std::string_view id) {
  if (id.size() != 32) return false;
  for (char c : id) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace

std::string_view to_string(PeerType type) noexcept {
  switch (type) {
    case PeerType::kHello: return "Hello";
    case PeerType::kProof: return "Proof";
    case PeerType::kRefused: return "Refused";
    case PeerType::kSubscribe: return "Subscribe";
    case PeerType::kSubscribed: return "Subscribed";
    case PeerType::kArrayBegin: return "ArrayBegin";
    case PeerType::kArrayEnd: return "ArrayEnd";
    case PeerType::kArrayRemoved: return "ArrayRemoved";
    case PeerType::kInventoryEnd: return "InventoryEnd";
    case PeerType::kHeartbeat: return "Heartbeat";
    case PeerType::kStreamBegin: return "StreamBegin";
    case PeerType::kStreamMessage: return "StreamMessage";
    case PeerType::kPeerAddresses: return "PeerAddresses";
    case PeerType::kWorkerAddress: return "WorkerAddress";
  }
  return "Unknown";
}

Result<void> validate_prefix(std::string_view prefix) {
  if (prefix.empty() || prefix.size() > kMaxNameLength) {
    return fail(ErrorCode::kInvalidArgument,
                "mirror prefix must be 1-255 bytes (got " + std::to_string(prefix.size()) + ")");
  }
  if (prefix.front() == '/') {
    return fail(ErrorCode::kInvalidArgument,
                "mirror prefix '" + std::string(prefix) + "' must not start with '/'");
  }
  for (char c : prefix) {
    const bool allowed = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                         (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' || c == '/' ||
                         c == '-';
    if (!allowed) {
      return fail(ErrorCode::kInvalidArgument,
                  "mirror prefix '" + std::string(prefix) +
                      "' has a character outside [A-Za-z0-9._:/-]");
    }
  }
  return {};
}

bool prefix_allowed(const std::string& prefix, const std::vector<std::string>& allowed) noexcept {
  for (const auto& a : allowed) {
    if (prefix.compare(0, a.size(), a) == 0) return true;
  }
  return false;
}

std::vector<std::byte> encode_peer(const PeerMessage& m) {
  Writer body;
  encode_body(body, m);
  auto b = body.take();
  Writer w;
  w.u32(kPeerMagic);
  w.u16(kPeerVersion);
  w.u16(static_cast<std::uint16_t>(type_of(m)));
  w.u32(static_cast<std::uint32_t>(b.size()));
  w.u32(0);
  w.raw(b);
  return w.take();
}

std::vector<std::byte> encode_refusal(std::uint16_t version, const Refused& m) {
  auto bytes = encode_peer(m);
  bytes[4] = static_cast<std::byte>(version & 0xff);
  bytes[5] = static_cast<std::byte>(version >> 8);
  return bytes;
}

std::optional<std::uint16_t> peer_version_of(std::span<const std::byte> header) {
  Reader r(header.first(std::min(header.size(), kPeerHeaderBytes)));
  const auto magic = r.u32("magic");
  const auto version = r.u16("version");
  if (!r.ok() || magic != kPeerMagic) return std::nullopt;
  return version;
}

std::string version_mismatch(std::uint16_t theirs) {
  return "the peer's bridge speaks peer-link version " + std::to_string(theirs) +
         ", this bridge version " + std::to_string(kPeerVersion) +
         ": upgrade both brokers to the same shmarray release";
}

Result<PeerHeader> decode_peer_header(std::span<const std::byte> bytes) {
  Reader r(bytes.first(std::min(bytes.size(), kPeerHeaderBytes)));
  const auto magic = r.u32("magic");
  const auto version = r.u16("version");
  const auto type = r.u16("type");
  const auto body = r.u32("body length");
  (void)r.u32("reserved");
  if (!r.ok()) return fail(ErrorCode::kProtocolError, "peer header: " + r.error());
  if (magic != kPeerMagic) {
    return fail(ErrorCode::kProtocolError,
                "the peer is not a shmarray bridge (bad magic): check --mirror HOST:PORT");
  }
  if (version != kPeerVersion) {
    return fail(ErrorCode::kFailedPrecondition, version_mismatch(version));
  }
  if (type < 1 || type > static_cast<std::uint16_t>(PeerType::kWorkerAddress)) {
    return fail(ErrorCode::kProtocolError, "peer sent unknown message type " + std::to_string(type));
  }
  if (body > kMaxPeerBody) {
    return fail(ErrorCode::kProtocolError, "peer message body of " + std::to_string(body) +
                                               " bytes is over the limit of " +
                                               std::to_string(kMaxPeerBody));
  }
  return PeerHeader{static_cast<PeerType>(type), body};
}

Result<PeerMessage> decode_peer_body(PeerType type, std::span<const std::byte> body) {
  Reader r(body);
  PeerMessage out;
  switch (type) {
    case PeerType::kHello: {
      Hello h;
      const auto role = r.u8("role");
      h.nonce = r.raw<kNonceBytes>("nonce");
      if (r.ok() && role != 1 && role != 2) r.fail_with("unknown role " + std::to_string(role));
      h.role = static_cast<PeerRole>(role);
      out = h;
      break;
    }
    case PeerType::kProof: out = Proof{r.raw<kMacBytes>("mac")}; break;
    case PeerType::kRefused: {
      Refused f;
      const auto code = r.u16("code");
      f.message = r.text("message", kMaxPeerMessageText);
      if (r.ok() && (!is_valid_error_code(code) || code == 0)) {
        r.fail_with("unknown error code " + std::to_string(code));
      }
      f.code = static_cast<ErrorCode>(code);
      out = f;
      break;
    }
    case PeerType::kSubscribe: {
      Subscribe s{r.text("prefix", kMaxNameLength)};
      if (r.ok()) {
        if (auto ok = validate_prefix(s.prefix); !ok) r.fail_with(ok.error().message());
      }
      out = s;
      break;
    }
    case PeerType::kSubscribed: out = Subscribed{}; break;
    case PeerType::kArrayBegin: {
      ArrayBegin a;
      a.name = r.text("name", kMaxNameLength);
      a.dtype = r.text("dtype", kMaxDTypeTextBytes);
      const auto order = r.u8("order");
      a.mode = r.u32("mode");
      a.version = r.u64("version");
      a.nbytes = r.u64("nbytes");
      a.source_id = r.text("source id", 32);
      const auto ndim = r.u32("ndim");
      if (r.ok() && ndim > kMaxNdim) {
        r.fail_with("ndim " + std::to_string(ndim) + " is over " + std::to_string(kMaxNdim));
      }
      for (std::uint32_t i = 0; r.ok() && i < ndim; ++i) a.shape.push_back(r.u64("shape"));
      a.transfer = r.u64("transfer");
      a.chunk_bytes = r.u64("chunk bytes");
      if (r.ok() && order > 1) r.fail_with("order " + std::to_string(order) + " is not C or F");
      a.order = static_cast<Order>(order);
      if (r.ok() && (a.mode & ~0777u) != 0) r.fail_with("mode is not within 0777");
      if (r.ok() && (a.transfer == 0 || a.transfer > kMaxTransfer)) {
        r.fail_with("transfer " + std::to_string(a.transfer) + " is not within 1.." +
                    std::to_string(kMaxTransfer));
      }
      if (r.ok() && a.chunk_bytes != 0 &&
          (a.chunk_bytes < kMinChunkBytes || a.chunk_bytes > kMaxChunkBytes)) {
        r.fail_with("chunk bytes " + std::to_string(a.chunk_bytes) + " is not 0 or within " +
                    std::to_string(kMinChunkBytes) + ".." + std::to_string(kMaxChunkBytes));
      }
      if (r.ok() && a.chunk_bytes != 0 &&
          a.nbytes / a.chunk_bytes + (a.nbytes % a.chunk_bytes != 0 ? 1 : 0) > kMaxChunks) {
        r.fail_with(std::to_string(a.nbytes) + " bytes in chunks of " +
                    std::to_string(a.chunk_bytes) + " are over " + std::to_string(kMaxChunks) +
                    " chunks");
      }
      if (r.ok() && !is_hex_id(a.source_id)) r.fail_with("source id is not 32 hex digits");
      if (r.ok()) {
        if (auto ok = check_name(a.name, "array name"); !ok) r.fail_with(ok.error().message());
      }
      out = std::move(a);
      break;
    }
    case PeerType::kArrayEnd: {
      ArrayEnd e;
      const auto end = r.u8("end");
      e.version = r.u64("version");
      if (r.ok() && (end < 1 || end > 3)) r.fail_with("unknown transfer end " + std::to_string(end));
      e.end = static_cast<TransferEnd>(end);
      out = e;
      break;
    }
    case PeerType::kArrayRemoved: {
      ArrayRemoved a{r.text("name", kMaxNameLength)};
      if (r.ok()) {
        if (auto ok = check_name(a.name, "array name"); !ok) r.fail_with(ok.error().message());
      }
      out = std::move(a);
      break;
    }
    case PeerType::kInventoryEnd: out = InventoryEnd{r.u32("count")}; break;
    case PeerType::kHeartbeat: out = Heartbeat{}; break;
    case PeerType::kStreamBegin: {
      StreamBegin b;
      b.name = r.text("name", kMaxNameLength);
      b.slots = r.u32("slots");
      b.slot_bytes = r.u64("slot bytes");
      b.history = r.u32("history");
      b.max_subscribers = r.u32("max subscribers");
      const auto overflow = r.u8("overflow");
      b.mode = r.u32("mode");
      b.source_id = r.text("source id", 32);
      if (r.ok() && overflow > 1) r.fail_with("overflow " + std::to_string(overflow));
      b.overflow = static_cast<Overflow>(overflow);
      if (r.ok() && (b.mode & ~0777u) != 0) r.fail_with("mode is not within 0777");
      if (r.ok() && !is_hex_id(b.source_id)) r.fail_with("source id is not 32 hex digits");
      if (r.ok()) {
        StreamSpec spec{b.slots, b.slot_bytes, b.history, b.max_subscribers, b.overflow, b.mode};
        if (auto ok = validate_stream_spec(spec); !ok) r.fail_with(ok.error().message());
      }
      if (r.ok()) {
        if (auto ok = check_name(b.name, "stream name"); !ok) r.fail_with(ok.error().message());
      }
      out = std::move(b);
      break;
    }
    case PeerType::kStreamMessage: {
      StreamMessage m;
      m.name = r.text("name", kMaxNameLength);
      m.seq = r.u64("seq");
      m.dtype = r.text("dtype", kMaxDTypeTextBytes);
      const auto order = r.u8("order");
      m.nbytes = r.u64("nbytes");
      const auto ndim = r.u32("ndim");
      if (r.ok() && ndim > kMaxNdim) {
        r.fail_with("ndim " + std::to_string(ndim) + " is over " + std::to_string(kMaxNdim));
      }
      for (std::uint32_t i = 0; r.ok() && i < ndim; ++i) m.shape.push_back(r.u64("shape"));
      if (r.ok() && order > 1) r.fail_with("order " + std::to_string(order) + " is not C or F");
      m.order = static_cast<Order>(order);
      if (r.ok()) {
        if (auto ok = check_name(m.name, "stream name"); !ok) r.fail_with(ok.error().message());
      }
      out = std::move(m);
      break;
    }
    case PeerType::kPeerAddresses: {
      PeerAddresses a;
      const auto count = r.u32("address count");
      if (r.ok() && count > kMaxPeerAddresses) {
        r.fail_with("address count " + std::to_string(count) + " is over " +
                    std::to_string(kMaxPeerAddresses));
      }
      for (std::uint32_t i = 0; r.ok() && i < count; ++i) a.addresses.push_back(r.raw<16>("address"));
      const auto ports = r.u16("source port count");
      if (r.ok() && (ports == 0 || ports > kMaxPeerSourcePorts)) {
        r.fail_with("source port count " + std::to_string(ports) + " is not 1-" +
                    std::to_string(kMaxPeerSourcePorts));
      }
      for (std::uint16_t i = 0; r.ok() && i < ports; ++i) {
        const auto port = r.u16("source port");
        if (r.ok() && port == 0) r.fail_with("source port 0");
        a.ports.push_back(port);
      }
      out = std::move(a);
      break;
    }
    case PeerType::kWorkerAddress: {
      WorkerAddress a;
      const auto n = r.u32("worker address length");
      if (r.ok() && (n == 0 || n > kMaxWorkerAddressBytes)) {
        r.fail_with("worker address length " + std::to_string(n) + " is not 1-" +
                    std::to_string(kMaxWorkerAddressBytes));
      }
      if (r.ok()) {
        const auto bytes = r.rest("worker address", n);
        a.address.assign(bytes.begin(), bytes.end());
      }
      out = std::move(a);
      break;
    }
    default: r.fail_with("unknown message type"); break;
  }
  if (!r.finished()) {
    return fail(ErrorCode::kProtocolError,
                "peer sent a malformed " + std::string(to_string(type)) + ": " + r.error());
  }
  return out;
}

}  // namespace shmarray::bridge
