#include "source_link.hpp"

#include <spdlog/spdlog.h>

#include <atomic>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "chunked_transfer.hpp"
#include "doorbell.hpp"
#include "event_pump.hpp"
#include "futex_wait_any.hpp"
#include "link_sender.hpp"
#include "live_fields_of.hpp"
#include "peer_channel.hpp"
#include "peer_handshake.hpp"
#include "socket_address.hpp"
#include "shmarray/client.hpp"
#include "shmarray/watcher.hpp"
#include "sigbus_guard.hpp"
#include "spin_policy.hpp"
#include "stream_forwarder.hpp"
#include "ucx_endpoint.hpp"
#include "ucx_link_setup.hpp"

namespace shmarray::bridge {
namespace {

using Clock = std::chrono::steady_clock;

struct Source {
  Array array;
  GuardedRange guard;  // declared after `array`: unregistered before the mapping goes
  std::optional<std::uint64_t> sent;  // version last sent whole
  std::uint64_t attempted = 0;         // version of the last transfer begun
};

// A source array whose mapping a local writer truncated (a SIGBUS survived: sigbus_guard.hpp).
// Its mapping is dropped; the array is opened again later (a fresh mapping, if the broker still
// serves it), and only a version newer than `poisoned` is sent: the bytes of that one were lost.
struct Truncated {
  std::string id;
  std::uint64_t poisoned = 0;
  std::chrono::steady_clock::time_point retry_at;
};
constexpr std::chrono::milliseconds kReopenTruncatedEvery{500};

// The whole mapping of `array`: header page and data (what a truncation can take away).
std::span<const std::byte> mapping_of(const Array& array) {
  return {array.bytes().data() - array.info().data_offset, array.info().segment_bytes};
}

// The link thread sleeps on every array's wake word and the doorbell at once (a publish, a broker
// event or a stream forwarder's failure wakes it); the sleep is bounded by what is due (the
// heartbeat, a quarantined array's reopen) and by this, so that a stopping bridge is noticed.
constexpr std::chrono::milliseconds kLongestSleep{100};
// An array up to this size goes out in one UCX send with its description and end (send_small);
// a bigger one raw on the stream after its ArrayBegin, or in chunks on the tag API where
// SHMARRAY_BRIDGE_CHUNKED_MIN_BYTES turns that on (chunked_transfer.hpp).
constexpr std::uint64_t kCoalesceArrayBytes = 4096;
// How long the link waits for a consistent copy of one array (a local writer keeps rewriting it,
// or holds its write window open) before it gives that version up: the link's other arrays, its
// streams (which wait for the same sender) and its heartbeat wait meanwhile, so a writer must not
// be able to hold them longer than this. The version given up is gone from the source anyway (the
// writer is overwriting it); its next publish is sent as usual.
constexpr std::chrono::milliseconds kConsistentCopyBudget{100};

class SourceLink {
 public:
  SourceLink(PeerChannel& channel, Client& client, std::string prefix, ChunkSender chunks)
      : sender_(channel, doorbell_),
        client_(client),
        prefix_(std::move(prefix)),
        chunks_(std::move(chunks)) {}

  Result<void> run(Watcher& watcher) {
    EventPump events(watcher, doorbell_);
    auto listed = client_.list(prefix_);
    if (!listed) return std::unexpected(listed.error());
    std::uint32_t count = 0;
    for (const auto& info : *listed) {
      if (auto ok = add(info.name, info.kind); !ok) return ok;
      if (info.kind == ObjectKind::kStream && streams_.contains(info.name)) ++count;
    }
    for (auto it = sources_.begin(); it != sources_.end();) {
      if (auto ok = send_array(it->first, it->second); !ok) return ok;
      ++count;  // a truncated one was announced too (the mirror keeps its name)
      it = it->second.guard.truncated() ? quarantine(it) : std::next(it);
    }
    if (auto ok = send(InventoryEnd{count}); !ok) return ok;
    spdlog::info("peer link '{}': initial sync sent ({} arrays)", prefix_, count);
    while (!g_stopping.load()) {
      if (auto failed = sender_.failure()) return std::unexpected(*failed);  // a forwarder's
      // Read before looking at the events and arrays: a ring or publish after the look ends the
      // sleep below at once.
      const FutexWatch bell = doorbell_.watch();
      if (auto ok = drain_events(events); !ok) return ok;
      bool sent = false;
      for (auto it = sources_.begin(); it != sources_.end();) {
        Source& source = it->second;
        if (!source.guard.truncated() && source.sent && *source.sent == source.array.version()) {
          ++it;
          continue;
        }
        if (auto ok = send_array(it->first, source); !ok) return ok;
        sent = true;
        it = source.guard.truncated() ? quarantine(it) : std::next(it);
      }
      reopen_truncated();
      // Due after every round, busy or not: a round can be busy without sending (a local writer
      // who keeps an array's write window open while its version moves), and the mirror drops a
      // link it has not heard from for kLinkSilence.
      if (Clock::now() - sender_.last_send() >= kHeartbeatEvery) {
        if (auto ok = send(Heartbeat{}); !ok) return ok;
      }
      if (sent) continue;
      idle_wait(bell);
    }
    return {};
  }

