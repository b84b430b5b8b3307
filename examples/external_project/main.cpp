// A consumer built outside the shmarray tree: waits for the demo's "demo/matrix", checks the
// producer's values, doubles them in place and publishes.
//   external_consumer [SOCKET]
#include <cstdio>
#include <shmarray/shmarray.hpp>

int main(int argc, char** argv) {
  using namespace std::chrono_literals;
  auto client = shmarray::Client::connect({.socket_path = argc > 1 ? argv[1] : ""});
  if (!client) {
    std::fprintf(stderr, "external_consumer: %s\n", client.error().message().c_str());
    return 1;
  }
  auto array = client->open("demo/matrix", shmarray::Access::kReadWrite, {.wait = 30s});
  if (!array || !array->wait_newer_than(0, 30s)) {
    std::fprintf(stderr, "external_consumer: the producer did not show up\n");
    return 1;
  }
  auto values = array->as<double>();
  std::size_t good = 0;
  for (std::size_t i = 0; i < values->size(); ++i) good += (*values)[i] == static_cast<double>(i);
  for (double& v : *values) v *= 2;
  (void)array->publish();
  std::printf("external_consumer: %zu of %zu values as produced; doubled them\n", good,
              values->size());
  return good == values->size() ? 0 : 1;
}
