// The subscriber's half of the stream protocol (docs/streams.md, "Memory ordering"). It reads the
// stream through a read-only mapping and writes only its own state page. Everything read from the
// stream (head, table entries, descriptors) is validated before use: a broken or hostile publisher
// can make a take fail with kDataLoss or count messages as missed, never make it read outside the
// ring or wait past its timeout.
#include <algorithm>
#include <cstring>

#include "shmarray/sync/futex.hpp"
#include "shmarray/sync/process_barrier.hpp"
#include "stream_core.hpp"

namespace shmarray::detail {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kSleepSlice = std::chrono::milliseconds(50);
// A restarted broker that cannot be reached yet is asked again after this long.
constexpr auto kReadmitRetry = std::chrono::milliseconds(200);

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Starts fetching a cache line without waiting for it (a hint: never faults, even out of bounds).
inline void prefetch(const void* p) { __builtin_prefetch(p, 0, 3); }

// The same for a line we are about to write: fetched for ownership, so the stores into it and
// the locked instructions after them do not wait for the other side to give it up. (PREFETCHW;
// a no-op hint on x86 processors without it.)
inline void prefetch_for_write(const void* p) {
#if defined(__x86_64__)
  asm volatile("prefetchw %0" : : "m"(*static_cast<const char*>(p)));
#else
  __builtin_prefetch(p, 1, 3);
#endif
}

}  // namespace

Result<std::shared_ptr<SubscriberCore>> SubscriberCore::attach(
    std::shared_ptr<BrokerChannel> channel, wire::SubscribeReply reply, UniqueFd stream_fd,
    const SubscribeOptions& options) {
  if (!stream_fd) return fail(ErrorCode::kProtocolError, "subscribe reply carried no descriptor");
  std::shared_ptr<SubscriberCore> core(new SubscriberCore());
  core->channel_ = channel;
  core->index_ = reply.index;
  core->generation_ = reply.generation;
  auto view = map_stream(stream_fd.get(), reply.info, false, core->stream_mapping_);
  if (!view) return std::unexpected(view.error());
  core->view_ = *view;
  // Before the page request: if that request reaches the broker that answered the subscribe,
  // this is its epoch (a later broker writes its own only after this one is gone, and would
  // not know the subscriber: the request fails).
  core->epoch_ = core->view_.control->epoch.load(std::memory_order_acquire);
  auto page = request<wire::SubscriberStateReply>(
      *channel, wire::SubscriberStateRequest{reply.info.id, reply.index, reply.generation});
  if (!page) return std::unexpected(page.error());
  auto state = map_state(page->second.get(), true);
  if (!state) return std::unexpected(state.error());
  core->state_mapping_ = std::move(*state);
  core->state_fd_ = std::move(page->second);
  if (std::memcmp(core->state().magic, stream::kStateMagic, sizeof stream::kStateMagic) != 0) {
    return fail(ErrorCode::kProtocolError,
                "stream '" + reply.info.name + "': the broker's subscriber page has another "
                "layout; this client library and shmarrayd are different versions: use matching "
                "ones");
  }
  core->drop_oldest_ = reply.info.stream.overflow == Overflow::kDropOldest;
  core->info_ = std::move(reply.info);
  core->cursor_ = std::max<std::uint64_t>(reply.start_seq, 1);
  core->max_held_ = std::clamp<std::uint32_t>(options.max_held, 1, kMaxHeldPerSubscriber);
  core->spin_ = options.spin;
  core->barriers_ = join_process_barriers();
  return core;
}

SubscriberCore::~SubscriberCore() { finish(); }

void SubscriberCore::finish() noexcept {
  if (finished_) return;
  finished_ = true;
  // Past every message from now on (no Sample is held any more): a publisher that still maps
  // the page stops waiting for it at once. One that learnt of it from a broker that has since
  // restarted hears of the detach from nobody, and this process may live on.
  if (state_mapping_.data() != nullptr) {
    state().cursor.store(UINT64_MAX, std::memory_order_release);
  }
  if (channel_ && !info_.id.empty()) {
    channel_->post(wire::DetachRequest::kType,
                   wire::encode_body(wire::DetachRequest{info_.id, index_, generation_}));
  }
  // The core may live on as some thread's spare reference (below) for a while: the connection
  // is not kept open for it (take() and re-admission, its only users, are over).
  channel_.reset();
}