 private:
  // Starts forwarding `name`: an array is sent by the version loop; a stream is subscribed to
  // and announced (StreamBegin) at once.
  Result<void> add(const std::string& name, ObjectKind kind) {
    if (kind == ObjectKind::kStream) {
      SubscribeOptions options;
      options.max_held = 1;
      options.spin = std::chrono::nanoseconds(0);
      Result<Subscriber> subscriber = fail(ErrorCode::kUnavailable, "");
      bool faulted = false;
      {
        // The client library reads the new mapping's header page at once (as for arrays).
        OpenGuard open_guard;
        subscriber = client_.subscribe(name, options);
        faulted = open_guard.faulted();
      }
      if (!subscriber || faulted) {
        spdlog::warn("peer link '{}': cannot subscribe to stream '{}' to mirror it: {}", prefix_,
                     name,
                     faulted ? "a local process truncated it while it was being mapped"
                             : subscriber.error().message());
        if (faulted) {
          OpenGuard goodbye;  // the Subscriber's goodbye touches the header page again
          subscriber = fail(ErrorCode::kDataLoss, "");
        }
        return {};
      }
      auto guard = GuardedRange::watch(subscriber->mapping());
      if (!guard) {
        spdlog::warn("peer link '{}': stream '{}' is not mirrored: {}", prefix_, name,
                     guard.error().message());
        OpenGuard goodbye;
        subscriber = fail(ErrorCode::kResourceExhausted, "");
        return {};
      }
      streams_.erase(name);  // a forwarder of an older stream of that name stops first
      const ArrayInfo& info = subscriber->info();
      StreamBegin begin{name,
                        info.stream.slots,
                        info.stream.slot_bytes,
                        info.stream.history,
                        info.stream.max_subscribers,
                        info.stream.overflow,
                        info.mode,
                        info.id};
      if (auto ok = send(begin); !ok) return ok;
      streams_.insert_or_assign(
          name, std::make_unique<StreamForwarder>(prefix_, name, info.id, std::move(*subscriber),
                                                  std::move(*guard), sender_));
      return {};
    }
    auto source = open_source(name);
    if (source) sources_.insert_or_assign(name, std::move(*source));
    return {};
  }

  // The array `name` opened read-only and its mapping guarded against SIGBUS; nullopt (logged)
  // if it cannot be, or if its mapping is one a local writer truncated (then it is quarantined).
  std::optional<Source> open_source(const std::string& name) {
    Result<Array> array = fail(ErrorCode::kUnavailable, "");
    bool faulted = false;
    {
      // The client library reads the new mapping's header at once: a truncation just then is
      // survived too (the open fails, as its header reads zeros).
      OpenGuard open_guard;
      array = client_.open(name, Access::kReadOnly);
      faulted = open_guard.faulted();
    }
    if (!array || faulted) {
      if (!truncated_.contains(name)) {
        spdlog::warn("peer link '{}': cannot open '{}' to mirror it: {}", prefix_, name,
                     faulted ? "a local writer truncated it while it was being mapped"
                             : array.error().message());
      }
      if (faulted) truncated_.try_emplace(name, Truncated{"", 0, Clock::now()});
      return std::nullopt;
    }
    auto guard = GuardedRange::watch(mapping_of(*array));
    if (!guard) {
      spdlog::warn("peer link '{}': '{}' is not mirrored: {}", prefix_, name,
                   guard.error().message());
      return std::nullopt;
    }
    std::optional<std::uint64_t> sent;
    if (auto t = truncated_.find(name); t != truncated_.end()) {
      if (guard->truncated()) return std::nullopt;  // the same damaged mapping: not reused
      if (t->second.id.empty() || t->second.id == array->info().id) sent = t->second.poisoned;
      truncated_.erase(t);
      spdlog::info("peer link '{}': '{}' is mapped again; versions after {} are sent", prefix_,
                   name, sent.value_or(0));
    }
    return Source{std::move(*array), std::move(*guard), sent, 0};
  }

