// Memory cost of N consumers holding the same array (default 1 GiB), shmarray against the copy
// path. A producer has the data; consumer processes get it one after another, and each ends up
// with a usable array it has read completely:
//   copy (unix socket)  each consumer receives its own copy into a private buffer
//   shmarray            each consumer open()s the array read-only and reads it (same pages)
// When N consumers (N in --consumers) hold it, with everyone still holding the data: PSS of the
// producer and those consumers (from /proc/<pid>/smaps_rollup: shared pages are split between
// the processes that map them, so the sum is what the group really costs) and the system-wide
// change in Shmem and MemAvailable since before the producer made the data (/proc/meminfo;
// noisy when other work runs on the machine).
#include <sys/socket.h>
#include <sys/wait.h>

#include <CLI/CLI.hpp>
#include <map>
#include <optional>
#include <thread>
#include <shmarray/shmarray.hpp>

#include "bench_util.hpp"

namespace {

using namespace bench;

std::map<std::string, long> kib_fields(const std::string& path) {
  std::map<std::string, long> out;
  std::ifstream in(path);
  std::string key;
  long value;
  std::string unit;
  for (std::string line; std::getline(in, line);) {
    std::istringstream s(line);
    if (s >> key >> value && key.back() == ':') out[key.substr(0, key.size() - 1)] = value;
  }
  return out;
}

long pss_kib(pid_t pid) { return kib_fields("/proc/" + std::to_string(pid) + "/smaps_rollup")["Pss"]; }

struct Consumer {
  pid_t pid;
  Pipe cmd, report;
  int sock;  // producer's end of the data socket
};

struct Job {
  bool shmarray;
  std::uint64_t bytes;
  char name[112];
};

[[noreturn]] void consumer_main(const Pipe& cmd, const Pipe& report, int sock,
                                const std::string& socket) {
  const Job job = recv_pod<Job>(cmd.r);
  std::uint64_t sum;
  std::optional<shmarray::Array> held;
  std::vector<std::uint64_t> copy;
  if (job.shmarray) {
    auto client = must(shmarray::Client::connect({.socket_path = socket}), "consumer");
    held = must(client.open(job.name, shmarray::Access::kReadOnly), "consumer open");
    sum = sum_words(held->bytes().data(), job.bytes);
  } else {
    copy.resize(job.bytes / 8);  // a fresh private buffer, as a receiver of a copy would have
    if (!read_all(sock, copy.data(), job.bytes)) die("consumer: short read");
    sum = sum_words(reinterpret_cast<const std::byte*>(copy.data()), job.bytes);
  }
  send_pod(report.w, sum);
  recv_pod<char>(cmd.r);  // hold the data until the producer has measured
  ::_exit(0);
}

struct Row {
  long producer_pss, consumers_pss, shmem_delta, avail_drop;
};

// One producer and max(counts) consumers; the data goes to one consumer after another, and
// after the k-th has it (k in counts) the group is measured: rows for N = k consumers.
std::vector<Row> measure(bool use_shmarray, const std::vector<std::uint64_t>& counts,
                         std::uint64_t bytes, const std::string& socket) {
  const int max_n = static_cast<int>(*std::max_element(counts.begin(), counts.end()));
  std::vector<Consumer> consumers;
  for (int i = 0; i < max_n; ++i) {  // fork first: consumers inherit no mapping of the data
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) die("socketpair");
    Consumer c{0, Pipe::make(), Pipe::make(), sv[0]};
    c.pid = ::fork();
    if (c.pid == 0) consumer_main(c.cmd, c.report, sv[1], socket);
    ::close(sv[1]);
    consumers.push_back(c);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // let earlier frees settle
  auto before = kib_fields("/proc/meminfo");
  Job job{use_shmarray, bytes, {}};
  std::optional<shmarray::Client> client;
  std::optional<shmarray::Array> array;
  std::vector<std::uint64_t> data;
  if (use_shmarray) {
    client = must(shmarray::Client::connect({.socket_path = socket}), "producer");
    std::snprintf(job.name, sizeof job.name, "bench/memory/%d", ::getpid());
    array = must(client->create(job.name, {.dtype = "<u8", .shape = {bytes / 8}}), "create");
    fill(must(array->mutable_bytes()), 7);
  } else {
    data.resize(bytes / 8);
    fill({reinterpret_cast<std::byte*>(data.data()), bytes}, 7);
  }
  std::vector<Row> rows;
  for (int k = 0; k < max_n; ++k) {
    send_pod(consumers[k].cmd.w, job);
    if (!use_shmarray && !write_all(consumers[k].sock, data.data(), bytes)) die("short write");
    if (recv_pod<std::uint64_t>(consumers[k].report.r) != expected_sum(bytes, 7)) {
      die("consumer saw wrong data");
    }
    if (std::find(counts.begin(), counts.end(), static_cast<std::uint64_t>(k + 1)) == counts.end()) {
      continue;
    }
    auto now = kib_fields("/proc/meminfo");
    Row row{pss_kib(::getpid()), 0, now["Shmem"] - before["Shmem"],
            before["MemAvailable"] - now["MemAvailable"]};
    for (int i = 0; i <= k; ++i) row.consumers_pss += pss_kib(consumers[i].pid);
    rows.push_back(row);
  }
  for (auto& c : consumers) {
    send_pod(c.cmd.w, char{1});
    ::waitpid(c.pid, nullptr, 0);
    for (int fd : {c.cmd.r, c.cmd.w, c.report.r, c.report.w, c.sock}) ::close(fd);
  }
  if (use_shmarray) {
    array.reset();
    must(client->remove(job.name), "remove");
  }
  return rows;
}

}  // namespace

