// The publisher's half of the stream protocol (docs/streams.md, "Memory ordering"). Only this
// process writes the stream segment; every word it reads from a subscriber's state page is
// clamped or compared, never used as an index or a length unchecked.
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <thread>

#include "shmarray/sync/futex.hpp"
#include "shmarray/sync/process_barrier.hpp"
#include "stream_core.hpp"

namespace shmarray::detail {
namespace {

using Clock = std::chrono::steady_clock;
// A publisher waiting for room re-checks membership at least this often, so a subscriber that
// died (its connection closed) stops holding it back within one slice.
constexpr auto kRoomSlice = std::chrono::milliseconds(50);
constexpr auto kMembersRetry = std::chrono::milliseconds(100);
constexpr auto kRoomSpin = std::chrono::microseconds(20);
constexpr auto kUnfencedRoomSlice = std::chrono::milliseconds(1);

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

UniqueFd open_pidfd(std::uint32_t pid) {
#ifdef SYS_pidfd_open
  return UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, static_cast<pid_t>(pid), 0)));
#else
  return UniqueFd();
#endif
}

}  // namespace

bool PublisherCore::Member::alive() const noexcept {
  if (pidfd) {
    pollfd p{pidfd.get(), POLLIN, 0};
    return ::poll(&p, 1, 0) == 0;
  }
  return ::kill(static_cast<pid_t>(id.pid), 0) == 0 || errno == EPERM;
}

void PublisherCore::drop_dead_members() {
  std::erase_if(members_, [](const Member& m) { return !m.alive(); });
}

Result<std::shared_ptr<PublisherCore>> PublisherCore::attach(std::shared_ptr<BrokerChannel> channel,
                                                             ArrayInfo info, UniqueFd fd) {
  if (!fd) return fail(ErrorCode::kProtocolError, "broker reply carried no stream descriptor");
  std::shared_ptr<PublisherCore> core(new PublisherCore());
  core->channel_ = std::move(channel);
  auto view = map_stream(fd.get(), info, true, core->mapping_);
  if (!view) return std::unexpected(view.error());
  core->view_ = *view;
  core->info_ = std::move(info);
  core->epoch_ = core->view_.control->epoch.load(std::memory_order_acquire);
  const std::uint32_t n = core->view_.slot_count();
  // Continue after the last published message (open_publisher after a publisher died: its loan,
  // never published, is simply written over).
  const std::uint64_t head = core->view_.control->head.load(std::memory_order_acquire);
  if (head >= stream::kMaxSeq) {
    return fail(ErrorCode::kDataLoss,
                "stream '" + core->info_.name + "': its head word holds " + std::to_string(head) +
                    ", which no publisher reaches (the stream segment was overwritten); remove "
                    "and recreate the stream");
  }
  core->next_seq_ = head + 1;
  core->slot_seq_.assign(n, 0);
  for (std::uint32_t i = 0; i < n; ++i) {
    const std::uint64_t seq = core->view_.descriptors[i].seq.load(std::memory_order_relaxed);
    core->slot_seq_[i] = seq < core->next_seq_ ? seq : 0;
  }
  std::vector<std::uint32_t> by_age(n);
  std::iota(by_age.begin(), by_age.end(), 0u);
  std::stable_sort(by_age.begin(), by_age.end(), [&](std::uint32_t a, std::uint32_t b) {
    return core->slot_seq_[a] < core->slot_seq_[b];
  });
  core->order_.reset(by_age);
  core->refresh_members();
  return core;
}

std::uint64_t PublisherCore::last_seq() const noexcept {
  return view_.control->head.load(std::memory_order_acquire);
}