  // `it`'s mapping was truncated under the bridge: it is dropped (never read again: part of it
  // is zero pages now) and the array quarantined until it can be opened afresh. Returns the next
  // iterator.
  std::map<std::string, Source>::iterator quarantine(std::map<std::string, Source>::iterator it) {
    spdlog::warn("peer link '{}': a local writer truncated '{}' while it was being sent; the "
                 "mirror keeps its last whole version (flagged possibly torn) until a new "
                 "version is published whole",
                 prefix_, it->first);
    truncated_.insert_or_assign(
        it->first, Truncated{it->second.array.info().id,
                             std::max(it->second.sent.value_or(0), it->second.attempted),
                             Clock::now() + kReopenTruncatedEvery});
    return sources_.erase(it);
  }

  // Quarantined arrays are opened again every kReopenTruncatedEvery (the broker refuses while
  // the segment is short: kDataLoss).
  void reopen_truncated() {
    const auto now = Clock::now();
    std::vector<std::string> due;
    for (auto& [name, t] : truncated_) {
      if (t.retry_at <= now) due.push_back(name);
    }
    for (const auto& name : due) {
      truncated_.at(name).retry_at = now + kReopenTruncatedEvery;
      if (auto source = open_source(name)) sources_.insert_or_assign(name, std::move(*source));
    }
  }

  Result<void> drain_events(EventPump& events) {
    auto queued = events.take();
    if (!queued) return std::unexpected(queued.error());
    for (const WatchEvent& e : *queued) {
      if (e.kind == WatchEvent::Kind::kCreated) {
        const auto known = sources_.find(e.name);
        const auto known_stream = streams_.find(e.name);
        const bool same = (known != sources_.end() && known->second.array.info().id == e.info.id) ||
                          (known_stream != streams_.end() &&
                           known_stream->second->source_id() == e.info.id);
        if (!same) {
          if (auto ok = send_last_version(e.name); !ok) return ok;
          sources_.erase(e.name);
          streams_.erase(e.name);
          truncated_.erase(e.name);
          if (auto ok = add(e.name, e.info.kind); !ok) return ok;
        }
      } else {
        if (auto ok = send_last_version(e.name); !ok) return ok;
        if (sources_.erase(e.name) + streams_.erase(e.name) + truncated_.erase(e.name) > 0) {
          // A stream's forwarder has stopped (erase joined it): no message of it follows this.
          if (auto ok = send(ArrayRemoved{e.name}); !ok) return ok;
          spdlog::debug("peer link '{}': '{}' removed on the source; removal sent", prefix_,
                        e.name);
        }
      }
    }
    return {};
  }

  // Before an array is dropped (removed or replaced on the source), the version it was left
  // with goes out if it has not yet: a producer that publishes its last version and removes the
  // array at once must not lose that version because the removal event reached this thread
  // before it looked at the array (the mirror then held the version before it, and its readers
  // waited for the last one in vain). The mapping is still this bridge's, so it is readable.
  Result<void> send_last_version(const std::string& name) {
    const auto it = sources_.find(name);
    if (it == sources_.end() || it->second.guard.truncated()) return {};
    Source& source = it->second;
    if (source.sent && *source.sent == source.array.version()) return {};
    spdlog::debug("peer link '{}': '{}' goes; its version {} is sent first (last sent: {})",
                  prefix_, name, source.array.version(), source.sent.value_or(0));
    return send_array(name, source);
  }

