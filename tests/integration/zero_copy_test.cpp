// Proof of zero copy: a 1 GiB array mapped by two processes costs 1 GiB of shared memory, not 2.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <string>

#include "broker_process.hpp"

namespace shmarray::test {
namespace {

using namespace std::chrono_literals;

std::int64_t shmem_kib() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  std::int64_t value = 0;
  std::string unit;
  while (meminfo >> key >> value >> unit) {
    if (key == "Shmem:") return value;
  }
  return -1;
}

class ZeroCopyTest : public BrokerTest {};

TEST_F(ZeroCopyTest, OneGibArrayOpenedByTwoProcessesUsesOneGibOfShmem) {
  constexpr std::int64_t kGiBInKiB = 1 << 20;
  const std::int64_t before = shmem_kib();
  auto client = broker_->client();
  auto a = client.create("big", ArraySpec{.dtype = "|u1", .shape = {1ull << 30}});
  ASSERT_TRUE(a) << a.error().message();
  const std::int64_t after_create = shmem_kib();  // pages are reserved at create

  auto first = spawn_helper({"hold", broker_->socket_path(), "big"});
  auto second = spawn_helper({"hold", broker_->socket_path(), "big"});
  ASSERT_TRUE(first.read_line(120s)) << "first reader did not finish reading 1 GiB";
  ASSERT_TRUE(second.read_line(120s)) << "second reader did not finish reading 1 GiB";
  const std::int64_t with_readers = shmem_kib();
  std::printf("Shmem: before %lld KiB, after create %+lld KiB, with 2 readers %+lld KiB\n",
              static_cast<long long>(before), static_cast<long long>(after_create - before),
              static_cast<long long>(with_readers - before));
  first.close_stdin();
  second.close_stdin();
  EXPECT_TRUE(first.wait(30s).ok());
  EXPECT_TRUE(second.wait(30s).ok());

  // Other processes on the machine move Shmem a little: allow 10 %.
  EXPECT_GT(with_readers - before, kGiBInKiB * 9 / 10);
  EXPECT_LT(with_readers - before, kGiBInKiB * 11 / 10) << "a copy was made";
  EXPECT_GT(after_create - before, kGiBInKiB * 9 / 10) << "pages not reserved at create";

  a = std::unexpected(Error(ErrorCode::kCancelled, "released"));
  ASSERT_TRUE(client.remove("big"));
}

}  // namespace
}  // namespace shmarray::test
