#include "mirror_link.hpp"

#include <spdlog/spdlog.h>

#include <map>
#include <optional>
#include <set>
#include <thread>

#include "live_fields_of.hpp"
#include "peer_channel.hpp"
#include "peer_control.hpp"
#include "peer_handshake.hpp"
#include "ucx_link_setup.hpp"
#include "shmarray/client.hpp"
#include "shmarray/sync/seqlock.hpp"
#include "chunked_transfer.hpp"
#include "ucx_endpoint.hpp"
#include "ucx_memory.hpp"

namespace shmarray::bridge {
namespace {

using Clock = std::chrono::steady_clock;

struct Local {
  Array array;
  std::string source_id;  // empty: adopted after a bridge restart (source id unknown)
  // The mirror segment registered with UCX once (the chunks' receives land in it: rendezvous);
  // after `array`, so unregistered before the mapping goes. Empty if registration failed (each
  // receive then registers its own chunk).
  std::optional<UcxMemory> memh;
};

// The mirror's publisher of one stream.
struct LocalStream {
  Publisher publisher;
  std::string source_id;
};
// How long a forwarded message may wait for room in the mirror's ring (kBlock: its slowest local
// subscriber); meanwhile the link carries nothing else and the source's publisher waits too.
constexpr std::chrono::seconds kLoanTimeout{30};

bool same_stream(const StreamStatus& s, const StreamBegin& b) {
  return s.slots == b.slots && s.slot_bytes == b.slot_bytes && s.history == b.history &&
         s.max_subscribers == b.max_subscribers && s.overflow == b.overflow;
}

bool same_layout(const ArrayInfo& info, const ArrayBegin& b) {
  return info.dtype == b.dtype && info.shape == b.shape && info.order == b.order &&
         info.nbytes == b.nbytes;
}

class MirrorSession {
 public:
  MirrorSession(PeerChannel& channel, Client& client, const MirrorSettings& settings,
                MirrorStatusBoard& board)
      : channel_(channel), client_(client), settings_(settings), board_(board) {}

  Result<void> run() {
    board_.set_link(settings_.prefix, settings_.peer, "syncing");
    std::set<std::string> seen;
    bool synced = false;
    while (!g_stopping.load()) {
      auto m = channel_.receive();
      if (!m) return std::unexpected(m.error());
      if (auto* begin = std::get_if<ArrayBegin>(&*m)) {
        if (!synced) seen.insert(begin->name);
        if (auto ok = receive_array(std::move(*begin)); !ok) return ok;
      } else if (auto* stream = std::get_if<StreamBegin>(&*m)) {
        if (!synced) seen.insert(stream->name);
        if (auto ok = begin_stream(*stream); !ok) return ok;
      } else if (auto* message = std::get_if<StreamMessage>(&*m)) {
        if (auto ok = receive_message(*message); !ok) return ok;
      } else if (auto* removed = std::get_if<ArrayRemoved>(&*m)) {
        if (auto ok = check_under_prefix(removed->name); !ok) return ok;
        remove_local(removed->name, "removed on the source");
      } else if (std::get_if<InventoryEnd>(&*m) != nullptr) {
        if (!synced) drop_unseen(seen);
        synced = true;
        board_.set_link(settings_.prefix, settings_.peer, "up");
        spdlog::info("mirror '{}' from {}: in sync ({} arrays)", settings_.prefix,
                     settings_.peer, seen.size());
      } else if (auto* refused = std::get_if<Refused>(&*m)) {
        return fail(refused->code, refused->message);
      } else if (std::get_if<Heartbeat>(&*m) == nullptr) {
        return fail(ErrorCode::kProtocolError, "peer link: unexpected message from the source");
      }
    }
    return {};
  }

 private:
  Result<void> check_under_prefix(const std::string& name) {
    if (name.compare(0, settings_.prefix.size(), settings_.prefix) != 0) {
      return fail(ErrorCode::kProtocolError, "the source sent '" + name +
                                                 "', which is not under the mirrored prefix '" +
                                                 settings_.prefix + "'");
    }
    return {};
  }