  // Sleeps until something is to be sent: a publish on any array (its wake word), a broker event
  // or a forwarder's failure (the doorbell, read as `bell` before the caller looked), or what is
  // due next (the heartbeat, a quarantined array's reopen). Streams need no look: their forwarders
  // send on their own threads.
  void idle_wait(const FutexWatch& bell) {
    watches_.assign(1, bell);
    for (auto& [name, source] : sources_) {
      if (source.guard.truncated()) return;  // quarantined by the next round
      LiveFields& live = live_fields_of(source.array);
      // The wake word before the version: a publish after this read changes it.
      watches_.push_back(
          FutexWatch{&live.wake_word, live.wake_word.load(std::memory_order_acquire)});
      if (!source.sent || *source.sent != live.version.load(std::memory_order_acquire)) return;
    }
    const auto last_send = sender_.last_send();
    // Busy for a while after a send: the next version of a busy array is caught without a
    // wake-up (spin_policy.hpp); the words are the ones the sleep below would watch.
    const auto spin_end = last_send + spin_after_activity();
    for (unsigned i = 1; Clock::now() < spin_end; ++i) {
      for (const FutexWatch& w : watches_) {
        if (w.word->load(std::memory_order_acquire) != w.expected) return;
      }
      if (i % 16 == 0) std::this_thread::yield();  // let a publisher on this core run
    }
    auto deadline = std::min(Clock::now() + kLongestSleep, last_send + kHeartbeatEvery);
    for (const auto& [name, t] : truncated_) deadline = std::min(deadline, t.retry_at);
    futex_wait_any(watches_, deadline);
  }

  ArrayBegin begin_of(const std::string& name, const Array& array, std::uint64_t version,
                      std::uint64_t chunk_bytes) {
    const auto& info = array.info();
    return ArrayBegin{name,    info.dtype,  info.shape, info.order,   info.mode,
                      version, info.nbytes, info.id,    ++transfers_, chunk_bytes};
  }

  // One version of one array: zero-copy from the mapping when no write overlaps the send; else
  // the mirror is told to keep its window open and a consistent copy follows at once.
  // A local writer may truncate the segment at any moment: the bridge then survives the SIGBUS
  // (sigbus_guard.hpp) and reads zeros, and source.guard says so. Such a transfer always ends
  // kTorn (the mirror abandons it: its readers never get those bytes as a version), and the
  // caller quarantines the array.
  Result<void> send_array(const std::string& name, Source& source) {
    auto done = sender_.locked([&](PeerChannel& channel) {
      auto sent = send_array_locked(channel, name, source);
      // The chunks still in flight land (the ArrayEnd went out behind them, on the stream); the
      // ring and the staging copy are free again.
      auto landed = chunks_.finish();
      return sent ? landed : sent;
    });
    // What the link sent last, for a mirror that looks stuck (--log-level debug).
    spdlog::debug("peer link '{}': '{}' {}: version {} whole (looked at version {})", prefix_,
                  name, done ? "sent" : "failed", source.sent.value_or(0), source.attempted);
    return done;
  }

