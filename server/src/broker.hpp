#pragma once
// The broker: accepts connections on the Unix socket, owns the registry and the segments, and
// answers control-plane requests. One Asio io_context, one thread.
#include <sys/resource.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "bridge_supervisor.hpp"
#include "catalogue.hpp"
#include "config.hpp"
#include "mirror_table.hpp"
#include "pending_opens.hpp"
#include "registry.hpp"
#include "page_worker.hpp"
#include "segment_pool.hpp"
#include "session.hpp"
#include "stream_table.hpp"
#include "shmarray/unique_fd.hpp"
#include "shmarray/wire/frame.hpp"
#include "shmarray/wire/messages.hpp"

namespace shmarray::server {

class Broker {
 public:
  Broker(boost::asio::io_context& io, Config config);
  ~Broker();

  // Takes the socket (refusing if a live broker owns it, replacing a stale file), recovers the
  // arrays left by a previous run, and starts accepting.
  [[nodiscard]] Result<void> start();
  // Graceful stop: no new connections, pending waits answered, replies flushed, ephemeral arrays
  // removed, socket file unlinked. The io_context then runs out of work.
  // `on_stopped` runs once the last connection has closed.
  void stop(std::function<void()> on_stopped);

  // Session callbacks.
  void handle(Session& session, wire::Frame frame);
  void on_session_closed(Session& session);
  // Bytes of replies queued on all connections together; Session keeps it up to date.
  [[nodiscard]] std::size_t& queued_reply_bytes() noexcept { return queued_reply_bytes_; }
  // All queues together passed --max-pending-reply-bytes-total: closes the connections holding
  // the most until they are back under it (not the one whose reply crossed it: that may be a
  // well-behaved client with a small queue).
  void shed_queued_replies();

  [[nodiscard]] const std::string& socket_path() const noexcept { return config_.socket_path; }
  [[nodiscard]] const std::string& segment_prefix() const noexcept { return segment_prefix_; }
  // For the service manager's STATUS= line.
  [[nodiscard]] std::size_t array_count() const noexcept { return registry_.size(); }
  [[nodiscard]] std::size_t connection_count() const noexcept { return sessions_.size(); }

 private:
  void accept();
  // accept() ran out of descriptors: accepts one connection with the spare descriptor, tells it
  // why (kResourceExhausted) and closes it. False when that was impossible too (back off).
  [[nodiscard]] bool refuse_without_descriptors();
  // Sends a connection the kResourceExhausted "out of file descriptors" ErrorReply.
  void refuse_for_descriptors(int connection_fd);
  void recover();
  Result<void> take_socket();

  void on_hello(Session& s, const wire::Frame& f);
  // Arrays (array_handlers.cpp).
  void on_create(Session& s, const wire::Frame& f);
  // Hands a checked create to the page worker; finishes it on the loop (retrying once after a sweep
  // if /dev/shm was full), or drops the segment if the client left meanwhile.
  void create_off_loop(Session& s, std::uint64_t request_id, ArrayInfo info, bool retried = false);
  // Records, answers and announces a created segment (or reports why it could not be created).
  void finish_create(Session& s, std::uint64_t request_id, ArrayInfo info, Result<Segment> segment);
  // The segment of a small create: a pooled one named for `info` when the pool has one of its
  // size, else a fresh one (Segment::create).
  [[nodiscard]] Result<Segment> make_segment(const ArrayInfo& info);
  void on_open(Session& s, const wire::Frame& f);
  void on_remove(Session& s, const wire::Frame& f);
  void on_list(Session& s, const wire::Frame& f);
  void on_stat(Session& s, const wire::Frame& f);
  void on_chmod(Session& s, const wire::Frame& f);
  void on_watch(Session& s, const wire::Frame& f);
  void on_close(Session& s, const wire::Frame& f);

  // Streams (stream_handlers.cpp, docs/streams.md).
  void on_create_stream(Session& s, const wire::Frame& f);
  void on_open_publisher(Session& s, const wire::Frame& f);
  void on_subscribe(Session& s, const wire::Frame& f);
  void on_stream_members(Session& s, const wire::Frame& f);
  void on_subscriber_state(Session& s, const wire::Frame& f);
  void on_detach(Session& s, const wire::Frame& f);
  // After a restart: a subscriber of the previous broker hands its state page back
  // (stream_readmission.cpp).
  void on_readmit_subscriber(Session& s, const wire::Frame& f);
  // The stream's live record; made on first use (after a restart: from its control block), when
  // it also gets this broker's epoch.
  StreamRuntime& stream_runtime(ArrayRecord& record);
  // At start: every recovered stream's runtime, so that each gets this broker's epoch at once.
  void adopt_streams();
  // Whether `s` is the stream's publisher; a publisher adopted after a restart becomes the
  // connection of the same pid.
  [[nodiscard]] bool is_publisher(const Session& s, StreamRuntime& runtime);
  // pwrite of one 32-bit word of the stream's control block, on a size-checked descriptor.
  void write_stream_word(ArrayRecord& record, std::size_t offset, std::uint32_t value);
  // A subscriber joined or left: bump the membership generation the publisher watches.
  void bump_members(ArrayRecord& record, StreamRuntime& runtime);
  // The connection is gone: it no longer publishes or subscribes anywhere.
  void release_stream_session(const Session& s);
  // Live stream fields (last seq, publisher, subscribers) of `info`.
  void describe_stream(ArrayRecord& record, ArrayInfo& info);