int main(int argc, char** argv) {
  std::string socket, size = "1GiB", counts = "1,2,4", csv_path, machine = "this machine";
  CLI::App app{"memory held by N consumers of one array: shmarray vs copies (needs shmarrayd)"};
  app.add_option("--socket", socket, "broker socket (default: the standard path rule)");
  app.add_option("--bytes", size, "array size")->capture_default_str();
  app.add_option("--consumers", counts, "consumer counts")->capture_default_str();
  app.add_option("--csv", csv_path, "append results to this CSV file");
  app.add_option("--machine", machine, "label")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // tables appear as they are measured
  const std::uint64_t bytes = parse_size(size) / 8 * 8;

  Csv csv(csv_path,
          "machine,method,consumers,bytes,producer_pss_kib,consumers_pss_kib,total_pss_kib,"
          "shmem_delta_kib,mem_available_drop_kib");
  std::printf("\nMemory with N consumers holding one %s array (%s), MiB\n", human(bytes).c_str(),
              machine.c_str());
  std::printf("%3s %-22s %12s %14s %11s %13s %16s %10s\n", "N", "method", "producer PSS",
              "consumers PSS", "total PSS", "Shmem delta", "MemAvail. drop", "x copy");
  auto ns = parse_sizes(counts);
  std::sort(ns.begin(), ns.end());
  const auto copy_rows = measure(false, ns, bytes, socket);
  const auto shm_rows = measure(true, ns, bytes, socket);
  for (std::size_t i = 0; i < ns.size(); ++i) {
    for (const bool shm : {false, true}) {
      const Row& r = shm ? shm_rows[i] : copy_rows[i];
      const long total = r.producer_pss + r.consumers_pss;
      const long copy_total = copy_rows[i].producer_pss + copy_rows[i].consumers_pss;
      const char* method = shm ? "shmarray" : "copy (unix socket)";
      std::printf("%3d %-22s %12.0f %14.0f %11.0f %13.0f %16.0f %9.2fx\n", static_cast<int>(ns[i]),
                  method, r.producer_pss / 1024.0, r.consumers_pss / 1024.0, total / 1024.0,
                  r.shmem_delta / 1024.0, r.avail_drop / 1024.0,
                  static_cast<double>(total) / static_cast<double>(copy_total));
      csv.row(machine, method, ns[i], bytes, r.producer_pss, r.consumers_pss, total, r.shmem_delta,
              r.avail_drop);
    }
  }
  return 0;
}
