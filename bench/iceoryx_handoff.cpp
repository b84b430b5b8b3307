// Handoff latency through Eclipse iceoryx 2.0 (loan -> publish -> take), the peer closest to
// shmarray's mapped-array pattern: chunks come from pools that RouDi (iox-roudi, started by
// bench/run.sh with a config sized for these payloads) reserves once and every process maps
// once. Same driver and rules as bench_handoff (handoff_common.hpp): the producer loans a chunk
// and fills it before the clock starts; the clock runs from publish() to the consumer having
// taken the sample (woken by a WaitSet) and read all of it / touched one element.
#include <sys/wait.h>

#include <CLI/CLI.hpp>
#include <thread>

#include "handoff_common.hpp"
#include "iceoryx_common.hpp"
#include "iceoryx_posh/popo/untyped_publisher.hpp"
#include "iceoryx_posh/popo/untyped_subscriber.hpp"
#include "iceoryx_posh/popo/wait_set.hpp"

namespace {

using namespace bench;

const iox::capro::ServiceDescription kService{"shmarray-bench", "handoff", "array"};

void consumer_main(const Pipe& cmd, const Pipe& report) {
  init_iceoryx_runtime("shmarray-iox-handoff-sub");
  iox::popo::SubscriberOptions options;
  options.queueCapacity = 1;
  iox::popo::UntypedSubscriber sub(kService, options);
  iox::popo::WaitSet<> waitset;
  if (waitset.attachState(sub, iox::popo::SubscriberState::HAS_DATA).has_error()) {
    die("iceoryx: cannot attach the subscriber to a WaitSet");
  }
  send_pod(report.w, Report{});  // subscribed (the producer also waits for hasSubscribers())
  for (;;) {
    const auto c = recv_pod<Command>(cmd.r);
    if (c.op == Command::kStop) break;
    Report r;
    for (;;) {
      auto sample = sub.take();
      if (!sample.has_error()) {
        const auto* p = static_cast<const std::byte*>(sample.value());
        r.value = consume(p, c.bytes, c.use);
        r.t_end_ns = now_ns();
        sub.release(sample.value());
        break;
      }
      waitset.wait();
    }
    send_pod(report.w, r);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string sizes = "4KiB,1MiB,64MiB,1GiB";
  HandoffOptions o{.machine = "this machine"};
  int warmup = 2;
  CLI::App app{"iceoryx handoff latency (needs iox-roudi with pools for these sizes)"};
  app.add_option("--sizes", sizes, "payload sizes")->capture_default_str();
  app.add_option("--repeat", o.repeat, "rounds below 64 MiB")->capture_default_str();
  app.add_option("--repeat-large", o.repeat_large, "rounds from 64 MiB")->capture_default_str();
  app.add_option("--repeat-huge", o.repeat_huge, "rounds from 1 GiB")->capture_default_str();
  app.add_option("--warmup", warmup, "unrecorded rounds first")->capture_default_str();
  app.add_option("--csv", o.csv, "append raw rounds to this CSV file");
  app.add_option("--machine", o.machine, "label for the table")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  o.sizes = parse_sizes(sizes);
  for (auto& s : o.sizes) s = std::max<std::uint64_t>(8, s - s % 8);
  o.warmup = warmup;

  const Pipe cmd = Pipe::make(), report = Pipe::make();
  const pid_t consumer = ::fork();  // each process has its own iceoryx runtime
  if (consumer == 0) {
    consumer_main(cmd, report);  // its ports are gone when it returns
    std::exit(0);                // the runtime's destructor tells RouDi
  }

  init_iceoryx_runtime("shmarray-iox-handoff-pub");
  iox::popo::UntypedPublisher pub(kService);
  recv_pod<Report>(report.r);
  wait_for_subscriber(pub);

  const auto round = [&](std::uint64_t bytes, Use use, std::uint64_t marker) {
    auto loaned = pub.loan(static_cast<std::uint32_t>(bytes));
    if (loaned.has_error()) {
      die("iceoryx: no chunk of " + human(bytes) + " (is iox-roudi running with a pool for it?)");
    }
    void* chunk = loaned.value();
    fill({static_cast<std::byte*>(chunk), bytes}, marker);
    send_pod(cmd.w, Command{.op = Command::kTake, .use = use, .bytes = bytes, .marker = marker});
    settle(bytes);
    const std::int64_t t0 = now_ns();
    pub.publish(chunk);
    const Report r = recv_pod<Report>(report.r);
    check_value("iceoryx", r, bytes, marker, use);
    return static_cast<double>(r.t_end_ns - t0) / 1e3;
  };
  run_handoffs({{.name = "iceoryx 2.0 loan -> publish -> take", .round = round}}, o);
  send_pod(cmd.w, Command{.op = Command::kStop});
  ::waitpid(consumer, nullptr, 0);
  return 0;
}