void PublisherCore::refresh_members() {
  const std::uint32_t now_members = view_.control->members.load(std::memory_order_seq_cst);
  if (members_known_ && now_members == members_seen_) return;
  if (Clock::now() < retry_members_at_) return;
  auto reply = request<wire::StreamMembersReply>(*channel_, wire::StreamMembersRequest{info_.id});
  if (!reply) {
    // The broker is away (restarting): keep gating on the members we know, retry later.
    retry_members_at_ = Clock::now() + kMembersRetry;
    return;
  }
  const std::uint32_t broker = channel_->broker_pid();
  bool complete = true;
  std::vector<Member> next;
  // Members listed by an earlier broker that this one does not know (it restarted: subscribers
  // are recorded in the broker's memory only) still take messages: keep gating on them while
  // their process lives.
  for (Member& m : members_) {
    if (m.broker_pid != broker && m.alive()) next.push_back(std::move(m));
  }
  for (const auto& m : reply->first.members) {
    if (m.index >= info_.stream.max_subscribers || m.max_held > kMaxHeldPerSubscriber) continue;
    auto known = std::find_if(members_.begin(), members_.end(),
                              [&](const Member& x) { return x.mapping.data() != nullptr && x.id == m; });
    if (known != members_.end()) {
      known->broker_pid = broker;
      next.push_back(std::move(*known));
      continue;
    }
    auto kept = std::find_if(next.begin(), next.end(), [&](const Member& x) { return x.id == m; });
    if (kept != next.end()) {
      kept->broker_pid = broker;
      continue;
    }
    auto page = request<wire::SubscriberStateReply>(
        *channel_, wire::SubscriberStateRequest{info_.id, m.index, m.generation});
    if (!page) {
      // kNotFound: it left meanwhile. Anything else (the broker went away): ask again later.
      if (page.error().code() != ErrorCode::kNotFound) complete = false;
      continue;
    }
    auto mapped = map_state(page->second.get(), false);
    if (!mapped) continue;
    struct stat st {};
    (void)::fstat(page->second.get(), &st);  // map_state did too: it is a sealed page
    Member member{m, std::move(*mapped), nullptr, broker, open_pidfd(m.pid), st.st_dev, st.st_ino};
    member.state = reinterpret_cast<const stream::SubscriberState*>(member.mapping.data());
    // A subscriber an earlier broker listed and this one re-admitted under another index: its
    // page is the same, gate on it once.
    std::erase_if(next, [&](const Member& x) {
      return x.broker_pid != broker && x.dev == member.dev && x.ino == member.ino;
    });
    next.push_back(std::move(member));
  }
  members_ = std::move(next);
  if (!complete) {
    retry_members_at_ = Clock::now() + kMembersRetry;
    return;
  }
  members_seen_ = now_members;
  members_known_ = true;
}

const PublisherCore::Member* PublisherCore::blocker(std::uint64_t slot, std::uint64_t old) const {
  for (const Member& m : members_) {
    // Not there yet: it still has `old` to take.
    if (m.state->cursor.load(std::memory_order_acquire) <= old) return &m;
    for (std::uint32_t i = 0; i < m.id.max_held; ++i) {
      const auto& h = m.state->held[i];
      if (h.seq.load(std::memory_order_acquire) != 0 &&
          h.slot.load(std::memory_order_relaxed) == slot) {
        return &m;
      }
    }
  }
  return nullptr;
}

Result<void> PublisherCore::wait_for_room(std::uint64_t slot, std::uint64_t old,
                                          std::chrono::nanoseconds timeout) {
  const auto deadline = timeout >= std::chrono::hours(24 * 365)
                            ? Clock::time_point::max()
                            : Clock::now() + std::chrono::duration_cast<Clock::duration>(timeout);
  const auto spin_until = std::min(deadline, Clock::now() + kRoomSpin);
  while (blocker(slot, old) != nullptr && Clock::now() < spin_until) cpu_relax();
  auto& control = *view_.control;
  for (;;) {
    refresh_members();
    drop_dead_members();
    if (blocker(slot, old) == nullptr) return {};
    // Say we wait, then look again: a subscriber moves on, then checks room_waiting, so either
    // we see its move or it sees our flag and wakes us. A subscriber that skips stores seq_cst;
    // one that releases a sample stores with release only and relies on this process barrier
    // (docs/streams.md, "Sleeping without lost wake-ups"); without membarrier it stores seq_cst.
    control.room_waiting.store(1, std::memory_order_seq_cst);
    // Without the barrier (membarrier refused here but not to a subscriber) a release may go
    // unseen: then sleep in short slices, so that costs at most one.
    const bool fenced = process_barrier();
    const Member* b = blocker(slot, old);
    if (b == nullptr) {
      control.room_waiting.store(0, std::memory_order_relaxed);
      return {};
    }
    const auto now = Clock::now();
    if (now >= deadline) {
      control.room_waiting.store(0, std::memory_order_relaxed);
      std::uint32_t held = 0;
      for (std::uint32_t i = 0; i < b->id.max_held; ++i) {
        if (b->state->held[i].seq.load(std::memory_order_relaxed) != 0) ++held;
      }
      return fail(ErrorCode::kDeadlineExceeded,
                  "stream '" + info_.name + "': subscriber pid " + std::to_string(b->id.pid) +
                      " (position " +
                      std::to_string(b->state->cursor.load(std::memory_order_relaxed)) +
                      ", holding " + std::to_string(held) + " samples) has not released message " +
                      std::to_string(old) + " in time; kBlock waits for the slowest subscriber "
                      "(use kDropOldest to never wait)");
    }
    (void)futex_wait(control.room_word, 0,
                     std::min(deadline, now + (fenced ? kRoomSlice : kUnfencedRoomSlice)));
    control.room_waiting.store(0, std::memory_order_relaxed);
  }
}

