#pragma once
// Tells the broker that this process no longer holds an array, so that its open_handles counts
// what is open now. ~MappedSegment (the process's last Array of the array went away) calls
// released() for each Client that opened it; that Client sends a CloseRequest at once if it is
// idle, else before its next request. Never blocks the releasing thread on the connection, and
// is harmless once the Client (or the broker) is gone: the broker forgets a closed connection's
// opens anyway. Thread-safe.
#include <functional>
#include <mutex>
#include <string>
#include <vector>

namespace shmarray::detail {

class CloseNotifier {
 public:
  // Any thread: queues array `id` and runs the attached send_now (if any).
  void released(std::string id);
  // The Client, holding its request mutex: the queued ids, to send.
  [[nodiscard]] std::vector<std::string> take();
  // Nothing queued now.
  [[nodiscard]] bool empty();
  // The Client: `send_now` must not block (it try-locks the Client's request mutex). detach()
  // (from ~Client) waits for a send_now in progress; later releases are only queued.
  void attach(std::function<void()> send_now);
  void detach();

 private:
  std::mutex attach_mutex_;  // held while send_now runs
  std::function<void()> send_now_;
  std::mutex queue_mutex_;
  std::vector<std::string> queued_;
};

}  // namespace shmarray::detail
