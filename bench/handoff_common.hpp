#pragma once
// The handoff benchmark's driver, shared by bench_handoff (shmarray and the copy paths) and
// bench_iceoryx_handoff: what a producer->consumer handoff of an array of N bytes costs, from
// the moment the producer starts handing over data it already has, to the moment the consumer
// has a usable array and has either read all of it once (read_all) or touched one element
// (touch_one). Consumer and producer are separate processes; the consumer takes its end
// timestamp from CLOCK_MONOTONIC and reports it over a pipe, outside the measured interval.
//
// Below 64 MiB each (size, use) runs one warm-up round per method, then `repeat` rounds with the
// methods interleaved, so drift on a noisy VM hits every method alike. From 64 MiB the methods
// run one after another, those that free their array every round last, followed by a pause:
// a VM that reports freed pages to its host (virtio-balloon free page reporting, about 2 s
// after the free) otherwise slows whichever round comes next, whatever its method. Raw rounds
// go to the CSV; the printed table shows medians and the ratio to the first method.
#include <functional>
#include <map>
#include <thread>

#include "bench_util.hpp"

namespace bench {

// Producer -> consumer command (fixed size, so one write is one message on a pipe).
struct Command {
  enum Op : std::uint32_t {
    kStop,
    kRecvSocket,   // read `bytes` from the data socket into the private buffer, then use it
    kRecvPipe,     // same from the data pipe
    kOpen,         // open `name` (fresh mapping), use it, drop it
    kOpenPopulate, // same with MADV_POPULATE_READ
    kMapKeep,      // open `name` and keep it mapped (setup, not timed)
    kWaitMapped,   // wait for a publish newer than `version` on the kept array, then use it
    kUnmap,        // drop the kept array (teardown)
    kTake,         // iceoryx / a stream: wait for a sample, use it, release it
    kSubscribe,    // a stream: subscribe to `name` (setup, not timed)
  };
  Op op = kStop;
  Use use = Use::kReadAll;
  std::uint64_t bytes = 0;
  std::uint64_t marker = 0;
  std::uint64_t version = 0;
  char name[112] = {};
};

struct Report {
  std::int64_t t_end_ns = 0;
  std::uint64_t value = 0;  // sum of all words (read_all) or word 0 (touch_one)
};

struct Method {
  std::string name{};
  bool read_all = true;
  bool touch_one = true;
  bool frees_memory = false;  // each round frees a whole array (see run_handoffs)
  std::function<void(std::uint64_t)> setup{};     // per size, untimed; may be empty
  std::function<void(std::uint64_t)> teardown{};  // per size, untimed; may be empty
  // One handoff; returns microseconds. Must check the consumer's value.
  std::function<double(std::uint64_t bytes, Use use, std::uint64_t marker)> round{};
};

struct HandoffOptions {
  std::vector<std::uint64_t> sizes{};
  int repeat = 20;        // rounds per method below 64 MiB
  int repeat_large = 9;   // at 64 MiB up to 1 GiB
  int repeat_huge = 5;    // at 1 GiB and above
  int warmup = 1;         // unrecorded rounds per method first
  int warmup_huge = 0;    // the same from 1 GiB (each round there maps or copies everything anew)
  std::string machine{};
  std::string csv{};
  std::string lang = "C++";
  std::vector<Use> uses{Use::kReadAll, Use::kTouchOne};
};

// Lets the previous round's freed memory settle and the consumer go to sleep before the clock
// starts (every method sees a sleeping consumer, as a real one between messages would be).
// After a round that freed a gigabyte (a removed array, a dropped mapping) the VM needs a while
// before a sleeping consumer wakes as fast as it otherwise would: measured, 20 ms was not enough.
inline void settle(std::uint64_t bytes) {
  using std::chrono::milliseconds;
  std::this_thread::sleep_for(bytes >= (1ull << 30)    ? milliseconds(200)
                              : bytes >= (64ull << 20) ? milliseconds(50)
                                                       : milliseconds(1));
}

inline void check_value(const std::string& method, const Report& r, std::uint64_t bytes,
                        std::uint64_t marker, Use use) {
  if (r.value != expected(bytes, marker, use)) {
    die(method + ": consumer saw wrong data (" + std::to_string(r.value) + " != " +
        std::to_string(expected(bytes, marker, use)) + ")");
  }
}

inline void run_handoffs(const std::vector<Method>& methods, const HandoffOptions& o) {
  Csv csv(o.csv, "machine,lang,method,use,bytes,round,us");
  std::uint64_t marker = 1000;
  std::printf("\nHandoff latency (%s): producer has the data -> consumer has it and has used it; "
              "median of rounds after a warm-up\n",
              o.machine.c_str());
  std::printf("%-10s %-10s %-44s %4s %12s %12s %10s\n", "size", "use", "method", "n",
              "median (us)", "min (us)", "x first");
  for (const std::uint64_t bytes : o.sizes) {
    const int repeat = bytes >= (1ull << 30) ? o.repeat_huge
                       : bytes >= (64ull << 20) ? o.repeat_large
                                                : o.repeat;
    for (const auto& m : methods) {
      if (m.setup) m.setup(bytes);
    }
    for (const Use use : o.uses) {
      const auto wanted = [&](const Method& m) {
        return use == Use::kReadAll ? m.read_all : m.touch_one;
      };
      std::map<std::string, std::vector<double>> samples;
      const int warmup = bytes >= (1ull << 30) ? o.warmup_huge : o.warmup;
      const auto one = [&](const Method& m, int r) {
        const double us = m.round(bytes, use, ++marker);
        if (r < 0) return;  // warm-up, not recorded
        samples[m.name].push_back(us);
        csv.row(o.machine, o.lang, m.name, use_name(use), bytes, r, us);
      };
      if (bytes < (64ull << 20)) {
        for (int r = -warmup; r < repeat; ++r) {
          for (const auto& m : methods) {
            if (wanted(m)) one(m, r);
          }
        }
      } else {
        bool freed = false;
        for (const bool freeing : {false, true}) {
          for (const auto& m : methods) {
            if (!wanted(m) || m.frees_memory != freeing) continue;
            for (int r = -warmup; r < repeat; ++r) one(m, r);
            freed = freed || freeing;
          }
        }
        if (freed) std::this_thread::sleep_for(std::chrono::seconds(3));
      }
      double base = 0;
      for (const auto& m : methods) {
        if (!wanted(m)) continue;
        const Stats s = summarise(samples[m.name]);
        if (base == 0) base = s.p50;
        std::printf("%-10s %-10s %-44s %4zu %12.1f %12.1f %9.2fx\n", human(bytes).c_str(),
                    use_name(use), m.name.c_str(), s.n, s.p50, s.min, s.p50 / base);
      }
      std::fflush(stdout);
    }
    for (const auto& m : methods) {
      if (m.teardown) m.teardown(bytes);
    }
  }
}

}  // namespace bench