bool PublisherCore::all_past(std::uint64_t seq) const {
  for (const Member& m : members_) {
    if (m.state->cursor.load(std::memory_order_acquire) <= seq) return false;
  }
  return true;
}

Result<std::uint64_t> PublisherCore::block_slot(std::chrono::nanoseconds timeout) {
  // The newest slot first: when every subscriber has taken its message and released it (a
  // subscriber keeping up), reusing it keeps one slot's lines hot in both caches. Never while a
  // late subscriber may still want it (history).
  const std::uint32_t newest = order_.newest();
  const std::uint64_t newest_seq = slot_seq_[newest];
  if (newest_seq == 0 || (!in_history(newest_seq) && blocker(newest, newest_seq) == nullptr)) {
    return newest;
  }
  // Else the oldest, as a ring: wait until every subscriber is past its message. (history <
  // slots, so the oldest of a full ring is outside the history.)
  const std::uint32_t oldest = order_.oldest();
  const std::uint64_t old = slot_seq_[oldest];
  if (old != 0 && blocker(oldest, old) != nullptr) {
    if (auto ok = wait_for_room(oldest, old, timeout); !ok) return std::unexpected(ok.error());
  }
  return oldest;
}

bool PublisherCore::held_by_anyone(std::uint64_t slot) const {
  for (const Member& m : members_) {
    for (std::uint32_t i = 0; i < m.id.max_held; ++i) {
      const auto& h = m.state->held[i];
      if (h.seq.load(std::memory_order_seq_cst) != 0 &&
          h.slot.load(std::memory_order_seq_cst) == slot) {
        return true;
      }
    }
  }
  return false;
}

Result<std::uint64_t> PublisherCore::pick_slot() {
  const auto take_over = [&](std::uint32_t slot) {
    const std::uint64_t seq = slot_seq_[slot];
    if (in_history(seq)) return false;  // a late subscriber may still take it
    if (held_by_anyone(slot)) return false;
    // Hazard handshake: invalidate, then look at the held tables again. A subscriber stores its
    // hazard and then re-reads the descriptor (both seq_cst): either it sees the invalidation
    // (and counts the message missed) or we see its hazard here (and leave the slot alone).
    view_.descriptors[slot].seq.store(0, std::memory_order_seq_cst);
    if (held_by_anyone(slot)) {
      // A subscriber took it between our two looks: the message stays, takeable by the others.
      view_.descriptors[slot].seq.store(seq, std::memory_order_seq_cst);
      return false;
    }
    slot_seq_[slot] = 0;
    return true;
  };
  // The newest slot when every subscriber is past its message (nobody misses it, and its lines
  // are hot in both caches); else, from the oldest message on, the first one nobody holds.
  const std::uint32_t newest = order_.newest();
  if ((slot_seq_[newest] == 0 || all_past(slot_seq_[newest])) && take_over(newest)) {
    return newest;
  }
  for (std::uint32_t slot = order_.oldest(); slot != order_.end(); slot = order_.newer(slot)) {
    if (take_over(slot)) return slot;
  }
  return fail(ErrorCode::kResourceExhausted,
              "stream '" + info_.name + "': every slot is held by a subscriber or kept for "
              "history; the broker admits subscribers so this cannot happen unless one of them "
              "writes its state page");
}

Result<Loan> PublisherCore::loan(std::string_view dtype, std::span<const std::uint64_t> shape,
                                 std::chrono::nanoseconds timeout, Order order) {
  if (loan_open_) {
    return fail(ErrorCode::kFailedPrecondition,
                "stream '" + info_.name + "': a loan is already open; publish or destroy it first");
  }
  // Most streams carry one shape: the layout of the last loan is reused when it matches.
  if (!last_layout_ || last_layout_->order != order || last_dtype_ != dtype ||
      !std::equal(shape.begin(), shape.end(), last_layout_->shape.begin(),
                  last_layout_->shape.end())) {
    auto layout = message_layout(dtype, shape, order, view_.geometry.spec.slot_bytes, info_.name);
    if (!layout) return std::unexpected(layout.error());
    last_layout_ = std::make_shared<const MessageInfo>(std::move(*layout));
    last_dtype_ = std::string(dtype);
  }
  refresh_members();
  const std::uint64_t seq = next_seq_;
  std::uint64_t slot = 0;
  if (view_.geometry.spec.overflow == Overflow::kBlock) {
    auto chosen = block_slot(timeout);
    if (!chosen) return std::unexpected(chosen.error());
    slot = *chosen;
    slot_seq_[slot] = 0;
    view_.descriptors[slot].seq.store(0, std::memory_order_seq_cst);
  } else {
    auto picked = pick_slot();
    if (!picked) return std::unexpected(picked.error());
    slot = *picked;
  }
  loan_open_ = true;
  Loan loan;
  loan.core_ = shared_from_this();
  loan.slot_ = slot;
  loan.seq_ = seq;
  loan.bytes_ = {view_.slot(slot), last_layout_->nbytes};
  loan.info_ = last_layout_;
  return loan;
}

