// Machine facts that explain the other benchmarks' numbers: the cost of a syscall, of the first
// touch of a page of a shared-memory mapping (what a fresh shmarray mapping pays per 4 KiB), of
// populating a mapping's page tables in one call (MADV_POPULATE_READ), and memcpy bandwidth.
// On a VM with shadow paging the page-fault numbers are several times those of an ordinary KVM
// guest; print them beside every table so results from different machines can be compared.
#include <sys/mman.h>
#include <sys/syscall.h>

#include <CLI/CLI.hpp>

#include "bench_util.hpp"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

namespace {

using namespace bench;

double syscall_ns() {
  constexpr int kCalls = 200000;
  std::vector<double> runs;
  for (int r = 0; r < 5; ++r) {
    runs.push_back(time_us([] {
      for (int i = 0; i < kCalls; ++i) ::syscall(SYS_getppid);
    }) * 1e3 / kCalls);
  }
  return summarise(runs).p50;
}

// Per-page cost of touching a fresh MAP_SHARED mapping of a tmpfs file whose pages exist
// (allocated like the broker's posix_fallocate), and of MADV_POPULATE_READ on one.
struct SharedCosts {
  double touch, populate, populate_then_touch;
};

SharedCosts shared_fault_us(std::size_t bytes) {
  const int fd = ::memfd_create("bench-probe", MFD_CLOEXEC);
  if (fd < 0 || ::posix_fallocate(fd, 0, static_cast<off_t>(bytes)) != 0) die("memfd");
  const std::size_t pages = bytes / 4096;
  std::vector<double> touch, populate, after;
  for (int r = 0; r < 4; ++r) {
    auto* p = static_cast<volatile char*>(::mmap(nullptr, bytes, PROT_READ, MAP_SHARED, fd, 0));
    touch.push_back(time_us([&] {
      for (std::size_t i = 0; i < bytes; i += 4096) (void)p[i];
    }) / static_cast<double>(pages));
    ::munmap(const_cast<char*>(p), bytes);
    void* q = ::mmap(nullptr, bytes, PROT_READ, MAP_SHARED, fd, 0);
    populate.push_back(time_us([&] {
      if (::madvise(q, bytes, MADV_POPULATE_READ) != 0) die("MADV_POPULATE_READ");
    }) / static_cast<double>(pages));
    after.push_back(time_us([&] {  // page tables are filled: what does reading still cost?
      for (std::size_t i = 0; i < bytes; i += 4096) (void)static_cast<volatile char*>(q)[i];
    }) / static_cast<double>(pages));
    ::munmap(q, bytes);
  }
  ::close(fd);
  touch.erase(touch.begin());  // warm-up
  populate.erase(populate.begin());
  after.erase(after.begin());
  return {summarise(touch).p50, summarise(populate).p50, summarise(after).p50};
}

double anon_fault_us(std::size_t bytes) {
  std::vector<double> runs;
  for (int r = 0; r < 4; ++r) {
    auto* p = static_cast<char*>(
        ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    runs.push_back(time_us([&] {
      for (std::size_t i = 0; i < bytes; i += 4096) p[i] = 1;
    }) / static_cast<double>(bytes / 4096));
    ::munmap(p, bytes);
  }
  runs.erase(runs.begin());
  return summarise(runs).p50;
}

double memcpy_gbps(std::size_t bytes) {
  std::vector<char> a(bytes, 1), b(bytes, 2);
  std::vector<double> runs;
  for (int r = 0; r < 6; ++r) {
    const double us = time_us([&] { std::memcpy(b.data(), a.data(), bytes); });
    runs.push_back(static_cast<double>(bytes) / us / 1e3);
    a[r] = b[bytes - 1 - r];  // keep the copies observable
  }
  runs.erase(runs.begin());
  return summarise(runs).p50;
}

}  // namespace

int main(int argc, char** argv) {
  std::string csv_path, machine = "this machine";
  std::uint64_t mib = 64;
  CLI::App app{"machine facts for the shmarray benchmarks"};
  app.add_option("--mib", mib, "working-set size in MiB")->capture_default_str();
  app.add_option("--csv", csv_path, "append results to this CSV file");
  app.add_option("--machine", machine, "label")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // tables appear as they are measured
  const std::size_t bytes = mib << 20;

  Csv csv(csv_path, "machine,metric,value,unit");
  const SharedCosts shared = shared_fault_us(bytes);
  const struct {
    const char* metric;
    double value;
    const char* unit;
  } rows[] = {
      {"syscall (getppid)", syscall_ns(), "ns"},
      {"first touch of a shared page (read fault)", shared.touch, "us/page"},
      {"MADV_POPULATE_READ of a shared mapping", shared.populate, "us/page"},
      {"first touch of a page after MADV_POPULATE_READ", shared.populate_then_touch, "us/page"},
      {"first write to an anonymous page", anon_fault_us(bytes), "us/page"},
      {"memcpy bandwidth", memcpy_gbps(bytes), "GB/s"},
  };
  std::printf("\nMachine probe (%s)\n", machine.c_str());
  for (const auto& r : rows) {
    std::printf("  %-44s %10.3f %s\n", r.metric, r.value, r.unit);
    csv.row(machine, r.metric, r.value, r.unit);
  }
  return 0;
}
