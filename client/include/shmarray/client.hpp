#pragma once
// shmarray::Client: one connection to the broker (shmarrayd), for the control plane: create,
// open, remove, list, stat. Array bytes never travel over this connection; the broker hands over
// a descriptor that the client maps and closes at once.
//
// Thread safety: a Client may be shared between threads; calls are serialised on its connection.
// Errors: every call returns Result<T>; kUnavailable means the broker cannot be reached (the
// message names the socket and how to start the broker).
// Broker restarts: arrays already mapped keep working; the next call reconnects (see
// ClientOptions::reconnect_attempts). A request whose reply was lost with the old broker is
// retried once, so a create (or remove) may already have been applied: its retry then fails with
// kAlreadyExists (kNotFound) and a message saying so. The new broker does not count this client's
// earlier opens in open_handles.
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shmarray/array.hpp"
#include "shmarray/error.hpp"
#include "shmarray/frame.hpp"
#include "shmarray/mirror_types.hpp"
#include "shmarray/stream.hpp"
#include "shmarray/types.hpp"

namespace shmarray {

struct ClientOptions {
  // Broker socket; empty means the default ($SHMARRAY_SOCKET, else your own broker's
  // $XDG_RUNTIME_DIR/shmarray.sock or /tmp/shmarray-$UID/shmarray.sock if it exists, else the
  // system broker's /run/shmarray/shmarray.sock if that exists: client_socket_path()).
  std::string socket_path{};
  // Longest wait for any one reply from the broker.
  std::chrono::milliseconds request_timeout{10'000};
  // Shown in the broker's debug log.
  std::string client_name = "shmarray-client";
  // When the broker went away (restarted or crashed), the next call reconnects: up to this many
  // connection attempts, `reconnect_delay` apart, then kUnavailable naming the socket. 0: never
  // reconnect. A request is retried once on the new connection when the old one was gone before
  // it was sent, or closed before any reply; see Client for what that means for create/remove.
  int reconnect_attempts = 3;
  std::chrono::milliseconds reconnect_delay{100};
  // The client checks who runs the broker before sending anything (SO_PEERCRED): accepted are this
  // process's own uid, root, and this uid (unset: $SHMARRAY_BROKER_UID if set), for a system
  // broker run as a dedicated user. Any other broker may be an impostor that another user started
  // on the socket path first: connect (and every reconnect) fails with kPermissionDenied naming
  // both uids.
  std::optional<uid_t> broker_uid = std::nullopt;
  // Runs on the calling thread about every 50 ms while a call waits for the broker (its reply,
  // an open's OpenOptions::wait). An error it returns (use kCancelled) ends that call at once
  // with this error; the connection stays usable (a late reply is dropped, as after a timeout),
  // and a create or remove already sent may still be applied. Unset: calls wait for their reply
  // or their timeout. For bindings: the Python module checks for Ctrl-C here.
  std::function<Result<void>()> interrupt_check = nullptr;
};

struct OpenOptions {
  // Pre-fault the whole data range's page tables in one call (MADV_POPULATE_READ/_WRITE) instead
  // of one fault per page on first touch. Worth it when the whole array will be read.
  bool populate = false;
  // > 0: if the name does not exist yet, wait up to this long for someone to create it (the
  // broker wakes the request; no polling). kDeadlineExceeded when it does not appear in time.
  std::chrono::milliseconds wait{0};
  // Set: the array must be owned by this uid (another user may have taken the name first on a
  // shared broker). kPermissionDenied naming the real owner otherwise, nothing mapped; with
  // `wait`, an array of another owner created meanwhile fails the open the same way at once (it
  // does not keep waiting: the name stays taken until that array is removed).
  std::optional<uid_t> owner = std::nullopt;
};

class Client {
 public:
  // Connects and negotiates the protocol version. kUnavailable if no broker listens there;
  // kPermissionDenied if the socket does not admit this user (shmarrayd --socket-mode/-group) or
  // the broker runs as a uid this client does not trust (ClientOptions::broker_uid);
  // kInvalidArgument if $SHMARRAY_BROKER_UID is not a uid.
  [[nodiscard]] static Result<Client> connect(ClientOptions options = {});

  Client(Client&&) noexcept;
  Client& operator=(Client&&) noexcept;
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
  ~Client();

