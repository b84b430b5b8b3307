// Consumer: waits for "demo/matrix" to exist and be published, checks the producer's values,
// doubles them in place and publishes, so the producer sees the result in its own mapping.
//
//   consumer [--socket PATH] [--name NAME] [--timeout-s N]
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <shmarray/shmarray.hpp>

int main(int argc, char** argv) {
  std::string socket;
  std::string name = "demo/matrix";
  int timeout_s = 30;
  CLI::App app{"shmarray example consumer: opens the producer's array, checks it, doubles it in "
               "place"};
  app.add_option("--socket", socket, "broker socket (default: the standard path rule)");
  app.add_option("--name", name, "array name")->capture_default_str();
  app.add_option("--timeout-s", timeout_s, "how long to wait for the producer")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  const auto timeout = std::chrono::seconds(timeout_s);

  auto client = shmarray::Client::connect({.socket_path = socket});
  if (!client) {
    std::fprintf(stderr, "consumer: %s\n", client.error().message().c_str());
    return 1;
  }
  // Started before the producer? The broker holds the open until the name appears.
  auto array = client->open(name, shmarray::Access::kReadWrite, {.wait = timeout});
  if (!array) {
    std::fprintf(stderr, "consumer: %s\n", array.error().message().c_str());
    return 1;
  }
  auto version = array->wait_newer_than(0, timeout);  // the producer's first publish
  if (!version) {
    std::fprintf(stderr, "consumer: %s\n", version.error().message().c_str());
    return 1;
  }
  auto values = array->as<double>();
  if (!values) {
    std::fprintf(stderr, "consumer: %s\n", values.error().message().c_str());
    return 1;
  }
  std::size_t wrong = 0;
  for (std::size_t i = 0; i < values->size(); ++i) {
    if ((*values)[i] != static_cast<double>(i)) ++wrong;
  }
  std::printf("consumer: opened '%s' version %llu: [1]=%g [1048575]=%g; %zu of %zu values as "
              "the producer wrote them\n",
              name.c_str(), static_cast<unsigned long long>(*version), (*values)[1],
              (*values)[values->size() - 1], values->size() - wrong, values->size());
  for (double& v : *values) v *= 2.0;
  const auto published = array->publish();
  std::printf("consumer: doubled every value in place and published version %llu\n",
              static_cast<unsigned long long>(*published));
  return wrong == 0 ? 0 : 1;
}
