// Mirrors across hosts, the broker's part (docs/across-hosts.md): the mirror table, the bridge
// process that carries the bytes, and who may do what to mirrored names. The broker itself still
// never maps a segment: the bridge does, as a client recognised by its pid.
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "bridge/peer_key.hpp"
#include "bridge/peer_messages.hpp"
#include "broker.hpp"
#include "log_text.hpp"
#include "shmarray/wire/messages.hpp"

namespace shmarray::server {

Result<void> Broker::start_mirrors() {
  auto table = MirrorTable::load(config_.socket_path + ".mirrors");
  if (!table) return std::unexpected(table.error());
  mirrors_.emplace(std::move(*table));
  for (const auto& [prefix, peer] : config_.mirrors) {
    if (auto ok = bridge::validate_prefix(prefix); !ok) {
      return fail(ErrorCode::kInvalidArgument, "--mirror " + prefix + "=" + peer + ": " +
                                                   ok.error().message());
    }
    const MirrorInfo* known = mirrors_->mirror_of(prefix);
    if (known != nullptr && known->prefix == prefix && known->peer == peer) continue;
    if (auto ok = mirrors_->add(prefix, peer, false); !ok) {
      return fail(ErrorCode::kInvalidArgument,
                  "--mirror " + prefix + "=" + peer + ": " + ok.error().message());
    }
  }
  if (config_.peer_listen.empty() && mirrors_->empty()) return {};
  if (config_.peer_key.empty()) {
    return fail(ErrorCode::kInvalidArgument,
                "--peer-listen and --mirror need --peer-key FILE, the key shared with the peer "
                "brokers (make one with: head -c 32 /dev/urandom > KEY; chmod 600 KEY)");
  }
  if (auto key = bridge::PeerKey::load(config_.peer_key, ::geteuid()); !key) {
    return std::unexpected(key.error());
  }
  refresh_bridge();
  return {};
}

void Broker::refresh_bridge() {
  if (config_.peer_listen.empty() && (!mirrors_ || mirrors_->empty())) {
    if (bridge_) bridge_->run({});
    return;
  }
  if (!bridge_) {
    bridge_.emplace(io_, config_.bridge_program.empty() ? default_bridge_program()
                                                        : config_.bridge_program);
  }
  std::vector<std::string> args{"--socket", config_.socket_path, "--peer-key", config_.peer_key,
                                "--log-level", config_.log_level};
  if (!config_.peer_listen.empty()) {
    args.insert(args.end(), {"--peer-listen", config_.peer_listen});
  }
  for (const auto& prefix : config_.peer_allow) args.insert(args.end(), {"--peer-allow", prefix});
  for (const auto& m : mirrors_->bridge_arguments()) args.insert(args.end(), {"--mirror", m});
  bridge_->run(std::move(args));
}

bool Broker::is_bridge(const Session& s) const noexcept {
  // The pid alone is not enough: a local process's connection outlives the process (its
  // descriptor passed on), and a later bridge may be given that pid. The bridge connects after
  // it was spawned.
  return bridge_ && bridge_->pid() > 0 && static_cast<pid_t>(s.peer().pid) == bridge_->pid() &&
         s.connected_at() >= bridge_->started();
}

std::optional<Error> Broker::mirror_refusal(const Session& s, const ArrayInfo& info,
                                            Access access) const {
  if (access != Access::kReadWrite || !mirrors_ || is_bridge(s)) return std::nullopt;
  const MirrorInfo* m = mirrors_->mirror_of(info.name);
  if (m == nullptr) return std::nullopt;
  return Error(ErrorCode::kPermissionDenied,
               "'" + info.name + "' is a mirror of " + m->peer +
                   " (read-only here): write it on the source broker, or stop mirroring with "
                   "'shmarray mirror rm " + m->prefix + "'");
}

std::optional<Error> Broker::mirror_create_refusal(const Session& s,
                                                   const std::string& name) const {
  if (!mirrors_ || is_bridge(s)) return std::nullopt;
  const MirrorInfo* m = mirrors_->mirror_of(name);
  if (m == nullptr) return std::nullopt;
  return Error(ErrorCode::kPermissionDenied,
               "names under '" + m->prefix + "' are mirrored from " + m->peer +
                   ": create '" + name + "' on the source broker, or use another name");
}

bool Broker::bridge_may_open(const Session& s, const ArrayInfo& info, Access access) const {
  if (!is_bridge(s)) return false;
  if (mirrors_ && mirrors_->mirror_of(info.name) != nullptr) return true;  // mirror role
  return access == Access::kReadOnly && bridge::prefix_allowed(info.name, config_.peer_allow);
}

void Broker::describe_mirror(ArrayInfo& info) const {
  if (!mirrors_) return;
  const MirrorInfo* m = mirrors_->mirror_of(info.name);
  if (m == nullptr) return;
  info.mirror_of = m->peer;
  info.mirror_link = m->link;
  if (const MirroredArray* a = mirrors_->array_status(info.name)) {
    info.mirror_source_version = a->source_version;
    info.mirror_lag_versions =
        a->source_version > info.version ? a->source_version - info.version : 0;
    info.mirror_lag_ms = info.mirror_lag_versions > 0 ? a->lag_ms : 0;
  }
}

void Broker::on_mirror(Session& s, const wire::Frame& f) {
  auto m = wire::decode<wire::MirrorRequest>(f.body);
  const auto id = f.header.request_id;
  if (!m) {
    s.send_error(id, m.error());
    return s.close_after_flush();
  }
  if (!mirrors_) return s.send_error(id, Error(ErrorCode::kUnavailable, "the broker is starting"));
  const auto reply = [&] { s.send(wire::encode_message(wire::MirrorReply{mirrors_->list()}, id)); };
  switch (m->op) {
    case wire::MirrorOp::kList: return reply();
    case wire::MirrorOp::kReport:
      if (!is_bridge(s)) {
        return s.send_error(id, Error(ErrorCode::kPermissionDenied,
                                      "only the broker's own shmarray-bridge reports mirrors"));
      }
      mirrors_->apply_report(m->report);
      return reply();
    case wire::MirrorOp::kAdd:
    case wire::MirrorOp::kRemove: break;
  }
  if (s.peer().uid != 0 && s.peer().uid != ::geteuid()) {
    return s.send_error(id, Error(ErrorCode::kPermissionDenied,
                                  "only the broker's user (uid " + std::to_string(::geteuid()) +
                                      ") or root may add or remove mirrors"));
  }
  if (auto ok = bridge::validate_prefix(m->prefix); !ok) return s.send_error(id, ok.error());
  if (m->op == wire::MirrorOp::kRemove) {
    if (auto ok = mirrors_->remove(m->prefix); !ok) return s.send_error(id, ok.error());
    std::vector<std::string> names;
    for (const ArrayRecord* r : registry_.with_prefix(m->prefix)) names.push_back(r->info.name);
    for (const auto& name : names) remove_array(name, "its mirror was removed");
    spdlog::info("mirror '{}' removed by pid {} ({} arrays removed)", m->prefix, s.peer().pid,
                 names.size());
    refresh_bridge();
    return reply();
  }
  if (config_.peer_key.empty()) {
    return s.send_error(id, Error(ErrorCode::kFailedPrecondition,
                                  "this broker has no --peer-key: restart shmarrayd with "
                                  "--peer-key FILE (the key shared with the source broker)"));
  }
  if (m->peer.find(':') == std::string::npos || m->peer.size() > 300) {
    return s.send_error(id, Error(ErrorCode::kInvalidArgument,
                                  "'" + m->peer + "' is not HOST:PORT (the source's --peer-listen)"));
  }
  for (const ArrayRecord* r : registry_.with_prefix(m->prefix)) {
    return s.send_error(id, Error(ErrorCode::kAlreadyExists,
                                  "'" + r->info.name + "' already exists here under '" +
                                      m->prefix + "': remove the local arrays under it first"));
  }
  if (auto ok = mirrors_->add(m->prefix, m->peer); !ok) return s.send_error(id, ok.error());
  spdlog::info("mirror '{}' from {} added by pid {}", m->prefix, log_text(m->peer), s.peer().pid);
  refresh_bridge();
  reply();
}

}  // namespace shmarray::server