  Result<void> send_array_locked(PeerChannel& channel, const std::string& name, Source& source) {
    const Array& array = source.array;
    LiveFields& live = live_fields_of(array);
    const std::uint64_t seq = live.write_seq.load(std::memory_order_acquire);
    const bool torn = (live.flags.load(std::memory_order_acquire) & kFlagPossiblyTorn) != 0;
    const std::uint64_t version = live.version.load(std::memory_order_acquire);
    if (source.guard.truncated()) return {};  // nothing announced yet: nothing to end
    source.attempted = version;
    if (torn) {
      // The source's own bytes cannot be trusted: the mirror reads as torn too, until the next
      // publish on the source.
      if (auto ok = send_whole(channel, name, array, version, array.bytes(), true); !ok) return ok;
      source.sent = version;
      return channel.send(ArrayEnd{TransferEnd::kTorn, version});
    }
    if ((seq & 1u) == 0 && array.info().nbytes <= kCoalesceArrayBytes) {
      if (auto sent = send_small(channel, name, source, seq, version); !sent || *sent) {
        return sent ? Result<void>{} : std::unexpected(sent.error());
      }
      if (source.guard.truncated()) return {};  // nothing announced: the caller quarantines it
    }
    if ((seq & 1u) == 0) {
      if (auto ok = send_whole(channel, name, array, version, array.bytes(), true); !ok) return ok;
      if (source.guard.truncated()) return channel.send(ArrayEnd{TransferEnd::kTorn, version});
      std::atomic_thread_fence(std::memory_order_acquire);  // the send's copy before the re-read
      const bool stable = live.write_seq.load(std::memory_order_acquire) == seq &&
                          live.version.load(std::memory_order_acquire) == version;
      if (stable) {
        source.sent = version;
        return channel.send(ArrayEnd{TransferEnd::kCommit, version});
      }
      if (auto ok = channel.send(ArrayEnd{TransferEnd::kRetry, version}); !ok) return ok;
      ++retries_;
    }
    // A write overlapped (or was in progress): a consistent private copy, then send that.
    // The zero-copy send above ran and ended kRetry: the mirror holds its window open for a copy.
    const bool announced = (seq & 1u) == 0;
    staging_.resize(array.info().nbytes);
    const auto give_up_at = Clock::now() + kConsistentCopyBudget;
    for (;;) {
      const auto left = std::max(std::chrono::nanoseconds(0), give_up_at - Clock::now());
      auto copied = array.read_checked(staging_, left);
      if (copied && source.guard.truncated()) {
        // read_checked read the zero pages mapped over the truncated part: not the array's.
        copied = fail(ErrorCode::kDataLoss, "truncated");
      }
      if (copied) {
        if (auto ok = send_whole(channel, name, array, *copied, staging_, false); !ok) return ok;
        source.sent = *copied;
        return channel.send(ArrayEnd{TransferEnd::kCommit, *copied});
      }
      const bool out_of_time = Clock::now() >= give_up_at;
      if (copied.error().code() == ErrorCode::kDataLoss || out_of_time) {
        if (out_of_time) {
          // Logged at debug only: a writer that holds its window open is not the link's fault.
          spdlog::debug("peer link '{}': no consistent copy of '{}' (version {}) within {} ms ({}); "
                        "that version is given up, the next publish is sent",
                        prefix_, name, version, kConsistentCopyBudget.count(),
                        copied.error().message());
        }
        // Torn (or truncated, or rewritten for too long) meanwhile: say so rather than send half
        // a version as whole. Out of time with nothing sent yet: the mirror keeps its last whole
        // version, and there is no transfer to end.
        source.sent = out_of_time ? version : array.version();
        if (out_of_time && !announced) return {};
        std::fill(staging_.begin(), staging_.end(), std::byte{0});
        if (auto ok = send_whole(channel, name, array, version, staging_, false); !ok) return ok;
        return channel.send(ArrayEnd{TransferEnd::kTorn, version});
      }
      if (g_stopping.load()) return fail(ErrorCode::kCancelled, "the bridge is stopping");
    }
  }

  // A small array in one UCX send: its description, a copy of its bytes (taken here, where a
  // truncation faults into the SIGBUS guard) and its end, so the mirror wakes once rather than
  // once per part. True if sent; false (nothing sent) if a write overlapped the copy or the
  // mapping was truncated under it.
  Result<bool> send_small(PeerChannel& channel, const std::string& name, Source& source,
                          std::uint64_t seq, std::uint64_t version) {
    const Array& array = source.array;
    LiveFields& live = live_fields_of(array);
    const auto head = encode_peer(begin_of(name, array, version, 0));
    const auto end = encode_peer(ArrayEnd{TransferEnd::kCommit, version});
    const auto bytes = array.bytes();
    small_.resize(head.size() + bytes.size() + end.size());
    std::memcpy(small_.data(), head.data(), head.size());
    std::memcpy(small_.data() + head.size(), bytes.data(), bytes.size());
    std::memcpy(small_.data() + head.size() + bytes.size(), end.data(), end.size());
    // The seqlock reader's fence (sync/seqlock.hpp): the copy's loads are ordered before the
    // re-read of write_seq; an acquire load alone would let them move after it.
    std::atomic_thread_fence(std::memory_order_acquire);
    const bool stable = !source.guard.truncated() &&
                        live.write_seq.load(std::memory_order_acquire) == seq &&
                        live.version.load(std::memory_order_acquire) == version;
    if (!stable) return false;
    if (auto ok = channel.send_bytes(small_); !ok) return std::unexpected(ok.error());
    source.sent = version;
    return true;
  }