namespace {
// This thread's spare reference to a subscriber core (see SubscriberCore::release): a Sample
// released here leaves its reference in it, and the next take() of that subscriber on this
// thread takes it back, so neither counts. One per thread, for whichever core came last.
thread_local std::shared_ptr<SubscriberCore> t_spare;
}  // namespace

void SubscriberCore::close() noexcept {
  // Dekker with release_index(): we store closed_ and then look at the held entries; a release
  // stores its entry and then looks at closed_. Either we see the entry free, or that release
  // sees closed_ (and keeps no spare; it ends the subscription if it is the last).
  closed_.store(true, std::memory_order_seq_cst);
  if (barriers_) (void)process_barrier();
  {
    std::lock_guard lock(close_mutex_);
    finish_if_idle();
  }
  if (t_spare.get() == this) t_spare.reset();
}

void SubscriberCore::finish_if_idle() noexcept {
  for (std::uint32_t i = 0; i < max_held_; ++i) {
    if (state().held[i].seq.load(std::memory_order_seq_cst) != 0) return;  // its release ends it
  }
  finish();
}

std::uint32_t SubscriberCore::held() const noexcept {
  std::uint32_t n = 0;
  for (std::uint32_t i = 0; i < max_held_; ++i) {
    if (state().held[i].seq.load(std::memory_order_relaxed) != 0) ++n;
  }
  return n;
}

void SubscriberCore::wake_publisher() const noexcept {
  // After our store (cursor or a released hold, seq_cst): the publisher sets room_waiting and
  // then looks again, so one of us sees the other.
  if (view_.control->room_waiting.load(std::memory_order_seq_cst) != 0) {
    (void)futex_wake(view_.control->room_word);
  }
}

void SubscriberCore::advance() noexcept {
  ++cursor_;
  state().cursor.store(cursor_, std::memory_order_seq_cst);
  wake_publisher();
}

void SubscriberCore::skip(std::uint64_t count) noexcept {
  missed_ += count;
  state().missed.store(missed_, std::memory_order_relaxed);
  cursor_ += count - 1;
  advance();
}

void SubscriberCore::release(std::shared_ptr<SubscriberCore> self,
                             std::uint32_t held_index) noexcept {
  if (self->release_index(held_index)) {
    // A move: no count. A spare of another core (or a second one of ours) is dropped instead,
    // so a thread keeps at most one core alive this way, until its next release or its exit.
    t_spare = std::move(self);
    return;
  }
  // The handle is gone: if this was the last held index, the subscription ends now. (Not in
  // the destructor: another thread's spare may keep the core alive for a while.)
  std::lock_guard lock(self->close_mutex_);
  self->finish_if_idle();
}

bool SubscriberCore::release_index(std::uint32_t held_index) noexcept {
  if (held_index >= max_held_) return !closed_.load(std::memory_order_seq_cst);
  auto& held = state().held[held_index].seq;
  if (!barriers_) {
    held.store(0, std::memory_order_seq_cst);
    if (!drop_oldest_) wake_publisher();
    return !closed_.load(std::memory_order_seq_cst);
  }
  // Dekker with the fence on the other side only: the publisher sets room_waiting and close()
  // sets closed_, each then issues a process barrier (docs/streams.md) and looks at our held
  // entries. Our store and loads need no fence here: either our loads come after its barrier
  // and see the flag, or our store came before it and its look sees the index free. kDropOldest:
  // the publisher never waits for room, nobody to wake; release orders our reads of the
  // payload before the publisher's reuse of the slot.
  held.store(0, std::memory_order_release);
  compiler_barrier();
  if (!drop_oldest_ && view_.control->room_waiting.load(std::memory_order_relaxed) != 0) {
    (void)futex_wake(view_.control->room_word);
  }
  return !closed_.load(std::memory_order_relaxed);
}