  void remove_local(const std::string& name, std::string_view why) {
    locals_.erase(name);
    streams_.erase(name);
    board_.erase_array(settings_.prefix, name);
    if (auto ok = client_.remove(name); ok) {
      spdlog::info("mirror '{}': removed '{}' ({})", settings_.prefix, name, why);
    } else if (ok.error().code() != ErrorCode::kNotFound) {
      spdlog::warn("mirror '{}': cannot remove '{}': {}", settings_.prefix, name,
                   ok.error().message());
    }
  }

  // After a (re)connect's inventory: local mirrors the source no longer has go.
  void drop_unseen(const std::set<std::string>& seen) {
    auto listed = client_.list(settings_.prefix);
    if (!listed) return;
    for (const auto& info : *listed) {
      if (!seen.contains(info.name)) remove_local(info.name, "gone on the source");
    }
  }

  // The local array for `b`: reused if its layout (and, when known, source id) matches; else
  // removed and created again. nullptr if it cannot be made (the reason is logged).
  Local* local_for(const ArrayBegin& b) {
    auto it = locals_.find(b.name);
    if (it == locals_.end()) {
      auto opened = client_.open(b.name, Access::kReadWrite);
      if (opened) {
        it = locals_.emplace(b.name, Local{std::move(*opened), "", std::nullopt}).first;
      }
    }
    if (it != locals_.end()) {
      const Local& l = it->second;
      const bool same_source = l.source_id.empty() ? b.version >= l.array.version()
                                                   : l.source_id == b.source_id;
      if (same_source && same_layout(l.array.info(), b)) {
        it->second.source_id = b.source_id;
        return &it->second;
      }
      remove_local(b.name, "recreated on the source");
    }
    ArraySpec spec;
    spec.dtype = b.dtype;
    spec.shape = b.shape;
    spec.order = b.order;
    spec.mode = b.mode & ~0222u;  // mirrors are read-only for everyone but the bridge
    auto created = client_.create(b.name, spec);
    if (!created) {
      spdlog::warn("mirror '{}': cannot create '{}': {}", settings_.prefix, b.name,
                   created.error().message());
      return nullptr;
    }
    if (created->info().nbytes != b.nbytes) {
      spdlog::warn("mirror '{}': '{}' is {} bytes here but {} on the source; not mirrored",
                   settings_.prefix, b.name, created->info().nbytes, b.nbytes);
      return nullptr;
    }
    spdlog::info("mirror '{}': created '{}' ({} bytes) from {}", settings_.prefix, b.name,
                 b.nbytes, settings_.peer);
    return &locals_.insert_or_assign(b.name, Local{std::move(*created), b.source_id, std::nullopt})
                .first->second;
  }

  void register_memory(Local& local) {
    auto data = local.array.mutable_bytes();
    if (!data || data->size() < kMinChunkBytes) return;  // small ones: one chunk or the stream
    auto memh = UcxMemory::map(channel_.endpoint().worker().context(), *data);
    if (!memh) {
      spdlog::warn("mirror '{}': '{}': {}", settings_.prefix, local.array.info().name,
                   memh.error().message());
      return;
    }
    local.memh.emplace(std::move(*memh));
  }

  // Transfer numbers only grow on a link: a peer that reuses one is refused (its chunks could
  // match another transfer's receives).
  Result<void> take_transfer(const ArrayBegin& b) {
    if (b.transfer <= last_transfer_) {
      return fail(ErrorCode::kProtocolError,
                  "peer link: transfer " + std::to_string(b.transfer) + " of '" + b.name +
                      "' is not after transfer " + std::to_string(last_transfer_));
    }
    last_transfer_ = b.transfer;
    return {};
  }

  // The bytes of transfer `b` into `data`: on the stream, or on the tag API in chunks straight
  // into the segment (chunked_transfer.hpp).
  Result<void> receive_data(const ArrayBegin& b, std::span<std::byte> data, ucp_mem_h memh) {
    if (auto ok = take_transfer(b); !ok) return ok;
    if (b.chunk_bytes == 0) return channel_.receive_bytes(data);
    return receive_chunks(channel_.endpoint(), data, b.transfer, b.chunk_bytes, memh);
  }

  Result<void> discard_data(const ArrayBegin& b) {
    if (auto ok = take_transfer(b); !ok) return ok;
    if (b.chunk_bytes == 0) return channel_.discard_bytes(b.nbytes);
    return discard_chunks(channel_.endpoint(), b.nbytes, b.transfer, b.chunk_bytes);
  }

