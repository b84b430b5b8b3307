// Attaching to a stream: the broker requests of create_stream / open_publisher / subscribe, and the
// checks made before anything the broker handed over is mapped.
#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <thread>
#include <utility>

#include "shmarray/segment_layout.hpp"
#include "stream_core.hpp"

namespace shmarray::detail {
namespace {

Result<std::uint64_t> size_of(int fd, const std::string& what) {
  struct stat st{};
  if (::fstat(fd, &st) != 0) return std::unexpected(sys_error("fstat of " + what, errno));
  return static_cast<std::uint64_t>(st.st_size);
}

Result<ArrayInfo> expect_stream(ArrayInfo info, std::string_view name) {
  if (info.kind != ObjectKind::kStream) {
    return fail(ErrorCode::kProtocolError,
                "the broker answered for '" + std::string(name) + "' with an array");
  }
  return info;
}

}  // namespace

Result<StreamView> map_stream(int fd, const ArrayInfo& info, bool writable, Mapping& mapping) {
  auto geometry = stream::stream_geometry(stream::spec_of(info));
  if (!geometry || geometry->segment_bytes != info.segment_bytes) {
    return fail(ErrorCode::kProtocolError,
                "stream '" + info.name + "': the broker's description is inconsistent");
  }
  // Checked before mapping: a segment shorter than its geometry would fault on first touch.
  auto size = size_of(fd, "stream '" + info.name + "'");
  if (!size) return std::unexpected(size.error());
  if (*size < geometry->segment_bytes) {
    return fail(ErrorCode::kDataLoss,
                "stream '" + info.name + "': its segment is " + std::to_string(*size) +
                    " bytes, not " + std::to_string(geometry->segment_bytes) +
                    " (a writer truncated it): remove the stream and create it again");
  }
  // Page tables are filled now, not one fault per page on the first lap of the ring.
  auto mapped = Mapping::map(fd, geometry->segment_bytes,
                             writable ? Mapping::Protection::kReadWrite : Mapping::Protection::kRead,
                             writable ? Mapping::Populate::kWrite : Mapping::Populate::kRead);
  if (!mapped) return std::unexpected(mapped.error());
  mapping = std::move(*mapped);
  StreamView v;
  v.geometry = *geometry;
  std::byte* base = mapping.data();
  v.control = reinterpret_cast<stream::StreamControl*>(base + stream::kControlOffset);
  v.table = reinterpret_cast<stream::TableEntry*>(base + geometry->table_offset);
  v.descriptors = reinterpret_cast<stream::SlotDescriptor*>(base + geometry->descriptors_offset);
  v.slots = base + geometry->slots_offset;
  return v;
}

Result<Mapping> map_state(int fd, bool writable) {
  auto size = size_of(fd, "a subscriber's state page");
  if (!size) return std::unexpected(size.error());
  const int seals = ::fcntl(fd, F_GET_SEALS);
  // Without these seals its owner could shrink it under our mapping (SIGBUS on the next read).
  if (*size < stream::kStateBytes || seals < 0 ||
      (seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW)) {
    return fail(ErrorCode::kProtocolError,
                "the broker sent a subscriber state page that is not a sealed page");
  }
  return Mapping::map(fd, stream::kStateBytes,
                      writable ? Mapping::Protection::kReadWrite : Mapping::Protection::kRead,
                      writable ? Mapping::Populate::kWrite : Mapping::Populate::kRead);
}

Result<MessageInfo> message_layout(std::string_view dtype, std::span<const std::uint64_t> shape,
                                   Order order, std::uint64_t slot_bytes,
                                   std::string_view stream_name) {
  ArraySpec spec;
  spec.dtype = std::string(dtype);
  spec.shape.assign(shape.begin(), shape.end());
  spec.order = order;
  auto layout = compute_layout(spec, slot_bytes);
  if (!layout) {
    if (layout.error().code() == ErrorCode::kResourceExhausted) {
      return fail(ErrorCode::kInvalidArgument,
                  "a message of this shape does not fit a slot of stream '" +
                      std::string(stream_name) + "' (" + std::to_string(slot_bytes) +
                      " bytes, StreamSpec::slot_bytes)");
    }
    return std::unexpected(layout.error());
  }
  MessageInfo info;
  info.dtype = layout->dtype.str();
  info.shape = std::move(layout->shape);
  info.strides = std::move(layout->strides);
  info.order = order;
  info.itemsize = layout->dtype.itemsize();
  info.nbytes = layout->nbytes;
  if (info.dtype.size() >= stream::kMaxDtypeBytes) {
    return fail(ErrorCode::kInvalidArgument, "dtype '" + info.dtype + "' is too long for a stream");
  }
  return info;
}

Result<std::shared_ptr<PublisherCore>> create_stream(std::shared_ptr<BrokerChannel> channel,
                                                     std::string_view name,
                                                     const StreamSpec& spec) {
  if (auto ok = validate_name(name); !ok) return std::unexpected(ok.error());
  if (auto ok = validate_stream_spec(spec); !ok) return std::unexpected(ok.error());
  auto reply = request<wire::StreamReply>(*channel,
                                          wire::CreateStreamRequest{std::string(name), spec});
  if (!reply) return std::unexpected(reply.error());
  auto info = expect_stream(std::move(reply->first.info), name);
  if (!info) return std::unexpected(info.error());
  return PublisherCore::attach(std::move(channel), std::move(*info), std::move(reply->second));
}

Result<std::shared_ptr<PublisherCore>> open_publisher(std::shared_ptr<BrokerChannel> channel,
                                                      std::string_view name) {
  if (auto ok = validate_name(name); !ok) return std::unexpected(ok.error());
  auto reply =
      request<wire::StreamReply>(*channel, wire::OpenPublisherRequest{std::string(name)});
  if (!reply) return std::unexpected(reply.error());
  auto info = expect_stream(std::move(reply->first.info), name);
  if (!info) return std::unexpected(info.error());
  return PublisherCore::attach(std::move(channel), std::move(*info), std::move(reply->second));
}

Result<std::shared_ptr<SubscriberCore>> subscribe(std::shared_ptr<BrokerChannel> channel,
                                                  std::string_view name,
                                                  const SubscribeOptions& options) {
  if (auto ok = validate_name(name); !ok) return std::unexpected(ok.error());
  const wire::SubscribeRequest req{std::string(name), options.from_history, options.max_held};
  auto reply = request<wire::SubscribeReply>(*channel, req);
  if (!reply && reply.error().code() == ErrorCode::kNotFound && options.wait.count() > 0) {
    // Park an open of the name at the broker (no polling): it answers when something of that
    // name is created (for a stream: "is a stream") or when the wait runs out.
    const auto wait_ms = static_cast<std::uint32_t>(
        std::min<std::int64_t>(options.wait.count(), UINT32_MAX));
    auto parked = request<wire::OpenReply>(
        *channel, wire::OpenRequest{std::string(name), Access::kReadOnly, wait_ms}, options.wait);
    if (!parked && parked.error().code() == ErrorCode::kDeadlineExceeded) {
      return fail(ErrorCode::kDeadlineExceeded,
                  "stream '" + std::string(name) + "' was not created within " +
                      std::to_string(options.wait.count()) + " ms");
    }
    if (parked) {
      return fail(ErrorCode::kFailedPrecondition,
                  "'" + std::string(name) + "' is an array, not a stream: open it");
    }
    reply = request<wire::SubscribeReply>(*channel, req);
  }
  if (!reply) return std::unexpected(reply.error());
  auto info = expect_stream(reply->first.info, name);
  if (!info) return std::unexpected(info.error());
  return SubscriberCore::attach(std::move(channel), std::move(reply->first),
                                std::move(reply->second), options);
}

const MessageInfo& empty_message_info() noexcept {
  static const MessageInfo empty;
  return empty;
}

// --- the public classes' thin methods ---------------------------------------------------------

}  // namespace shmarray::detail