Result<void> SubscriberCore::readmit() {
  const std::uint32_t epoch = view_.control->epoch.load(std::memory_order_acquire);
  if (epoch == epoch_ || Clock::now() < readmit_retry_at_) return {};
  const wire::ReadmitSubscriberRequest req{info_.id, index_, generation_, cursor_, max_held_};
  auto reply = request_passing<wire::ReadmitSubscriberReply>(*channel_, req, state_fd_.get());
  if (!reply) {
    const ErrorCode code = reply.error().code();
    if (code == ErrorCode::kCancelled) return std::unexpected(reply.error());
    if (code == ErrorCode::kUnavailable || code == ErrorCode::kDeadlineExceeded) {
      readmit_retry_at_ = Clock::now() + kReadmitRetry;  // the broker is away: ask again later
      return {};
    }
    epoch_ = epoch;  // refused by this broker: not asked again
    return fail(code, "stream '" + info_.name + "': the restarted broker did not take this "
                      "subscriber back (" + reply.error().message() + "); it still takes "
                      "messages, but the publisher may no longer wait for it (messages it has "
                      "not taken may be overwritten: missed, or kDataLoss): subscribe again");
  }
  index_ = reply->index;
  generation_ = reply->generation;
  epoch_ = epoch;
  return {};
}

SubscriberCore::Wait SubscriberCore::wait_for(std::uint64_t seq, Clock::time_point deadline) {
  auto& control = *view_.control;
  if (control.head.load(std::memory_order_acquire) >= seq) return Wait::kReady;
  const auto spin_until = std::min(deadline, Clock::now() + spin_);
  while (Clock::now() < spin_until) {
    for (int i = 0; i < 64; ++i) {
      if (control.head.load(std::memory_order_acquire) >= seq) return Wait::kReady;
      cpu_relax();
    }
  }
  auto& sleeping = state().sleeping;
  for (;;) {
    // Say we sleep, then read the futex word, then head (seq_cst): the publisher stores head,
    // then head_word, then reads `sleeping`. Either we see the new head, or the word changed
    // under us (the futex returns at once), or the publisher sees `sleeping` and wakes us.
    sleeping.store(1, std::memory_order_seq_cst);
    const std::uint32_t word = control.head_word.load(std::memory_order_seq_cst);
    if (control.head.load(std::memory_order_seq_cst) >= seq) {
      sleeping.store(0, std::memory_order_relaxed);
      return Wait::kReady;
    }
    if (Clock::now() >= deadline) {
      sleeping.store(0, std::memory_order_relaxed);
      return Wait::kTimedOut;
    }
    // In slices: a publisher that does not know of us yet (it learns of new subscribers at its
    // next loan; after a broker restart, once we are re-admitted) would not wake us.
    (void)futex_wait(control.head_word, word, std::min(deadline, Clock::now() + kSleepSlice));
    sleeping.store(0, std::memory_order_relaxed);
    if (control.head.load(std::memory_order_acquire) >= seq) return Wait::kReady;
    if (readmit_due()) return Wait::kBrokerRestarted;
  }
}

Error SubscriberCore::too_many_held() const {
  std::string held_seqs;
  for (std::uint32_t i = 0; i < max_held_; ++i) {
    const std::uint64_t seq = state().held[i].seq.load(std::memory_order_relaxed);
    if (seq != 0) held_seqs += (held_seqs.empty() ? "" : ", ") + std::to_string(seq);
  }
  return Error(ErrorCode::kResourceExhausted,
               "subscriber of stream '" + info_.name + "' already holds max_held = " +
                   std::to_string(max_held_) + " samples (seq " + held_seqs +
                   "): destroy one of them before taking another, or subscribe with a larger "
                   "max_held");
}

