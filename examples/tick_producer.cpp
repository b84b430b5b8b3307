// Tick producer: creates the frame "md/ticks" (t: datetime64[ns] index, price: float64,
// size: int64) with room for --ticks rows and appends one tick at a time. Each append writes
// the row under the frame's lock and seqlock and publishes, so the version counts the rows
// written: a reader that waited for version v may read rows [0, v). Python analyses the same
// pages live (examples/python/tick_analyst.py; docs/python.md, "Sharing DataFrames").
//
//   tick_producer [--socket PATH] [--name NAME] [--ticks N] [--interval-ms MS]
// The frame stays after the producer exits (the analyst removes it when done).
#include <CLI/CLI.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <shmarray/shmarray.hpp>
#include <thread>

int main(int argc, char** argv) {
  std::string socket;
  std::string name = "md/ticks";
  std::uint64_t ticks = 1000;
  int interval_ms = 1;
  CLI::App app{"shmarray example: appends ticks to a frame that Python reads as a DataFrame"};
  app.add_option("--socket", socket, "broker socket (default: the standard path rule)");
  app.add_option("--name", name, "frame name")->capture_default_str();
  app.add_option("--ticks", ticks, "rows to append")->capture_default_str();
  app.add_option("--interval-ms", interval_ms, "pause between ticks")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  auto client = shmarray::Client::connect({.socket_path = socket});
  if (!client) {
    std::fprintf(stderr, "tick_producer: %s\n", client.error().message().c_str());
    return 1;
  }
  auto frame = client->create_frame(
      name, shmarray::FrameSpec{.columns = {{"t", "<M8[ns]"}, {"price", "<f8"}, {"size", "<i8"}},
                                .rows = ticks,
                                .index = "t"});
  if (!frame) {
    std::fprintf(stderr, "tick_producer: %s\n", frame.error().message().c_str());
    return 1;
  }
  auto t = frame->column<std::int64_t>("t");  // datetime64[ns] as nanosecond counts
  auto price = frame->column<double>("price");
  auto size = frame->column<std::int64_t>("size");
  if (!t || !price || !size) {
    std::fprintf(stderr, "tick_producer: cannot view the columns\n");
    return 1;
  }
  const std::int64_t start = 1'700'000'000'000'000'000;  // 2023-11-14T22:13:20
  for (std::uint64_t k = 0; k < ticks; ++k) {
    auto published = frame->array().write([&](std::span<std::byte>) {
      (*t)[k] = start + static_cast<std::int64_t>(k) * 1'000'000;  // one tick per ms
      (*price)[k] = 100.0 + std::sin(static_cast<double>(k) / 50.0);
      (*size)[k] = static_cast<std::int64_t>(k % 10 + 1) * 100;
    });
    if (!published) {
      std::fprintf(stderr, "tick_producer: %s\n", published.error().message().c_str());
      return 1;
    }
    if (interval_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(interval_ms));
  }
  std::printf("tick_producer: appended %llu ticks to '%s' (version %llu)\n",
              static_cast<unsigned long long>(ticks), name.c_str(),
              static_cast<unsigned long long>(frame->version()));
  return 0;
}
