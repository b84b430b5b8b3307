// list is paged (wire::kMaxListPage arrays per reply): a listing of many arrays comes back whole,
// in order, without repeats, through the C++ client, the CLI and the raw protocol, and the broker
// answers other requests between pages.
#include <gtest/gtest.h>

#include <chrono>
#include <set>
#include <string>

#include "broker_process.hpp"
#include "raw_client.hpp"

namespace shmarray::test {
namespace {

using namespace std::chrono_literals;

class ListPagingTest : public BrokerTest {};

constexpr int kArrays = 2500;  // three pages

std::string name_of(int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "many/%05d", i);
  return buf;
}

TEST_F(ListPagingTest, ThousandsOfArraysListWholeInOrderThroughEveryClient) {
  auto client = broker_->client();
  for (int i = 0; i < kArrays; ++i) {
    ASSERT_TRUE(client.create(name_of(i), ArraySpec{.dtype = "|u1", .shape = {1}}))
        << "create " << i;
  }
  ASSERT_TRUE(client.create("other", ArraySpec{.shape = {1}}));

  auto all = client.list("many/");
  ASSERT_TRUE(all) << all.error().message();
  ASSERT_EQ(all->size(), static_cast<std::size_t>(kArrays));
  for (int i = 0; i < kArrays; ++i) EXPECT_EQ((*all)[static_cast<std::size_t>(i)].name, name_of(i));

  // One page over the raw protocol: at most kMaxListPage arrays and a resume point; another
  // request on another connection is answered between pages.
  auto raw = RawClient::connect(broker_->socket_path());
  ASSERT_TRUE(raw);
  auto first = raw->call(wire::ListRequest{"many/", "", 5000});
  ASSERT_TRUE(first);
  auto page = wire::decode<wire::ListReply>(first->body);
  ASSERT_TRUE(page);
  EXPECT_EQ(page->arrays.size(), wire::kMaxListPage) << "the broker caps a page";
  EXPECT_EQ(page->next_after, name_of(static_cast<int>(wire::kMaxListPage) - 1));
  EXPECT_TRUE(client.stat("other")) << "served between two pages";
  auto second = raw->call(wire::ListRequest{"many/", page->next_after, 5000});
  ASSERT_TRUE(second);
  auto page2 = wire::decode<wire::ListReply>(second->body);
  ASSERT_TRUE(page2);
  ASSERT_FALSE(page2->arrays.empty());
  EXPECT_EQ(page2->arrays.front().name, name_of(static_cast<int>(wire::kMaxListPage)));

  // A client from before paging (limit 0) still gets everything in one reply.
  auto legacy = raw->call(wire::ListRequest{"many/", "", 0});
  ASSERT_TRUE(legacy);
  auto everything = wire::decode<wire::ListReply>(legacy->body);
  ASSERT_TRUE(everything);
  EXPECT_EQ(everything->arrays.size(), static_cast<std::size_t>(kArrays));
  EXPECT_TRUE(everything->next_after.empty());

  // The CLI's names-per-line listing goes through the same pages.
  auto ls = run({SHMARRAY_CLI_PATH, "--socket", broker_->socket_path(), "ls", "--json", "many/"},
                60s);
  ASSERT_TRUE(ls.status.ok()) << ls.status.describe();
  std::set<std::string> seen;
  std::size_t pos = 0;
  while ((pos = ls.out.find("\"name\": \"many/", pos)) != std::string::npos) {
    pos += 9;
    seen.insert(ls.out.substr(pos, ls.out.find('"', pos) - pos));
  }
  EXPECT_EQ(seen.size(), static_cast<std::size_t>(kArrays)) << "the CLI lists every array once";

  for (int i = 0; i < kArrays; ++i) ASSERT_TRUE(client.remove(name_of(i)));
  ASSERT_TRUE(client.remove("other"));
}

}  // namespace
}  // namespace shmarray::test