Result<std::uint64_t> PublisherCore::publish(Loan& loan) {
  if (!loan_open_ || loan.seq_ != next_seq_) {
    return fail(ErrorCode::kInvalidArgument, "publish: not the open loan of this publisher");
  }
  const std::uint64_t seq = loan.seq_;
  const std::uint64_t slot = loan.slot_;
  auto& d = view_.descriptors[slot];
  const MessageInfo& info = *loan.info_;
  // Fields are written only when they differ (only this process writes the segment): a slot
  // reused for a message of the same layout then leaves the descriptor's second line alone, and
  // subscribers keep reading it from their caches.
  const auto ndim = static_cast<std::uint32_t>(info.shape.size());
  const auto order = static_cast<std::uint32_t>(info.order);
  if (d.nbytes != info.nbytes) d.nbytes = info.nbytes;
  d.published_unix_ns = clock_.unix_ns();
  if (d.ndim != ndim) d.ndim = ndim;
  if (d.order != order) d.order = order;
  char dtype[stream::kMaxDtypeBytes] = {};
  std::memcpy(dtype, info.dtype.data(), info.dtype.size());
  if (std::memcmp(d.dtype, dtype, sizeof dtype) != 0) std::memcpy(d.dtype, dtype, sizeof dtype);
  if (!std::equal(info.shape.begin(), info.shape.end(), d.shape)) {
    std::copy(info.shape.begin(), info.shape.end(), d.shape);
  }
  // Payload and descriptor, then the descriptor's seq, `latest` and head: a subscriber that sees
  // head >= seq (acquire) sees everything written before it.
  d.seq.store(seq, std::memory_order_release);
  auto& control = *view_.control;
  control.latest_slot.store(slot, std::memory_order_release);
  control.latest_seq.store(seq, std::memory_order_release);
  control.head.store(seq, std::memory_order_seq_cst);
  // The table entry after head: one line fewer to own before subscribers see the message. A
  // subscriber at `seq` finds its slot in `latest`; one behind it reads the entry only after
  // seeing a newer head or `latest`, which this publisher stores after it (release).
  auto& entry = view_.table[seq % view_.slot_count()];
  entry.slot.store(slot, std::memory_order_relaxed);
  entry.seq.store(seq, std::memory_order_release);
  control.head_word.store(static_cast<std::uint32_t>(seq), std::memory_order_seq_cst);
  slot_seq_[slot] = seq;
  order_.make_newest(static_cast<std::uint32_t>(slot));
  next_seq_ = seq + 1;
  loan_open_ = false;
  loan.core_.reset();
  // A system call only when some subscriber said it sleeps (it set `sleeping` before its last
  // look at head: seq_cst on both sides, so it cannot miss this publish).
  for (const Member& m : members_) {
    if (m.state->sleeping.load(std::memory_order_seq_cst) != 0) {
      (void)futex_wake(control.head_word);
      break;
    }
  }
  return seq;
}

void PublisherCore::abandon(Loan& loan) noexcept {
  // Nothing to undo: the slot's descriptor stays invalid (seq 0) and head never moved, so no
  // subscriber sees it; the next loan takes the same sequence number.
  if (loan_open_ && loan.seq_ == next_seq_) {
    loan_open_ = false;
    slot_seq_[loan.slot_] = 0;
  }
}

PublisherCore::~PublisherCore() {
  // The connection stays with the Client: tell the broker this process stopped publishing, so
  // open_publisher elsewhere may take over.
  if (!channel_) return;
  const wire::DetachRequest detach{info_.id, wire::kDetachPublisher, 0};
  if (view_.control != nullptr &&
      view_.control->epoch.load(std::memory_order_relaxed) != epoch_) {
    // The broker restarted since we attached: our connection may have died with the old one
    // (a posted frame would be lost) and the new broker knows us only by pid, from the
    // segment. A round trip reconnects if needed and reaches it (it accepts the release from
    // the adopted pid only); without it the stream would stay ours while this process lives.
    (void)request<wire::DetachReply>(*channel_, detach);
    return;
  }
  channel_->post(wire::DetachRequest::kType, wire::encode_body(detach));
}

}  // namespace shmarray::detail
