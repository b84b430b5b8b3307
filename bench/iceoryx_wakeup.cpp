// iceoryx 2.0 publish -> take latency for a 64-byte payload between two processes, measured like
// bench_wakeup (ping-pong, one way = round trip / 2, p50/p99): loan 64 bytes, write them,
// publish; the other side takes the sample, releases it and answers the same way. Two ways to
// wait for the sample:
//   WaitSet    the blocking wait iceoryx applications use (a semaphore in shared memory)
//   spin 20 us, then WaitSet   take() in a loop for up to 20 us before blocking: the same policy
//                              as shmarray's default wait (spin 20 us, then futex)
// Needs iox-roudi running (bench/run.sh starts one). Appends to the wakeup CSV.
#include <sys/wait.h>

#include <CLI/CLI.hpp>
#include <cstring>

#include "bench_util.hpp"
#include "iceoryx_common.hpp"
#include "iceoryx_posh/popo/untyped_publisher.hpp"
#include "iceoryx_posh/popo/untyped_subscriber.hpp"
#include "iceoryx_posh/popo/wait_set.hpp"

namespace {

using namespace bench;

constexpr std::uint32_t kPayload = 64;
const iox::capro::ServiceDescription kPing{"shmarray-bench", "wakeup", "ping"};
const iox::capro::ServiceDescription kPong{"shmarray-bench", "wakeup", "pong"};

struct Endpoint {
  iox::popo::UntypedPublisher pub;
  iox::popo::UntypedSubscriber sub;
  iox::popo::WaitSet<> waitset;

  Endpoint(const iox::capro::ServiceDescription& out, const iox::capro::ServiceDescription& in)
      : pub(out), sub(in) {
    if (waitset.attachState(sub, iox::popo::SubscriberState::HAS_DATA).has_error()) {
      die("iceoryx: cannot attach the subscriber to a WaitSet");
    }
  }

  void send(std::uint64_t value) {
    auto loaned = pub.loan(kPayload);
    if (loaned.has_error()) die("iceoryx: loan of 64 bytes failed");
    std::memset(loaned.value(), 0, kPayload);
    std::memcpy(loaned.value(), &value, sizeof value);
    pub.publish(loaned.value());
  }

  std::uint64_t receive(bool spin_first) {
    const auto spin_until = Clock::now() + std::chrono::microseconds(spin_first ? 20 : 0);
    for (;;) {
      auto sample = sub.take();
      if (!sample.has_error()) {
        std::uint64_t v;
        std::memcpy(&v, sample.value(), sizeof v);
        sub.release(sample.value());
        return v;
      }
      if (Clock::now() >= spin_until) waitset.wait();
    }
  }
};

void echo_main(const Pipe& cmd, const Pipe& ready) {
  init_iceoryx_runtime("shmarray-iox-wakeup-pong");
  Endpoint e(kPong, kPing);
  wait_for_subscriber(e.pub);
  send_pod(ready.w, 1);
  for (;;) {
    const auto rounds = recv_pod<int>(cmd.r);
    if (rounds <= 0) break;
    const bool spin = recv_pod<int>(cmd.r) != 0;
    for (int i = 0; i < rounds; ++i) e.send(e.receive(spin));
  }
}

}  // namespace

int main(int argc, char** argv) {
  int rounds = 20000;
  std::string csv_path;
  std::string machine = "this machine";
  CLI::App app{"iceoryx publish -> take latency, 64-byte payload (needs iox-roudi)"};
  app.add_option("--rounds", rounds, "ping-pong round trips per mode")->capture_default_str();
  app.add_option("--csv", csv_path, "append results to this CSV file");
  app.add_option("--machine", machine, "label for the table")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // tables appear as they are measured

  const Pipe cmd = Pipe::make(), ready = Pipe::make();
  const pid_t child = ::fork();
  if (child == 0) {
    echo_main(cmd, ready);  // its ports are gone when it returns
    std::exit(0);           // the runtime's destructor tells RouDi
  }
  init_iceoryx_runtime("shmarray-iox-wakeup-ping");
  Endpoint e(kPing, kPong);
  wait_for_subscriber(e.pub);
  recv_pod<int>(ready.r);

  Csv csv(csv_path, "machine,method,p50_us,p99_us,rounds");
  std::printf("\niceoryx publish -> take, 64-byte payload, one way (round trip / 2), %d round "
              "trips, %s\n", rounds, machine.c_str());
  std::printf("%-50s %10s %10s\n", "method", "p50 (us)", "p99 (us)");
  for (const bool spin : {false, true}) {
    const int warm = std::max(10, rounds / 10);
    send_pod(cmd.w, warm + rounds);
    send_pod(cmd.w, spin ? 1 : 0);
    std::vector<double> us;
    for (int i = 0; i < warm + rounds; ++i) {
      const double t = time_us([&] {
        e.send(static_cast<std::uint64_t>(i));
        if (e.receive(spin) != static_cast<std::uint64_t>(i)) die("iceoryx: wrong echo");
      });
      if (i >= warm) us.push_back(t / 2);
    }
    const Stats s = summarise(us);
    const char* name = spin ? "iceoryx publish -> take (spin 20 us, then WaitSet)"
                            : "iceoryx publish -> take (WaitSet)";
    std::printf("%-50s %10.2f %10.2f\n", name, s.p50, s.p99);
    csv.row(machine, name, s.p50, s.p99, rounds);
  }
  send_pod(cmd.w, 0);
  ::waitpid(child, nullptr, 0);
  return 0;
}