  // Creates a new zero-filled array and maps it read-write. kAlreadyExists if the name is taken,
  // kInvalidArgument for a bad name/dtype/shape, kResourceExhausted when a limit or /dev/shm is
  // full.
  [[nodiscard]] Result<Array> create(std::string_view name, const ArraySpec& spec);
  // Maps an existing array. kNotFound if absent (see OpenOptions::wait), kPermissionDenied if the
  // caller may not have that access or the array is not owned by OpenOptions::owner.
  [[nodiscard]] Result<Array> open(std::string_view name, Access access,
                                   const OpenOptions& options = {});
  // A frame (shmarray/frame.hpp): create makes a zero-filled table of spec.columns x spec.rows
  // (errors as create, plus kInvalidArgument for a bad spec); open_frame maps one (errors as
  // open, plus kInvalidArgument if `name` is an array, not a frame). A mirror at version 0 has
  // no table yet (docs/across-hosts.md): open_frame then also waits for its first version within
  // options.wait (kDeadlineExceeded), or without a wait fails with kFailedPrecondition.
  [[nodiscard]] Result<Frame> create_frame(std::string_view name, const FrameSpec& spec);
  [[nodiscard]] Result<Frame> open_frame(std::string_view name, Access access,
                                         const OpenOptions& options = {});
  // Removes the name at once; existing mappings stay valid until their Arrays are destroyed.
  [[nodiscard]] Result<void> remove(std::string_view name);
  // Arrays whose names start with `prefix` (all when empty), sorted by name.
  [[nodiscard]] Result<std::vector<ArrayInfo>> list(std::string_view prefix = {});
  [[nodiscard]] Result<ArrayInfo> stat(std::string_view name);
  // Sets the array's permission bits (`mode` within 0777, as for files). Only the owner or root
  // may: kPermissionDenied otherwise, kNotFound if absent, kInvalidArgument for a bad name or
  // mode. Applies to later opens; descriptors and mappings already granted are not revoked.
  [[nodiscard]] Result<void> chmod(std::string_view name, std::uint32_t mode);

  // Streams (stream.hpp, docs/streams.md).
  // Creates a stream and becomes its publisher. kAlreadyExists if the name is taken,
  // kInvalidArgument for a bad name or spec, kResourceExhausted when a limit or /dev/shm is full.
  [[nodiscard]] Result<Publisher> create_stream(std::string_view name, const StreamSpec& spec);
  // Becomes the publisher of a stream whose publisher is gone (needs write permission); the
  // sequence continues after the last published message. kFailedPrecondition while its publisher
  // lives, kNotFound, kPermissionDenied.
  [[nodiscard]] Result<Publisher> open_publisher(std::string_view name);
  // Joins a stream (needs read permission). kNotFound (see SubscribeOptions::wait),
  // kPermissionDenied, kResourceExhausted when the stream has max_subscribers subscribers or its
  // ring cannot serve max_held more held samples.
  [[nodiscard]] Result<Subscriber> subscribe(std::string_view name,
                                             const SubscribeOptions& options = {});

  // Mirrors across hosts (docs/across-hosts.md). mirror_add makes every array whose name starts
  // with `prefix` on the broker serving peers at `peer` (HOST:PORT) appear here under the same
  // name, read-only; persisted in the broker's state directory. mirror_remove stops it and
  // removes the mirrored arrays. Only the broker's user or root may: kPermissionDenied otherwise;
  // kAlreadyExists / kNotFound for a prefix already / not mirrored; kFailedPrecondition when the
  // broker has no --peer-key. mirrors() lists each mirror with its link state and lags.
  [[nodiscard]] Result<std::vector<MirrorInfo>> mirror_add(std::string_view prefix,
                                                           std::string_view peer);
  [[nodiscard]] Result<std::vector<MirrorInfo>> mirror_remove(std::string_view prefix);
  [[nodiscard]] Result<std::vector<MirrorInfo>> mirrors();
  // For shmarray-bridge only (the broker refuses it from any other process): the bridge's view of
  // every mirror link, shown by mirrors(), `stat` and `ls`.
  [[nodiscard]] Result<void> report_mirrors(std::vector<MirrorInfo> report);

  // The socket this client is connected to.
  [[nodiscard]] const std::string& socket_path() const noexcept;
  // Protocol version agreed with the broker, and the broker's process id (of the current
  // connection: a reconnect after a broker restart updates both).
  [[nodiscard]] std::uint16_t protocol_version() const noexcept;
  [[nodiscard]] std::uint32_t broker_pid() const noexcept;

 private:
  class Impl;
  explicit Client(std::unique_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;  // shared with the Publishers it made (stream membership)
};

}  // namespace shmarray