  // Mirrors across hosts (mirror_handlers.cpp, docs/across-hosts.md).
  // Loads the mirror table, checks --peer-key and starts the bridge if anything needs it.
  [[nodiscard]] Result<void> start_mirrors();
  void on_mirror(Session& s, const wire::Frame& f);
  // (Re)starts the bridge with the current configuration, or stops it when nothing needs it.
  void refresh_bridge();
  // The session is the bridge this broker spawned (SO_PEERCRED pid).
  [[nodiscard]] bool is_bridge(const Session& s) const noexcept;
  // kPermissionDenied for a write open of a mirror by anyone but the bridge; else nullopt.
  [[nodiscard]] std::optional<Error> mirror_refusal(const Session& s, const ArrayInfo& info,
                                                    Access access) const;
  // kPermissionDenied for a create under a mirrored prefix by anyone but the bridge.
  [[nodiscard]] std::optional<Error> mirror_create_refusal(const Session& s,
                                                           const std::string& name) const;
  // The bridge reads arrays under --peer-allow whatever their mode (source role) and opens
  // mirrors read-write (mirror role).
  [[nodiscard]] bool bridge_may_open(const Session& s, const ArrayInfo& info, Access access) const;
  // mirror_of, link state and lags of a mirror (nothing for other arrays).
  void describe_mirror(ArrayInfo& info) const;

  // Shared by array and stream requests (array_handlers.cpp).
  // Grants `access` to `record` for `s` and sends the OpenReply with a fresh descriptor; refuses
  // (kPermissionDenied) when `owner` is set and the array is owned by another uid.
  void grant(Session& s, std::uint64_t request_id, ArrayRecord& record, Access access,
             std::optional<std::uint32_t> owner = std::nullopt);
  void wake_pending_opens(const std::string& name);
  // One timer for all parked opens: armed for the earliest deadline.
  void arm_parked_timer();
  void expire_parked_opens();
  void notify_watchers(wire::EventKind kind, const ArrayRecord& record);
  void remove_array(const std::string& name, std::string_view why);
  // Checks the segment's size (Segment::enforce_size) on `fd`, or on a descriptor of its own when
  // `fd` is -1: truncates a grown one back, marks a shrunk one damaged (logging each once per
  // array). kDataLoss (record.info.damaged) if the array is damaged.
  [[nodiscard]] Result<void> check_segment(ArrayRecord& record, int fd = -1);
  // Before retrying a create that found /dev/shm full: truncates back every grown segment.
  void sweep_grown_segments();
  // The record's info with the live version (and stream fields) read from the segment, after
  // checking its size; `checked_fd`: a descriptor of it whose size check_segment just passed.
  [[nodiscard]] ArrayInfo describe_live(ArrayRecord& record, int checked_fd = -1);

  boost::asio::io_context& io_;
  Config config_;
  std::string segment_prefix_;
  Registry registry_;
  StreamTable streams_;
  boost::asio::local::stream_protocol::acceptor acceptor_;
  UniqueFd lock_fd_;
  UniqueFd spare_fd_;  // kept free for refusing connections when descriptors run out
  rlim_t descriptor_limit_ = RLIM_INFINITY;  // RLIMIT_NOFILE at start
  std::optional<Catalogue> catalogue_;  // opened once the lock is held
  std::map<SessionId, std::shared_ptr<Session>> sessions_;
  PendingOpens pending_opens_{PendingOpens::Limits{config_.max_parked_opens,
                                                   config_.max_parked_opens_per_connection}};
  std::optional<boost::asio::steady_timer> parked_timer_;  // created on first use
  std::optional<PendingOpens::Clock::time_point> parked_timer_at_;  // set while it is armed
  std::size_t queued_reply_bytes_ = 0;
  // Creates whose pages are being reserved off the loop, by array name: the name is taken and
  // their bytes count against the limits until they finish.
  struct CreateInFlight {
    std::string shm_name;
    std::uint64_t bytes = 0;
  };
  std::map<std::string, CreateInFlight> creating_;
  std::uint64_t creating_bytes_ = 0;
  std::optional<PageWorker> page_worker_;  // started by the first big create or remove
  std::unique_ptr<SegmentPool> segment_pool_;  // started by start(); null: no pool
  std::size_t watchers_ = 0;
  bool trim_posted_ = false;
  std::size_t freed_since_trim_ = 0;  // estimated bytes connections let go of
  SessionId next_session_id_ = 1;
  bool stopping_ = false;
  std::function<void()> on_stopped_;
  bool socket_owned_ = false;
  std::optional<MirrorTable> mirrors_;       // loaded by start()
  std::optional<BridgeSupervisor> bridge_;   // made when a peer link is first needed
};

}  // namespace shmarray::server