  Result<void> receive_array(ArrayBegin begin) {
    if (auto ok = check_under_prefix(begin.name); !ok) return ok;
    Local* local = local_for(begin);
    if (local == nullptr) {
      if (auto ok = discard_data(begin); !ok) return ok;
      auto end = channel_.receive();
      if (!end) return std::unexpected(end.error());
      return {};
    }
    Array* target = &local->array;
    // Registered at its first chunked transfer (the chunked path is off by default on sources).
    if (begin.chunk_bytes != 0 && !local->memh) register_memory(*local);
    const ucp_mem_h memh = local->memh ? local->memh->get() : nullptr;
    MirroredArrayStatus status{begin.version, target->version(), Clock::now()};
    board_.set_array(settings_.prefix, begin.name, status);
    auto lock = target->lock(std::chrono::seconds(5));
    if (!lock) return std::unexpected(lock.error());
    auto data = target->mutable_bytes();
    if (!data) return std::unexpected(data.error());
    LiveFields& live = live_fields_of(*target);
    begin_write(live);
    // From here until the window closes readers of the mirror retry (read_consistent), so they
    // never see these bytes half-received; if the link fails midway the write is abandoned
    // (possibly torn until the next complete version arrives).
    for (;;) {
      // Every chunk of the transfer has landed before its ArrayEnd is read: the tag API and the
      // stream are not ordered with each other.
      auto received = receive_data(begin, *data, memh);
      if (!received) {
        abandon_write(live);
        return received;
      }
      auto m = channel_.receive(kLinkSilence, Arrival::kDue);
      auto* end = m ? std::get_if<ArrayEnd>(&*m) : nullptr;
      if (end == nullptr) {
        abandon_write(live);
        if (!m) return std::unexpected(m.error());
        return fail(ErrorCode::kProtocolError, "peer link: expected ArrayEnd");
      }
      if (end->end == TransferEnd::kCommit) {
        publish_version(live, begin.version);
        board_.set_array(settings_.prefix, begin.name,
                         MirroredArrayStatus{begin.version, begin.version, {}});
        return {};
      }
      if (end->end == TransferEnd::kTorn) {
        abandon_write(live);
        return {};
      }
      // kRetry: the window stays open; the same array follows again, consistent this time.
      auto again = channel_.receive();
      auto* next = again ? std::get_if<ArrayBegin>(&*again) : nullptr;
      if (next == nullptr || next->name != begin.name || !same_layout(target->info(), *next)) {
        abandon_write(live);
        if (!again) return std::unexpected(again.error());
        return fail(ErrorCode::kProtocolError, "peer link: a retry did not resend the array");
      }
      begin = std::move(*next);
    }
  }

  // A stream of the source: the local one of the same parameters, made (or taken over after a
  // bridge restart) with this bridge as its publisher.
  Result<void> begin_stream(const StreamBegin& b) {
    if (auto ok = check_under_prefix(b.name); !ok) return ok;
    if (auto it = streams_.find(b.name); it != streams_.end() && it->second.source_id == b.source_id) {
      return {};
    }
    streams_.erase(b.name);
    StreamSpec spec{b.slots, b.slot_bytes, b.history, b.max_subscribers, b.overflow,
                    b.mode & ~0222u};
    auto publisher = client_.create_stream(b.name, spec);
    if (!publisher && publisher.error().code() == ErrorCode::kAlreadyExists) {
      auto info = client_.stat(b.name);
      if (info && info->kind == ObjectKind::kStream && same_stream(info->stream, b)) {
        publisher = client_.open_publisher(b.name);  // ours, from before a bridge restart
      } else {
        remove_local(b.name, "recreated on the source");
        publisher = client_.create_stream(b.name, spec);
      }
    }
    if (!publisher) {
      spdlog::warn("mirror '{}': cannot make stream '{}': {}", settings_.prefix, b.name,
                   publisher.error().message());
      return {};
    }
    spdlog::info("mirror '{}': publishing stream '{}' from {}", settings_.prefix, b.name,
                 settings_.peer);
    streams_.insert_or_assign(b.name, LocalStream{std::move(*publisher), b.source_id});
    return {};
  }

