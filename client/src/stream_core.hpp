#pragma once
// The data plane of streams (docs/streams.md for the protocol and its memory-ordering contract):
// PublisherCore owns the read-write mapping of a stream and read-only mappings of its
// subscribers' state pages; SubscriberCore owns a read-only mapping of the stream and the
// read-write mapping of its own state page. Loans and Samples hold shared_ptrs to them.
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string_view>
#include <vector>

#include "broker_channel.hpp"
#include "publish_clock.hpp"
#include "slot_order.hpp"
#include "shmarray/error.hpp"
#include "shmarray/mapping.hpp"
#include "shmarray/stream.hpp"
#include "shmarray/stream/stream_layout.hpp"
#include "shmarray/wire/stream_messages.hpp"

namespace shmarray::detail {

// The views into a mapped stream segment (computed from the geometry, never from its contents).
struct StreamView {
  stream::StreamGeometry geometry;
  stream::StreamControl* control = nullptr;
  stream::TableEntry* table = nullptr;
  stream::SlotDescriptor* descriptors = nullptr;
  std::byte* slots = nullptr;

  [[nodiscard]] std::uint32_t slot_count() const noexcept { return geometry.spec.slots; }
  [[nodiscard]] std::byte* slot(std::uint64_t i) const noexcept {
    return slots + i * geometry.slot_stride;
  }
};

// Maps `fd` (checked with fstat against the geometry of `info`) and points a StreamView into it.
[[nodiscard]] Result<StreamView> map_stream(int fd, const ArrayInfo& info, bool writable,
                                            Mapping& mapping);
// Maps a subscriber's state page (checked: size and seals against resizing).
[[nodiscard]] Result<Mapping> map_state(int fd, bool writable);

// Shape, dtype and order of a message -> its MessageInfo; kInvalidArgument when it does not fit
// `slot_bytes`.
[[nodiscard]] Result<MessageInfo> message_layout(std::string_view dtype,
                                                 std::span<const std::uint64_t> shape,
                                                 Order order, std::uint64_t slot_bytes,
                                                 std::string_view stream_name);

class PublisherCore : public std::enable_shared_from_this<PublisherCore> {
 public:
  [[nodiscard]] static Result<std::shared_ptr<PublisherCore>> attach(
      std::shared_ptr<BrokerChannel> channel, ArrayInfo info, UniqueFd fd);
  ~PublisherCore();
  PublisherCore(const PublisherCore&) = delete;
  PublisherCore& operator=(const PublisherCore&) = delete;

  [[nodiscard]] Result<Loan> loan(std::string_view dtype, std::span<const std::uint64_t> shape,
                                  std::chrono::nanoseconds timeout, Order order);
  [[nodiscard]] Result<std::uint64_t> publish(Loan& loan);
  void abandon(Loan& loan) noexcept;
  [[nodiscard]] std::uint64_t last_seq() const noexcept;
  [[nodiscard]] const ArrayInfo& info() const noexcept { return info_; }

 private:
  struct Member {
    wire::StreamMember id;
    Mapping mapping;
    const stream::SubscriberState* state = nullptr;
    std::uint32_t broker_pid = 0;  // the broker that listed it
    UniqueFd pidfd;                // its process (readable once it has exited)
    dev_t dev = 0;                 // its page (a subscriber re-admitted by a restarted broker
    ino_t ino = 0;                 // under another index is the same page)
    [[nodiscard]] bool alive() const noexcept;
  };
  PublisherCore() = default;
  // Asks the broker for the member list when StreamControl::members moved (one load otherwise).
  void refresh_members();
  // Drops members whose process has exited (their connection may have closed unseen: a broker
  // restart in between).
  void drop_dead_members();
  // kBlock: the member that keeps slot `slot` (holding message `old`) from reuse, or nullptr.
  [[nodiscard]] const Member* blocker(std::uint64_t slot, std::uint64_t old) const;
  [[nodiscard]] Result<void> wait_for_room(std::uint64_t slot, std::uint64_t old,
                                           std::chrono::nanoseconds timeout);
  // kBlock: the newest slot when nobody needs its message any more, else the oldest (after
  // waiting for it), not yet invalidated.
  [[nodiscard]] Result<std::uint64_t> block_slot(std::chrono::nanoseconds timeout);
  // kDropOldest: a slot nobody holds and outside the history, invalidated for writing.
  [[nodiscard]] Result<std::uint64_t> pick_slot();
  [[nodiscard]] bool held_by_anyone(std::uint64_t slot) const;
  // Every known subscriber's cursor is past message `seq` (its own word: a hint, not a promise).
  [[nodiscard]] bool all_past(std::uint64_t seq) const;
  // Message `seq` is among the last `history` ones, which late subscribers may still take.
  [[nodiscard]] bool in_history(std::uint64_t seq) const noexcept {
    return seq != 0 && seq + view_.geometry.spec.history > next_seq_ - 1;
  }

