// Producer: creates "demo/matrix" (1024x1024 float64), fills it with i*1024+j, publishes, then
// waits for a consumer to double every value in place and checks that it sees the doubled values
// in its own mapping. No array byte crosses a socket.
//
//   producer [--socket PATH] [--name NAME] [--timeout-s N] [--keep]
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <shmarray/shmarray.hpp>

int main(int argc, char** argv) {
  std::string socket;
  std::string name = "demo/matrix";
  int timeout_s = 30;
  bool keep = false;
  CLI::App app{"shmarray example producer: creates a 1024x1024 float64 array, fills it, and "
               "waits for a consumer to double it in place"};
  app.add_option("--socket", socket, "broker socket (default: the standard path rule)");
  app.add_option("--name", name, "array name")->capture_default_str();
  app.add_option("--timeout-s", timeout_s, "how long to wait for the consumer")->capture_default_str();
  app.add_flag("--keep", keep, "leave the array in place on exit (default: remove it)");
  CLI11_PARSE(app, argc, argv);

  auto client = shmarray::Client::connect({.socket_path = socket});
  if (!client) {
    std::fprintf(stderr, "producer: %s\n", client.error().message().c_str());
    return 1;
  }
  auto array = client->create(name, shmarray::ArraySpec{.dtype = "<f8", .shape = {1024, 1024}});
  if (!array) {
    std::fprintf(stderr, "producer: %s\n", array.error().message().c_str());
    return 1;
  }
  auto values = array->as<double>();
  for (std::size_t i = 0; i < values->size(); ++i) (*values)[i] = static_cast<double>(i);
  const auto v1 = array->publish();
  std::printf("producer: created '%s' (%s, 1024x1024, %llu bytes) and filled it: [0]=%g "
              "[1048575]=%g; published version %llu\n",
              name.c_str(), array->info().dtype.c_str(),
              static_cast<unsigned long long>(array->info().nbytes), (*values)[0],
              (*values)[values->size() - 1], static_cast<unsigned long long>(*v1));
  std::fflush(stdout);

  // The consumer publishes after doubling: wait for a version newer than ours.
  auto seen = array->wait_newer_than(*v1, std::chrono::seconds(timeout_s));
  if (!seen) {
    std::fprintf(stderr, "producer: no consumer answered: %s\n", seen.error().message().c_str());
    if (!keep) (void)client->remove(name);
    return 1;
  }
  std::size_t wrong = 0;
  for (std::size_t i = 0; i < values->size(); ++i) {
    if ((*values)[i] != 2.0 * static_cast<double>(i)) ++wrong;
  }
  std::printf("producer: version %llu: sees the consumer's writes in its own mapping: [1]=%g "
              "[1048575]=%g; %zu of %zu values are doubled\n",
              static_cast<unsigned long long>(*seen), (*values)[1], (*values)[values->size() - 1],
              values->size() - wrong, values->size());
  if (!keep) {
    if (auto removed = client->remove(name); !removed) {
      std::fprintf(stderr, "producer: %s\n", removed.error().message().c_str());
    }
  }
  return wrong == 0 ? 0 : 1;
}