  // One message: loaned in the local ring, received straight into the slot, published.
  Result<void> receive_message(const StreamMessage& m) {
    if (auto ok = check_under_prefix(m.name); !ok) return ok;
    auto it = streams_.find(m.name);
    if (it == streams_.end()) return channel_.discard_bytes(m.nbytes);
    auto loan = it->second.publisher.loan(m.dtype, m.shape, kLoanTimeout, m.order);
    if (!loan) {
      spdlog::warn("mirror '{}': stream '{}': message {} dropped: {}", settings_.prefix, m.name,
                   m.seq, loan.error().message());
      return channel_.discard_bytes(m.nbytes);
    }
    if (loan->bytes().size() != m.nbytes) {
      return fail(ErrorCode::kProtocolError,
                  "the source sent " + std::to_string(m.nbytes) + " bytes for a message of " +
                      std::to_string(loan->bytes().size()) + " bytes of stream '" + m.name + "'");
    }
    if (auto ok = channel_.receive_bytes(loan->bytes()); !ok) return ok;  // the loan is abandoned
    auto published = it->second.publisher.publish(std::move(*loan));
    if (!published) return std::unexpected(published.error());
    return {};
  }

  PeerChannel& channel_;
  Client& client_;
  const MirrorSettings& settings_;
  MirrorStatusBoard& board_;
  std::map<std::string, Local> locals_;
  std::map<std::string, LocalStream> streams_;
  std::uint64_t last_transfer_ = 0;  // the link's last transfer number (they only grow)
};

void sleep_unless_stopping(std::chrono::milliseconds total) {
  const auto until = Clock::now() + total;
  while (!g_stopping.load() && Clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace

void run_mirror_link(std::shared_ptr<UcxContext> context, const PeerKey& key,
                     const MirrorSettings& settings, MirrorStatusBoard& board) {
  constexpr std::chrono::milliseconds kFirstBackoff{100};
  constexpr std::chrono::milliseconds kMaxBackoff{5000};
  auto backoff = kFirstBackoff;
  ClientOptions options;
  options.socket_path = settings.broker_socket;
  options.client_name = "shmarray-bridge mirror";
  options.interrupt_check = stop_check;
  options.reconnect_attempts = 0;  // the bridge lives and dies with its broker
  board.set_link(settings.prefix, settings.peer, "connecting");
  while (!g_stopping.load()) {
    std::string why;
    {
      auto connection = TcpLink::connect(settings.peer, kLinkSilence);
      if (!connection) {
        why = connection.error().message();
      } else {
        PeerChannel control(*connection);
        auto shaken = handshake_as_mirror(control, key, settings.prefix);
        if (!shaken) {
          why = shaken.error().message();
          // Refused (wrong key, prefix not allowed) or another peer-link version: retrying soon
          // would not help.
          if (shaken.error().code() == ErrorCode::kPermissionDenied ||
              shaken.error().code() == ErrorCode::kFailedPrecondition) {
            board.set_link(settings.prefix, settings.peer, why);
            spdlog::error("mirror '{}' from {}: {}", settings.prefix, settings.peer, why);
            sleep_unless_stopping(kMaxBackoff);
            continue;
          }
        } else if (auto ucx = open_ucx_link(control, *connection, context, UCS_THREAD_MODE_SINGLE);
                   !ucx) {
          why = ucx.error().message();
        } else {
          connection->close();  // the link goes on over UCX
          PeerChannel channel(*ucx->endpoint);
          auto client = Client::connect(options);
          if (!client) {
            why = client.error().message();
          } else {
            backoff = kFirstBackoff;
            MirrorSession session(channel, *client, settings, board);
            auto ended = session.run();
            if (!ended) why = ended.error().message();
          }
        }
      }
    }
    if (g_stopping.load()) break;
    board.set_link(settings.prefix, settings.peer, "down: " + why);
    spdlog::warn("mirror '{}' from {}: link down ({}); reconnecting in {} ms", settings.prefix,
                 settings.peer, why, backoff.count());
    sleep_unless_stopping(backoff);
    backoff = std::min(backoff * 2, kMaxBackoff);
  }
}

}  // namespace shmarray::bridge
