#pragma once
// Streams: a named ring of zero-copy messages, one publisher and many subscribers
// (docs/streams.md). Made with Client::create_stream, joined with Client::subscribe, taken over
// with Client::open_publisher.
//
// Data path: a publisher loan()s a slot of the ring, writes the message in place and publish()es
// it; a subscriber take()s it and reads it in place until the Sample is destroyed. Neither makes
// a broker round trip, a page fault, an mmap or (unless a subscriber sleeps) a system call per
// message. Only a change of membership (a subscriber joins or leaves) costs the publisher one
// round trip to the broker, at its next loan.
//
// Ownership: Publisher, Subscriber, Loan and Sample are move-only. Loans and Samples keep the
// mappings they point into alive, so they may outlive their Publisher/Subscriber and Client.
// Thread safety: one Publisher (and its Loans) from one thread at a time; one Subscriber's take()
// from one thread at a time; Samples may be destroyed on any thread.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "shmarray/dtype.hpp"
#include "shmarray/error.hpp"
#include "shmarray/stream_types.hpp"
#include "shmarray/types.hpp"

namespace shmarray {

namespace detail {
class PublisherCore;
class SubscriberCore;
}  // namespace detail

struct MessageInfo;
namespace detail {
// What info() of a moved-from Loan or Sample returns.
[[nodiscard]] const MessageInfo& empty_message_info() noexcept;
}  // namespace detail

struct SubscribeOptions {
  // > 0: if the stream does not exist yet, wait up to this long for it to be created (as
  // OpenOptions::wait). kDeadlineExceeded when it does not appear in time.
  std::chrono::milliseconds wait{0};
  // Start at the oldest retained message (StreamSpec::history), else at the next one published.
  bool from_history = false;
  // Samples this subscriber may hold at once (1..kMaxHeldPerSubscriber). The broker refuses a
  // subscription the ring cannot serve (kResourceExhausted, saying how many slots it needs).
  std::uint32_t max_held = 2;
  // take() busy-polls this long before sleeping on a futex (0: sleep at once).
  std::chrono::nanoseconds spin = std::chrono::microseconds(50);
};

// What one message is: its element type, shape and layout (like ArrayInfo's fields).
struct MessageInfo {
  std::string dtype;  // canonical typestr
  std::vector<std::uint64_t> shape;
  std::vector<std::int64_t> strides;  // in bytes
  Order order = Order::kC;
  std::uint64_t itemsize = 0;
  std::uint64_t nbytes = 0;
};

// A writable slot, lent by Publisher::loan. Destroyed without being published, it is abandoned:
// no subscriber ever sees it and its sequence number is reused by the next loan.
class Loan {
 public:
  Loan(Loan&&) noexcept;
  Loan& operator=(Loan&&) noexcept;
  Loan(const Loan&) = delete;
  Loan& operator=(const Loan&) = delete;
  ~Loan();

  [[nodiscard]] const MessageInfo& info() const noexcept {
    return info_ ? *info_ : detail::empty_message_info();
  }
  [[nodiscard]] std::span<std::byte> bytes() const noexcept { return bytes_; }
  // Typed view; kInvalidArgument if T does not match the dtype.
  template <class T>
  [[nodiscard]] Result<std::span<T>> as() const;
  // The sequence number this message gets when published.
  [[nodiscard]] std::uint64_t seq() const noexcept { return seq_; }
  // False once published or abandoned (moved-from included).
  [[nodiscard]] bool valid() const noexcept { return core_ != nullptr; }

 private:
  friend class Publisher;
  friend class detail::PublisherCore;
  Loan() = default;
  [[nodiscard]] Result<void> check_type(std::string_view typestr) const;
  std::shared_ptr<detail::PublisherCore> core_;
  std::uint64_t slot_ = 0;
  std::uint64_t seq_ = 0;
  // Shared with the publisher's cache: messages of one shape allocate nothing per loan.
  std::shared_ptr<const MessageInfo> info_;
  std::span<std::byte> bytes_;
};

// A message taken by Subscriber::take, read in place. Its slot is held (not reused by the
// publisher) until the Sample is destroyed.
class Sample {
 public:
  Sample(Sample&&) noexcept;
  Sample& operator=(Sample&&) noexcept;
  Sample(const Sample&) = delete;
  Sample& operator=(const Sample&) = delete;
  ~Sample();

  [[nodiscard]] const MessageInfo& info() const noexcept {
    return info_ ? *info_ : detail::empty_message_info();
  }
  [[nodiscard]] std::span<const std::byte> bytes() const noexcept { return bytes_; }
  template <class T>
  [[nodiscard]] Result<std::span<const T>> as() const;
  [[nodiscard]] std::uint64_t seq() const noexcept { return seq_; }
  [[nodiscard]] std::int64_t published_unix_ns() const noexcept { return published_unix_ns_; }
  // Releases the slot now (as destruction does); bytes() and info() are empty afterwards.
  void release() noexcept;