// The hot path, when the message is there (docs/streams.md, "Costs"): no clock read, no system
// call, no atomic read-modify-write (kBlock; kDropOldest: one, its hazard), and the lines it
// reads from the stream are head's (which also names the slot), then the descriptor's and the
// payload's, fetched together.
Result<Sample> SubscriberCore::take(std::chrono::nanoseconds timeout) {
  if (readmit_due()) [[unlikely]] {
    if (auto ok = readmit(); !ok) return std::unexpected(ok.error());
  }
  auto& st = state();
  std::uint32_t free_index = max_held_;
  for (std::uint32_t i = 0; i < max_held_; ++i) {
    if (st.held[i].seq.load(std::memory_order_relaxed) == 0) {
      free_index = i;
      break;
    }
  }
  if (free_index == max_held_) return std::unexpected(too_many_held());
  // The Sample's reference: this thread's spare when the last Sample released here was ours
  // (no count at all), else counted now, before the message arrives: a count is a locked
  // instruction (a full barrier on x86), which would otherwise wait on our hazard store.
  std::shared_ptr<SubscriberCore> self =
      t_spare.get() == this ? std::move(t_spare) : shared_from_this();
  // A take that returns no Sample (timeout, kDataLoss) leaves the reference as the spare again:
  // a polling take(0) counts nothing either.
  struct KeepSpare {
    std::shared_ptr<SubscriberCore>& self;
    ~KeepSpare() {
      if (self && !t_spare) t_spare = std::move(self);
    }
  } keep_spare{self};
  const MessageInfo* layout = last_layout_.get();
  const std::uint32_t n = view_.slot_count();
  auto& control = *view_.control;
  Clock::time_point deadline{};
  bool deadline_set = false;
  bool try_latest = true;
  const auto set_deadline = [&] {
    if (deadline_set) return;
    deadline = timeout >= std::chrono::hours(24 * 365)
                   ? Clock::time_point::max()
                   : Clock::now() + std::chrono::duration_cast<Clock::duration>(timeout);
    deadline_set = true;
  };
  // Passes that moved past messages without waiting. Each one moves the cursor, but the words
  // that send us round again are the publisher's: every kPassesPerClockRead of them the clock is
  // read, so that no values written there can keep a take() past its deadline.
  std::uint32_t passes = 0;
  constexpr std::uint32_t kPassesPerClockRead = 64;
  for (;;) {
    if (++passes % kPassesPerClockRead == 0) {
      set_deadline();
      if (Clock::now() >= deadline) {
        return fail(ErrorCode::kDeadlineExceeded,
                    "stream '" + info_.name + "': no message " + std::to_string(cursor_) +
                        " within the timeout (the ring kept changing under this subscriber)");
      }
    }
    const std::uint64_t c = cursor_;
    std::uint64_t head = control.head.load(std::memory_order_acquire);
    if (head < c) {
      set_deadline();
      const Wait waited = wait_for(c, deadline);
      if (waited == Wait::kBrokerRestarted) {
        if (auto ok = readmit(); !ok) return std::unexpected(ok.error());
        continue;
      }
      if (waited == Wait::kTimedOut) {
        return fail(ErrorCode::kDeadlineExceeded, "stream '" + info_.name + "': no message " +
                                                      std::to_string(c) + " within the timeout");
      }
      head = control.head.load(std::memory_order_acquire);
    }
    if (head >= stream::kMaxSeq) {
      // No publisher gets there (2^62 messages): the word was written by a hostile or broken
      // process. Moving the cursor there would wrap it; the take fails instead, and so will the
      // next ones until the head is a sequence number again.
      return fail(ErrorCode::kDataLoss,
                  "stream '" + info_.name + "': its head word holds " + std::to_string(head) +
                      ", which no publisher reaches (the stream segment was overwritten); "
                      "no message was taken");
    }
    // Our held entry and cursor share a line that the publisher read at its loan: take it back
    // now, while the lines below are on their way.
    prefetch_for_write(&st.held[free_index]);
    if (head >= c && head - c >= n) {  // lapped: everything older than the ring is gone
      skip(head - c - n + 1);
      continue;
    }
    // Where message c is: caught up (head == c), the line just read names its slot; else the
    // table entry. Either may be stale or garbage: the descriptor's seq decides below.
    std::uint64_t slot = n;
    const bool from_latest = try_latest && head == c &&
                             control.latest_seq.load(std::memory_order_acquire) == c;
    if (from_latest) slot = control.latest_slot.load(std::memory_order_acquire);
    if (slot >= n) {
      auto& entry = view_.table[c % n];
      const std::uint64_t s1 = entry.seq.load(std::memory_order_acquire);
      slot = entry.slot.load(std::memory_order_acquire);
      const std::uint64_t s2 = entry.seq.load(std::memory_order_acquire);
      if (s1 != c || s2 != c || slot >= n) {  // reused (kDropOldest) or garbage
        skip(1);
        continue;
      }
    }
    auto& d = view_.descriptors[slot];
    prefetch(reinterpret_cast<const std::byte*>(&d) + 64);
    prefetch(view_.slot(slot));
    // Hazard first, then check that the slot still holds message c. kDropOldest: the publisher
    // may pick this slot at any moment, so both are seq_cst (the handshake in docs/streams.md).
    // kBlock: our cursor (not yet past c) already keeps the slot from reuse; the hazard needs
    // only to be visible before the cursor moves past c (release, then release).
    auto& hold = st.held[free_index];
    hold.slot.store(slot, std::memory_order_relaxed);
    hold.seq.store(c, drop_oldest_ ? std::memory_order_seq_cst : std::memory_order_release);
    if (d.seq.load(drop_oldest_ ? std::memory_order_seq_cst : std::memory_order_acquire) != c) {
      hold.seq.store(0, std::memory_order_release);
      if (from_latest) {
        try_latest = false;  // a newer publish moved `latest` meanwhile: ask the table
        continue;
      }
      skip(1);
      continue;
    }
    // The descriptor against the last validated layout, in place: the same words mean the same
    // (validated) layout, so the common case parses nothing and copies nothing. Words that
    // change while we compare at worst send us to the validating path, or leave us with the old
    // layout, which fits the slot: the payload is the publisher's to get right anyway.
    const std::uint32_t ndim = d.ndim;
    const std::uint32_t order = d.order;
    const std::int64_t published = d.published_unix_ns;
    const std::uint64_t nbytes = d.nbytes;
    const bool same = layout && ndim == last_ndim_ && order == last_order_ &&
                      std::memcmp(d.dtype, last_dtype_.data(), last_dtype_.size()) == 0 &&
                      std::memcmp(d.shape, last_shape_.data(), ndim * sizeof(std::uint64_t)) == 0;
    if (!same) {
      // A private copy of the descriptor, validated: the slot stays ours while the hazard is
      // set, but the publisher's words are not trusted.
      std::array<char, stream::kMaxDtypeBytes> dtype;
      std::memcpy(dtype.data(), d.dtype, dtype.size());
      dtype.back() = '\0';
      std::array<std::uint64_t, kMaxNdim> shape{};
      if (ndim <= kMaxNdim) std::memcpy(shape.data(), d.shape, ndim * sizeof(std::uint64_t));
      Result<MessageInfo> checked =
          ndim > kMaxNdim || order > 1
              ? fail(ErrorCode::kDataLoss, "bad ndim or order")
              : message_layout(dtype.data(), {shape.data(), ndim}, static_cast<Order>(order),
                               view_.geometry.spec.slot_bytes, info_.name);
      if (!checked) {
        hold.seq.store(0, std::memory_order_release);
        advance();
        return fail(ErrorCode::kDataLoss, "stream '" + info_.name + "': message " +
                                              std::to_string(c) + " has an invalid descriptor (" +
                                              checked.error().message() + "); it was skipped");
      }
      last_layout_ = std::make_shared<const MessageInfo>(std::move(*checked));
      layout = last_layout_.get();
      last_dtype_ = dtype;
      last_ndim_ = ndim;
      last_order_ = order;
      last_shape_ = shape;
    }
    // The descriptor's seq may read 0 here: a publisher looking for a slot to reuse invalidates
    // it, then sees our hazard and backs off (it never rewrites a slot held since before its
    // invalidation), so only another non-zero seq means the slot was rewritten under us.
    const std::uint64_t seq_now = d.seq.load(std::memory_order_acquire);
    if (layout->nbytes != nbytes || (seq_now != c && seq_now != 0)) {
      hold.seq.store(0, std::memory_order_release);
      advance();
      return fail(ErrorCode::kDataLoss, "stream '" + info_.name + "': message " +
                                            std::to_string(c) +
                                            " has an invalid descriptor (size disagrees with its "
                                            "shape, or it was rewritten while held); it was "
                                            "skipped");
    }
    // Taken. The cursor moves past it with a plain release store and wakes nobody: the hazard
    // keeps its slot from reuse, so a publisher waiting for room gains nothing until release().
    ++cursor_;
    st.cursor.store(cursor_, std::memory_order_release);
    Sample sample;
    sample.core_ = std::move(self);
    sample.held_index_ = free_index;
    sample.seq_ = c;
    sample.published_unix_ns_ = published;
    sample.bytes_ = {view_.slot(slot), nbytes};
    // The layout stays alive in our per-index table while the Sample holds the index (it
    // holds this core too): no reference count to drop at release. Replaced only when a
    // message of another layout is taken into this index, after the Sample released it.
    if (held_layout_[free_index] != last_layout_) held_layout_[free_index] = last_layout_;
    sample.info_ = layout;
    return sample;
  }
}

}  // namespace shmarray::detail
