#include "page_worker.hpp"

#include <boost/asio/post.hpp>

namespace shmarray::server {

PageWorker::PageWorker(boost::asio::io_context& io)
    : io_(io), worker_([this](const std::stop_token& stop) { run(stop); }) {}

PageWorker::~PageWorker() {
  worker_.request_stop();
  wake_.notify_all();
  if (worker_.joinable()) worker_.join();
  // Queued releases close with jobs_ (their names are already gone); queued creates are dropped.
}

void PageWorker::create(std::string shm_name, ArrayInfo info, Created done) {
  push(Job{std::move(shm_name), std::move(info), std::move(done), {}});
}

void PageWorker::release(UniqueFd last_reference) {
  push(Job{{}, {}, {}, std::move(last_reference)});
}

void PageWorker::push(Job job) {
  {
    std::lock_guard lock(mutex_);
    jobs_.push_back(std::move(job));
  }
  wake_.notify_one();
}

void PageWorker::run(const std::stop_token& stop) {
  for (;;) {
    Job job;
    {
      std::unique_lock lock(mutex_);
      if (!wake_.wait(lock, stop, [&] { return !jobs_.empty(); })) return;  // stop requested
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    if (!job.done) {
      job.release_fd.reset();  // frees the pages here when it was the last reference
      continue;
    }
    auto segment = Segment::create(job.shm_name, job.info);
    boost::asio::post(io_, [done = std::move(job.done), result = std::move(segment)]() mutable {
      done(std::move(result));
    });
  }
}

}  // namespace shmarray::server