  std::shared_ptr<BrokerChannel> channel_;
  ArrayInfo info_;
  Mapping mapping_;
  StreamView view_;
  std::uint64_t next_seq_ = 1;
  bool loan_open_ = false;
  std::vector<std::uint64_t> slot_seq_;  // the message each slot holds (0: none)
  SlotOrder order_;                      // the slots by the age of their messages
  std::shared_ptr<const MessageInfo> last_layout_;  // of the last loan (see loan())
  std::string last_dtype_;                           // as the caller spelled it
  std::vector<Member> members_;
  std::uint32_t members_seen_ = 0;
  bool members_known_ = false;
  std::chrono::steady_clock::time_point retry_members_at_{};
  PublishClock clock_;  // the messages' published_unix_ns
  // StreamControl::epoch when we attached: another value at destruction means a restarted
  // broker, which must hear of the detach by a round trip (see ~PublisherCore).
  std::uint32_t epoch_ = 0;
};

class SubscriberCore : public std::enable_shared_from_this<SubscriberCore> {
 public:
  [[nodiscard]] static Result<std::shared_ptr<SubscriberCore>> attach(
      std::shared_ptr<BrokerChannel> channel, wire::SubscribeReply reply, UniqueFd stream_fd,
      const SubscribeOptions& options);
  ~SubscriberCore();
  SubscriberCore(const SubscriberCore&) = delete;
  SubscriberCore& operator=(const SubscriberCore&) = delete;

  [[nodiscard]] Result<Sample> take(std::chrono::nanoseconds timeout);
  // A Sample's release (any thread): frees its held index and takes back its reference `self`.
  // While the Subscriber handle lives, the reference is kept as this thread's spare (no
  // reference-count decrement) for the next take() on this thread to reuse (no increment):
  // docs/streams.md, "Sample lifetime".
  static void release(std::shared_ptr<SubscriberCore> self, std::uint32_t held_index) noexcept;
  // The Subscriber handle lets go (its destructor or move assignment): from now on no
  // reference is kept as a spare, and the subscription ends (cursor past everything, detach) at
  // once if no Sample is held, else when the last one is released.
  void close() noexcept;
  [[nodiscard]] std::uint64_t missed() const noexcept { return missed_; }
  [[nodiscard]] std::uint64_t position() const noexcept { return cursor_; }
  [[nodiscard]] std::uint32_t held() const noexcept;
  [[nodiscard]] const ArrayInfo& info() const noexcept { return info_; }
  [[nodiscard]] std::span<const std::byte> mapping() const noexcept {
    return stream_mapping_.bytes();
  }

