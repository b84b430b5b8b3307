#include "broker_process.hpp"

#include <dirent.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <thread>

namespace shmarray::test {

BrokerProcess::BrokerProcess(std::vector<std::string> extra_args, std::string socket_path,
                             std::vector<std::string> command_prefix)
    : args_(std::move(extra_args)), prefix_(std::move(command_prefix)) {
  char tmpl[] = "/tmp/shmarray-test-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
  dir_ = tmpl;
  socket_path_ = socket_path.empty() ? dir_ + "/s.sock" : std::move(socket_path);
  start();
}

void BrokerProcess::start() {
  std::vector<std::string> argv{SHMARRAYD_PATH, "--socket", socket_path_, "--log-level", "warn"};
  argv.insert(argv.end(), args_.begin(), args_.end());
  argv.insert(argv.begin(), prefix_.begin(), prefix_.end());
  child_.emplace(ChildProcess::spawn(argv));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    if (Client::connect({.socket_path = socket_path_})) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ADD_FAILURE() << "shmarrayd did not become ready on " << socket_path_ << " within 10 s";
}

BrokerProcess::~BrokerProcess() {
  if (child_) stop(SIGKILL);
  for (const auto& name : segments()) ::shm_unlink(("/" + name).c_str());
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

Client BrokerProcess::client() const {
  auto c = Client::connect({.socket_path = socket_path_});
  if (!c) {
    ADD_FAILURE() << "cannot connect: " << c.error().message();
    std::abort();
  }
  return std::move(*c);
}

Client BrokerProcess::steady_client() const {
  auto c = Client::connect({.socket_path = socket_path_, .reconnect_attempts = 0});
  if (!c) {
    ADD_FAILURE() << "cannot connect: " << c.error().message();
    std::abort();
  }
  return std::move(*c);
}

ExitStatus BrokerProcess::stop(int signo) {
  if (!child_) return {};
  child_->kill(signo);
  ExitStatus status = child_->wait(std::chrono::seconds(10));
  child_.reset();
  return status;
}

void BrokerProcess::restart() {
  if (child_) stop(SIGTERM);
  start();
}

std::vector<std::string> BrokerProcess::segments() const {
  const std::string prefix = segment_prefix(socket_path_).substr(1);
  std::vector<std::string> out;
  if (DIR* d = ::opendir("/dev/shm")) {
    while (const dirent* e = ::readdir(d)) {
      if (std::string(e->d_name).rfind(prefix, 0) == 0) out.emplace_back(e->d_name);
    }
    ::closedir(d);
  }
  return out;
}


RunResult run_helper(const std::vector<std::string>& args, std::chrono::milliseconds timeout) {
  std::vector<std::string> argv{SHMARRAY_HELPER_PATH};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, timeout, segv_passthrough_env());
}

ChildProcess spawn_helper(const std::vector<std::string>& args) {
  std::vector<std::string> argv{SHMARRAY_HELPER_PATH};
  argv.insert(argv.end(), args.begin(), args.end());
  return ChildProcess::spawn(argv, segv_passthrough_env());
}

void BrokerTest::SetUp() { broker_ = std::make_unique<BrokerProcess>(); }

void BrokerTest::TearDown() {
  if (broker_->running()) {
    const ExitStatus status = broker_->stop(SIGTERM);
    EXPECT_TRUE(status.ok()) << "shmarrayd on SIGTERM: " << status.describe();
  }
  EXPECT_TRUE(broker_->segments().empty())
      << "segments left in /dev/shm: " << broker_->segments().size() << " (first: "
      << broker_->segments().front() << ")";
  broker_.reset();
}

}  // namespace shmarray::test