 private:
  friend class detail::SubscriberCore;
  Sample() = default;
  [[nodiscard]] Result<void> check_type(std::string_view typestr) const;
  std::shared_ptr<detail::SubscriberCore> core_;
  std::uint32_t held_index_ = 0;
  std::uint64_t seq_ = 0;
  std::int64_t published_unix_ns_ = 0;
  // Kept alive by the subscriber's core (held through core_) until release(): messages of one
  // shape allocate and count nothing per take.
  const MessageInfo* info_ = nullptr;
  std::span<const std::byte> bytes_;
};

class Publisher {
 public:
  Publisher(Publisher&&) noexcept;
  Publisher& operator=(Publisher&&) noexcept;
  Publisher(const Publisher&) = delete;
  Publisher& operator=(const Publisher&) = delete;
  ~Publisher();

  // A slot for one message of `dtype` and `shape` (its nbytes must fit StreamSpec::slot_bytes:
  // kInvalidArgument otherwise). kBlock: waits up to `timeout` for the slowest subscriber to move
  // on, then kDeadlineExceeded naming that subscriber's pid and position. kDropOldest never
  // waits. kFailedPrecondition while another Loan of this publisher is open.
  [[nodiscard]] Result<Loan> loan(std::string_view dtype, std::span<const std::uint64_t> shape,
                                  std::chrono::nanoseconds timeout, Order order = Order::kC);
  // Publishes the loan; returns its sequence number (1, 2, 3, ... per stream). Wakes subscribers
  // that sleep. kInvalidArgument for a loan of another publisher or one already used.
  [[nodiscard]] Result<std::uint64_t> publish(Loan&& loan);
  // Sequence number of the last message published to the stream (0: none yet).
  [[nodiscard]] std::uint64_t last_seq() const noexcept;
  // The stream as the broker described it when this publisher attached.
  [[nodiscard]] const ArrayInfo& info() const noexcept;

 private:
  friend class Client;
  explicit Publisher(std::shared_ptr<detail::PublisherCore> core);
  std::shared_ptr<detail::PublisherCore> core_;
};

class Subscriber {
 public:
  Subscriber(Subscriber&&) noexcept;
  Subscriber& operator=(Subscriber&&) noexcept;
  Subscriber(const Subscriber&) = delete;
  Subscriber& operator=(const Subscriber&) = delete;
  ~Subscriber();

  // The next message, in sequence order. Spins for SubscribeOptions::spin, then sleeps on a futex
  // (a publish is never missed). kDeadlineExceeded after `timeout` (0: only what is there now);
  // kResourceExhausted if max_held Samples are held (drop one first); kDataLoss if the message's
  // descriptor in shared memory is invalid (that message is skipped). After a broker restart the
  // first take() (or the wait inside one) hands this subscriber's state page back to the new
  // broker, one round trip; if that broker refuses it (no room left in the ring, say) that one
  // take fails with the broker's reason and the subscriber goes on without the publisher waiting
  // for it (docs/streams.md, "Broker killed and restarted").
  [[nodiscard]] Result<Sample> take(std::chrono::nanoseconds timeout);
  // Messages dropped (kDropOldest) before this subscriber could take them.
  [[nodiscard]] std::uint64_t missed() const noexcept;
  // The sequence number the next take() returns at the earliest.
  [[nodiscard]] std::uint64_t position() const noexcept;
  // Samples held now.
  [[nodiscard]] std::uint32_t held() const noexcept;
  [[nodiscard]] const ArrayInfo& info() const noexcept;
  // The whole stream segment as this subscriber maps it (header page, table, descriptors and
  // slots; read-only), valid while this Subscriber or one of its Samples lives. For a process
  // that must survive a publisher truncating the segment (docs/streams.md, "Hostile
  // publisher"): its SIGBUS handler needs the range, as shmarray-bridge's does.
  [[nodiscard]] std::span<const std::byte> mapping() const noexcept;

 private:
  friend class Client;
  explicit Subscriber(std::shared_ptr<detail::SubscriberCore> core);
  std::shared_ptr<detail::SubscriberCore> core_;
};

template <class T>
Result<std::span<T>> Loan::as() const {
  if (auto ok = check_type(dtype_of<T>::value); !ok) return std::unexpected(ok.error());
  return std::span<T>(reinterpret_cast<T*>(bytes_.data()), bytes_.size() / sizeof(T));
}

template <class T>
Result<std::span<const T>> Sample::as() const {
  if (auto ok = check_type(dtype_of<T>::value); !ok) return std::unexpected(ok.error());
  return std::span<const T>(reinterpret_cast<const T*>(bytes_.data()), bytes_.size() / sizeof(T));
}

}  // namespace shmarray