 private:
  SubscriberCore() = default;
  [[nodiscard]] stream::SubscriberState& state() const noexcept {
    return *reinterpret_cast<stream::SubscriberState*>(state_mapping_.data());
  }
  enum class Wait { kReady, kTimedOut, kBrokerRestarted };
  // Waits until head >= seq; kTimedOut at the deadline; kBrokerRestarted when the stream's epoch
  // moved (checked once per sleep slice) and re-admission is due.
  [[nodiscard]] Wait wait_for(std::uint64_t seq, std::chrono::steady_clock::time_point deadline);
  // The stream's epoch differs from the one this subscriber was admitted under (one relaxed load
  // of a line that changes only when membership does) and no retry is pending.
  [[nodiscard]] bool readmit_due() const noexcept {
    return view_.control->epoch.load(std::memory_order_relaxed) != epoch_ &&
           std::chrono::steady_clock::now() >= readmit_retry_at_;
  }
  // A restarted broker wrote a new epoch: hands the state page back to it (docs/streams.md,
  // "Broker killed and restarted"). A broker that cannot be reached is asked again at a later
  // take(); a refusal is returned once (this subscriber then goes on ungated).
  [[nodiscard]] Result<void> readmit();
  void skip(std::uint64_t count) noexcept;  // counts `count` messages as missed, moves past them
  void advance() noexcept;                  // past the message at cursor_ (taken or skipped)
  void wake_publisher() const noexcept;
  // Frees held index `held_index`; false once the handle closed (see release()).
  [[nodiscard]] bool release_index(std::uint32_t held_index) noexcept;
  // Holding close_mutex_ after close(): ends the subscription when no index is held any more.
  void finish_if_idle() noexcept;
  void finish() noexcept;  // cursor past every message, detach (once)
  [[nodiscard]] Error too_many_held() const;  // take() beyond max_held: which samples are held

  std::shared_ptr<BrokerChannel> channel_;  // keeps the connection (and the subscription) open
  ArrayInfo info_;
  Mapping stream_mapping_;
  Mapping state_mapping_;
  UniqueFd state_fd_;         // the page's descriptor, to hand back to a restarted broker
  StreamView view_;
  std::uint64_t cursor_ = 1;  // private copy: never read back from shared memory
  std::uint32_t epoch_ = 0;   // StreamControl::epoch of the broker that admitted us
  std::chrono::steady_clock::time_point readmit_retry_at_{};
  std::uint64_t missed_ = 0;
  std::uint32_t max_held_ = 0;
  // The last message's validated layout and the descriptor words it came from: a message with
  // the same words reuses it (no parsing, no allocation per take).
  std::shared_ptr<const MessageInfo> last_layout_;
  // The layout each held index's Sample points to (a raw pointer: its count is this entry).
  std::array<std::shared_ptr<const MessageInfo>, kMaxHeldPerSubscriber> held_layout_;
  std::array<char, stream::kMaxDtypeBytes> last_dtype_{};
  std::uint32_t last_ndim_ = 0;
  std::uint32_t last_order_ = 0;
  std::array<std::uint64_t, kMaxNdim> last_shape_{};
  std::uint32_t index_ = 0;
  std::uint32_t generation_ = 0;
  std::chrono::nanoseconds spin_{};
  bool drop_oldest_ = false;     // the stream's overflow mode (kBlock otherwise)
  // This process joined process barriers: release() pairs with the publisher's barrier, no
  // seq_cst store (docs/streams.md, "Sleeping without lost wake-ups").
  bool barriers_ = false;
  // Set by close(); read by every release (Dekker with the held entries, as room_waiting).
  std::atomic<bool> closed_{false};
  std::mutex close_mutex_;  // close() and releases after it: who ends the subscription
  bool finished_ = false;   // under close_mutex_ (or in the destructor)
};

[[nodiscard]] Result<std::shared_ptr<PublisherCore>> create_stream(
    std::shared_ptr<BrokerChannel> channel, std::string_view name, const StreamSpec& spec);
[[nodiscard]] Result<std::shared_ptr<PublisherCore>> open_publisher(
    std::shared_ptr<BrokerChannel> channel, std::string_view name);
[[nodiscard]] Result<std::shared_ptr<SubscriberCore>> subscribe(
    std::shared_ptr<BrokerChannel> channel, std::string_view name,
    const SubscribeOptions& options);

}  // namespace shmarray::detail
