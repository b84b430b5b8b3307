// One owner of session lifetime (issue 12): a reply that cannot be written closes its connection,
// but the broker forgets the connection (and removes its ephemeral arrays) only after the request
// being handled is finished. Before, an ephemeral create whose client hung up erased the record
// while Broker::on_create still used it: ASan reported a heap-use-after-free, and a release
// build sent watchers a "created" event with an empty name after the "removed" one. Run this with
// the sanitizer build too (README "Sanitizer builds"): its shmarrayd then reports any such read.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <chrono>
#include <string>

#include "broker_process.hpp"
#include "raw_client.hpp"
#include "shmarray/wire/messages.hpp"

namespace shmarray::test {
namespace {

using namespace std::chrono_literals;

// The next watch event on `watcher` (fails the test on timeout or a frame of another type).
std::optional<wire::Event> next_event(RawClient& watcher) {
  auto frame = watcher.receive(10s);
  if (!frame) {
    ADD_FAILURE() << "no event within 10 s";
    return std::nullopt;
  }
  if (frame->header.type != wire::MessageType::kEvent) {
    ADD_FAILURE() << "expected an Event, got " << wire::to_string(frame->header.type);
    return std::nullopt;
  }
  auto event = wire::decode<wire::Event>(frame->body);
  if (!event) ADD_FAILURE() << event.error().message();
  return event ? std::optional(std::move(*event)) : std::nullopt;
}

TEST(SessionLifetime, EphemeralCreatesWhoseClientsHangUpLeaveWatchersAndParkedOpensSane) {
  constexpr int kCreates = 2000;
  BrokerProcess broker;
  const std::string& socket = broker.socket_path();
  {
    auto watcher = RawClient::connect(socket);
    ASSERT_TRUE(watcher);
    auto watching = watcher->call(wire::WatchRequest{});
    ASSERT_TRUE(watching && watching->header.type == wire::MessageType::kWatchReply);
    // An open parked for a name nobody creates: every create's wake-up looks past it.
    auto bystander = RawClient::connect(socket);
    ASSERT_TRUE(bystander);
    ASSERT_NE(bystander->send(wire::OpenRequest{"never", Access::kReadOnly, 600'000}), 0u);
    auto probe = bystander->call(wire::StatRequest{"never"});  // answered after the open parked
    ASSERT_TRUE(probe);
    ASSERT_EQ(probe->code(), ErrorCode::kNotFound);
    auto parker = RawClient::connect(socket);
    ASSERT_TRUE(parker);

    for (int i = 0; i < kCreates; ++i) {
      const std::string name = "eph" + std::to_string(i);
      // An open parked for the very name created next: the create wakes and grants it.
      const std::uint64_t open_id =
          parker->send(wire::OpenRequest{name, Access::kReadOnly, 60'000});
      ASSERT_NE(open_id, 0u);
      auto parked = parker->call(wire::StatRequest{name});
      ASSERT_TRUE(parked);
      ASSERT_EQ(parked->code(), ErrorCode::kNotFound) << "the open was not parked first";

      // The creator hangs up before the reply: with its read side shut, the broker's write of
      // the CreateReply fails (EPIPE) inside on_create, and closes the connection.
      auto creator = RawClient::connect(socket);
      ASSERT_TRUE(creator) << "create " << i << ": the broker stopped serving";
      ASSERT_EQ(::shutdown(creator->fd(), SHUT_RD), 0);
      ASSERT_NE(creator->send(wire::CreateRequest{
                    name, ArraySpec{.dtype = "<f4", .shape = {4}, .ephemeral = true}}),
                0u);
      creator.reset();

      auto granted = parker->receive(10s);
      ASSERT_TRUE(granted) << name << ": the parked open was never answered";
      ASSERT_EQ(granted->header.type, wire::MessageType::kOpenReply)
          << name << ": " << static_cast<int>(granted->code());
      EXPECT_EQ(granted->header.request_id, open_id);
      auto reply = wire::decode<wire::OpenReply>(granted->body);
      ASSERT_TRUE(reply);
      EXPECT_EQ(reply->info.name, name);
      EXPECT_EQ(granted->fds.size(), 1u);

      auto created = next_event(*watcher);
      ASSERT_TRUE(created);
      EXPECT_EQ(created->kind, wire::EventKind::kCreated) << name;
      ASSERT_EQ(created->name, name) << "event " << i << " names the wrong array";
      EXPECT_EQ(created->info.name, name);
      auto removed = next_event(*watcher);
      ASSERT_TRUE(removed);
      EXPECT_EQ(removed->kind, wire::EventKind::kRemoved) << name;
      ASSERT_EQ(removed->name, name) << "event " << i << " names the wrong array";
    }
    // Still serving, and the bystander's open is still parked (answered by a create).
    auto client = broker.client();
    ASSERT_TRUE(client.create("never", ArraySpec{.shape = {1}}));
    auto woken = bystander->receive(10s);
    ASSERT_TRUE(woken);
    EXPECT_EQ(woken->header.type, wire::MessageType::kOpenReply);
    ASSERT_TRUE(client.remove("never"));
  }
  const ExitStatus status = broker.stop(SIGTERM);
  EXPECT_TRUE(status.ok()) << "shmarrayd on SIGTERM: " << status.describe();
  EXPECT_TRUE(broker.segments().empty()) << broker.segments().size() << " segment(s) left";
}

}  // namespace
}  // namespace shmarray::test