namespace shmarray {

Publisher::Publisher(std::shared_ptr<detail::PublisherCore> core) : core_(std::move(core)) {}
Publisher::Publisher(Publisher&&) noexcept = default;
Publisher& Publisher::operator=(Publisher&&) noexcept = default;
Publisher::~Publisher() = default;

Result<Loan> Publisher::loan(std::string_view dtype, std::span<const std::uint64_t> shape,
                             std::chrono::nanoseconds timeout, Order order) {
  return core_->loan(dtype, shape, timeout, order);
}
Result<std::uint64_t> Publisher::publish(Loan&& loan) {
  if (loan.core_ != core_) {
    return fail(ErrorCode::kInvalidArgument,
                "publish: the loan is not an open loan of this publisher (published already, "
                "abandoned, or another publisher's)");
  }
  return core_->publish(loan);
}
std::uint64_t Publisher::last_seq() const noexcept { return core_->last_seq(); }
const ArrayInfo& Publisher::info() const noexcept { return core_->info(); }

Subscriber::Subscriber(std::shared_ptr<detail::SubscriberCore> core) : core_(std::move(core)) {}
Subscriber::Subscriber(Subscriber&&) noexcept = default;
Subscriber& Subscriber::operator=(Subscriber&& other) noexcept {
  if (this != &other) {
    if (core_) core_->close();
    core_ = std::move(other.core_);
  }
  return *this;
}
Subscriber::~Subscriber() {
  if (core_) core_->close();
}
Result<Sample> Subscriber::take(std::chrono::nanoseconds timeout) { return core_->take(timeout); }
std::uint64_t Subscriber::missed() const noexcept { return core_->missed(); }
std::uint64_t Subscriber::position() const noexcept { return core_->position(); }
std::uint32_t Subscriber::held() const noexcept { return core_->held(); }
const ArrayInfo& Subscriber::info() const noexcept { return core_->info(); }
std::span<const std::byte> Subscriber::mapping() const noexcept { return core_->mapping(); }

Loan::Loan(Loan&& other) noexcept
    : core_(std::move(other.core_)), slot_(other.slot_), seq_(other.seq_),
      info_(std::move(other.info_)), bytes_(other.bytes_) {}
Loan& Loan::operator=(Loan&& other) noexcept {
  if (this != &other) {
    if (auto core = std::move(core_)) core->abandon(*this);
    core_ = std::move(other.core_);
    slot_ = other.slot_;
    seq_ = other.seq_;
    info_ = std::move(other.info_);
    bytes_ = other.bytes_;
  }
  return *this;
}
Loan::~Loan() {
  if (auto core = std::move(core_)) core->abandon(*this);
}
Result<void> Loan::check_type(std::string_view typestr) const {
  if (typestr != info().dtype) {
    return fail(ErrorCode::kInvalidArgument,
                "the loan holds " + info().dtype + " elements, not " + std::string(typestr));
  }
  return {};
}

Sample::Sample(Sample&& other) noexcept
    : core_(std::move(other.core_)), held_index_(other.held_index_), seq_(other.seq_),
      published_unix_ns_(other.published_unix_ns_), info_(std::exchange(other.info_, nullptr)),
      bytes_(std::exchange(other.bytes_, {})) {}
Sample& Sample::operator=(Sample&& other) noexcept {
  if (this != &other) {
    release();
    core_ = std::move(other.core_);
    held_index_ = other.held_index_;
    seq_ = other.seq_;
    published_unix_ns_ = other.published_unix_ns_;
    info_ = std::exchange(other.info_, nullptr);
    bytes_ = std::exchange(other.bytes_, {});
  }
  return *this;
}
Sample::~Sample() { release(); }
void Sample::release() noexcept {
  // info_ points into the core's table, which may reuse the entry once the slot is released.
  info_ = nullptr;
  bytes_ = {};
  if (core_) detail::SubscriberCore::release(std::move(core_), held_index_);
}
Result<void> Sample::check_type(std::string_view typestr) const {
  if (typestr != info().dtype) {
    return fail(ErrorCode::kInvalidArgument,
                "the sample holds " + info().dtype + " elements, not " + std::string(typestr));
  }
  return {};
}

}  // namespace shmarray
