#pragma once
// What the iceoryx benchmarks share: runtime start-up with a clear message when RouDi is not
// running, and waiting for a subscription to be connected (RouDi connects ports asynchronously).
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include "bench_util.hpp"
#include "iceoryx_hoofs/log/logmanager.hpp"
#include "iceoryx_posh/runtime/posh_runtime.hpp"

namespace bench {

// One runtime per process (call it after fork()). A child must leave with std::exit() after its
// ports are destroyed, never _exit(): RouDi learns of the exit from the runtime's destructor, and
// aborts at its own shutdown if it still counts a process that is gone.
inline void init_iceoryx_runtime(const std::string& base) {
  iox::log::LogManager::GetLogManager().SetDefaultLogLevel(iox::log::LogLevel::kWarn);
  const std::string name = base + "-" + std::to_string(::getpid());
  iox::runtime::PoshRuntime::initRuntime(
      iox::RuntimeName_t(iox::cxx::TruncateToCapacity, name.c_str()));
}

template <class Publisher>
void wait_for_subscriber(const Publisher& pub, std::chrono::seconds limit = std::chrono::seconds(20)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pub.hasSubscribers()) {
    if (std::chrono::steady_clock::now() > deadline) die("iceoryx: the subscriber never connected");
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

}  // namespace bench
