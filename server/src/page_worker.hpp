#pragma once
// Reserves and releases the pages of big segments off the event loop. Reserving the pages of a new
// segment (posix_fallocate on tmpfs zeroes them) costs ~0.2 ms per MiB on the dev VM, 3 s for a
// 16 GiB array; releasing them (dropping the last reference frees every page)
// costs a fraction of that. The loop unlinks a removed segment's name at once (so it is gone from
// /dev/shm when the remove is answered) while holding a descriptor, and the worker closes that
// last reference. With one event-loop thread the broker would serve nobody else
// meanwhile, so it hands such work to this worker and finishes creates (catalogue, reply, events)
// on the loop when the worker is done.
//
// One worker thread: jobs run in order (the pages come from the same tmpfs, so parallel
// reservation would not finish sooner), never behind the loop's other requests.
//
// Lifetime: the destructor finishes the job under way, closes the queued releases and drops the
// queued creates. A create whose completion never ran on the loop (it stopped first) is the
// broker's to clean up (Broker::~Broker unlinks the segments of creates still in flight), so no
// segment outlives the broker unrecorded.
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include <boost/asio/io_context.hpp>

#include "segment.hpp"
#include "shmarray/unique_fd.hpp"
#include "shmarray/types.hpp"

namespace shmarray::server {

class PageWorker {
 public:
  using Created = std::function<void(Result<Segment>)>;

  explicit PageWorker(boost::asio::io_context& io);
  ~PageWorker();
  PageWorker(const PageWorker&) = delete;
  PageWorker& operator=(const PageWorker&) = delete;

  // Runs Segment::create(shm_name, info) on the worker, then `done(result)` on the io_context.
  void create(std::string shm_name, ArrayInfo info, Created done);
  // Closes, on the worker, the last descriptor of a segment the loop has already unlinked: the
  // kernel frees its pages there (if no client still maps it), not on the event loop.
  void release(UniqueFd last_reference);

 private:
  struct Job {
    std::string shm_name;
    ArrayInfo info;
    Created done;          // empty: a release
    UniqueFd release_fd;   // the descriptor a release closes
  };
  void push(Job job);
  void run(const std::stop_token& stop);

  boost::asio::io_context& io_;
  std::mutex mutex_;
  std::condition_variable_any wake_;
  std::deque<Job> jobs_;
  std::jthread worker_;  // last: started after, and joined before, the members it uses
};

}  // namespace shmarray::server