  // An ArrayBegin and the bytes: below ChunkSender::takes (off by default) raw on the stream (UCX copies
  // them in user space), else in chunks on the tag API. `shared`: `bytes` is the source's mapping
  // (copied through the staging ring, under the SIGBUS guard: when this returns, every byte is
  // copied); else the bridge's own copy. The last chunks may still travel: send_array waits for
  // them after the ArrayEnd.
  Result<void> send_whole(PeerChannel& channel, const std::string& name, const Array& array,
                          std::uint64_t version, std::span<const std::byte> bytes, bool shared) {
    const bool chunked = bytes.size() > kCoalesceArrayBytes && chunks_.takes(bytes.size());
    const ArrayBegin begin =
        begin_of(name, array, version, chunked ? chunks_.chunk_bytes_for(bytes.size()) : 0);
    if (auto ok = channel.send(begin); !ok) return ok;
    if (!chunked) return channel.send_bytes(bytes);
    return chunks_.start(channel.endpoint(), bytes, begin.transfer, shared);
  }

  // One whole message under the send lock.
  Result<void> send(const PeerMessage& m) {
    return sender_.locked([&](PeerChannel& channel) { return channel.send(m); });
  }

  Doorbell doorbell_;
  LinkSender sender_;  // the channel, shared with the stream forwarders
  Client& client_;
  std::string prefix_;
  std::map<std::string, Source> sources_;
  std::map<std::string, Truncated> truncated_;
  std::vector<FutexWatch> watches_;
  std::vector<std::byte> staging_;
  std::vector<std::byte> small_;  // send_small's message
  ChunkSender chunks_;            // the staging ring of the chunks on the tag API
  std::uint64_t transfers_ = 0;   // the link's last transfer number (one per ArrayBegin)
  std::uint64_t retries_ = 0;
  // Last: the forwarders stop (and are joined) before what they use goes.
  std::map<std::string, std::unique_ptr<StreamForwarder>> streams_;
};

}  // namespace

void run_source_link(std::shared_ptr<UcxContext> context, TcpLink connection, const PeerKey& key,
                     const SourceSettings& settings, const std::function<void()>& handshake_over) {
  PeerChannel control(connection);
  auto prefix = handshake_as_source(control, key, settings.allowed);
  handshake_over();
  if (!prefix) {
    spdlog::warn("peer link from {} refused: {}", to_string(connection.peer()),
                 prefix.error().message());
    // Let the Refused message reach the peer before the connection closes.
    control.linger(std::chrono::milliseconds(500));
    return;
  }
  // Serialized: the stream forwarders send from threads of their own (under LinkSender's lock).
  auto ucx = open_ucx_link(control, connection, std::move(context), UCS_THREAD_MODE_SERIALIZED);
  if (!ucx) {
    spdlog::error("peer link '{}' from {}: {}", *prefix, to_string(connection.peer()),
                  ucx.error().message());
    return;
  }
  connection.close();  // the link goes on over UCX
  PeerChannel channel(*ucx->endpoint);
  spdlog::info("peer link: a mirror subscribed to '{}'", *prefix);
  ClientOptions options;
  options.socket_path = settings.broker_socket;
  options.client_name = "shmarray-bridge source";
  options.reconnect_attempts = 0;  // the bridge lives and dies with its broker
  options.interrupt_check = stop_check;
  auto client = Client::connect(options);
  if (!client) {
    spdlog::error("peer link '{}': {}", *prefix, client.error().message());
    return;
  }
  // Watching starts before listing, so no create between the two is missed.
  auto watcher = Watcher::start(settings.broker_socket, *prefix);
  if (!watcher) {
    spdlog::error("peer link '{}': {}", *prefix, watcher.error().message());
    return;
  }
  auto chunks = ChunkSender::create(ucx->worker->context());
  if (!chunks) {
    spdlog::error("peer link '{}': {}", *prefix, chunks.error().message());
    return;
  }
  SourceLink link(channel, *client, *prefix, std::move(*chunks));
  auto ended = link.run(*watcher);
  if (!ended) {
    spdlog::info("peer link '{}' ended: {}", *prefix, ended.error().message());
  }
}

}  // namespace shmarray::bridge
