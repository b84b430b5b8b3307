// The broker process itself: one per socket, clean shutdown, restart without loss, ephemeral
// arrays, hostile peers, and the data plane working with the broker gone.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <numeric>

#include "broker_process.hpp"
#include "raw_client.hpp"
#include "shmarray/wire/fd_passing.hpp"
#include "shmarray/wire/messages.hpp"

namespace shmarray::test {
namespace {

using namespace std::chrono_literals;

class BrokerLifecycleTest : public BrokerTest {};

// Reads until EOF (or 5 s); returns what arrived.
std::string read_until_eof(int fd) {
  std::string all;
  const auto deadline = wire::Clock::now() + 5s;
  for (;;) {
    if (!wire::wait_readable(fd, deadline)) break;
    char buf[4096];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    all.append(buf, static_cast<std::size_t>(n));
  }
  return all;
}

TEST_F(BrokerLifecycleTest, SecondBrokerOnTheSameSocketRefusesToStart) {
  auto second = run({SHMARRAYD_PATH, "--socket", broker_->socket_path()}, 10s);
  EXPECT_EQ(second.status.exit_code, 3) << second.status.describe();
  auto client = broker_->client();  // the first one still serves
  EXPECT_TRUE(client.list());
}

TEST(BrokerStartup, ReplacesAStaleSocketFile) {
  char tmpl[] = "/tmp/shmarray-stale-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string path = std::string(tmpl) + "/s.sock";
  {  // a socket file nobody listens on, as a crashed broker leaves
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM, 0));
    const sockaddr_un addr = unix_address(path);
    ASSERT_EQ(::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0);
  }
  {
    BrokerProcess broker({}, path);
    EXPECT_TRUE(Client::connect({.socket_path = path}));
    EXPECT_TRUE(broker.stop(SIGTERM).ok());
  }
  std::error_code ignored;
  std::filesystem::remove_all(tmpl, ignored);  // the socket's lock file lives there too
}

TEST_F(BrokerLifecycleTest, SigtermExitsZeroAndLeavesNoProcessSocketOrSegment) {
  {
    auto client = broker_->client();
    auto a = client.create("temp", ArraySpec{.shape = {1024}});
    ASSERT_TRUE(a);
    auto e = client.create("eph", ArraySpec{.shape = {16}, .ephemeral = true});
    ASSERT_TRUE(e);
    ASSERT_TRUE(client.remove("temp"));
    EXPECT_EQ(broker_->segments().size(), 1u);  // the ephemeral one
    const pid_t pid = broker_->pid();
    const ExitStatus status = broker_->stop(SIGTERM);  // while the client is still connected
    EXPECT_TRUE(status.ok()) << status.describe();
    EXPECT_NE(::kill(pid, 0), 0);  // reaped, gone
  }
  struct stat st{};
  EXPECT_NE(::stat(broker_->socket_path().c_str(), &st), 0) << "socket file left behind";
  EXPECT_TRUE(broker_->segments().empty());
}

TEST_F(BrokerLifecycleTest, EphemeralArrayDiesWithItsCreatorEvenOnKill9) {
  auto child = spawn_helper({"create-iota", broker_->socket_path(), "keep", "<f8", "C", "8"});
  EXPECT_TRUE(child.wait(10s).ok());
  auto client = broker_->client();
  ASSERT_TRUE(client.stat("keep"));  // persistent: outlives its creator

  // A creator of an ephemeral array killed with SIGKILL.
  auto holder = spawn_helper({"hold", broker_->socket_path(), "keep"});
  ASSERT_TRUE(holder.read_line(10s));
  EXPECT_EQ(client.stat("keep")->open_handles, 1u);  // the holder
  holder.kill(SIGKILL);
  holder.wait(5s);
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (client.stat("keep")->open_handles != 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(client.stat("keep")->open_handles, 0u);
  auto creator = spawn_helper({"create-ephemeral", broker_->socket_path(), "eph"});
  ASSERT_EQ(creator.read_line(10s), std::optional<std::string>("created"));
  EXPECT_TRUE(client.stat("eph"));
  EXPECT_EQ(broker_->segments().size(), 2u);
  creator.kill(SIGKILL);
  creator.wait(5s);
  const auto deadline2 = std::chrono::steady_clock::now() + 5s;
  while (client.stat("eph") && std::chrono::steady_clock::now() < deadline2) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(client.stat("eph").error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(broker_->segments().size(), 1u);  // its segment is gone too
  ASSERT_TRUE(client.remove("keep"));
}

TEST_F(BrokerLifecycleTest, ArraysSurviveRestartAndCrashWithDataAndVersion) {
  for (int signo : {SIGTERM, SIGKILL}) {
    {
      auto client = broker_->client();
      auto a = client.create("survivor", ArraySpec{.dtype = "<i8", .shape = {1000, 10}});
      ASSERT_TRUE(a);
      auto v = a->as<std::int64_t>();
      std::iota(v->begin(), v->end(), std::int64_t{signo});
      ASSERT_TRUE(a->publish());
      ASSERT_TRUE(a->publish());
      broker_->stop(signo);
      // The mapping keeps working while the broker is down.
      (*v)[0] = 5;
      EXPECT_EQ(*a->publish(), 3u);
    }
    broker_->restart();
    auto client = broker_->client();
    auto st = client.stat("survivor");
    ASSERT_TRUE(st) << "lost after signal " << signo << ": " << st.error().message();
    EXPECT_EQ(st->version, 3u);
    EXPECT_EQ(st->shape, (std::vector<std::uint64_t>{1000, 10}));
    auto a = client.open("survivor", Access::kReadOnly);
    ASSERT_TRUE(a);
    auto v = a->as<const std::int64_t>();
    EXPECT_EQ((*v)[0], 5);
    EXPECT_EQ((*v)[9999], 9999 + signo);
    ASSERT_TRUE(client.remove("survivor"));
  }
}

TEST_F(BrokerLifecycleTest, DataPlaneWorksWithTheBrokerStopped) {
  auto client = broker_->client();
  auto a = client.create("offline", ArraySpec{.dtype = "<f8", .shape = {128}});
  ASSERT_TRUE(a);
  auto peer = client.open("offline", Access::kReadWrite);
  ASSERT_TRUE(peer);
  const std::string socket = broker_->socket_path();
  broker_->stop(SIGKILL);
  (*a->as<double>())[1] = 3.0;
  EXPECT_EQ(*a->publish(), 1u);
  EXPECT_EQ(*peer->wait_newer_than(0, 1s), 1u);
  EXPECT_EQ((*peer->as<const double>())[1], 3.0);
  {
    auto lock = peer->lock(1s);
    EXPECT_TRUE(lock);
  }
  EXPECT_EQ(client.list().error().code(), ErrorCode::kUnavailable);
  broker_->restart();
  auto again = broker_->client();
  ASSERT_TRUE(again.remove("offline"));
}

TEST_F(BrokerLifecycleTest, HostileFramesCloseOnlyTheirOwnConnection) {
  auto good = broker_->steady_client();
  ASSERT_TRUE(good.create("ok", ArraySpec{.shape = {4}}));

  {  // garbage bytes
    UniqueFd fd = raw_connect(broker_->socket_path());
    const char junk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    ASSERT_GT(::send(fd.get(), junk, sizeof junk, MSG_NOSIGNAL), 0);
    const std::string reply = read_until_eof(fd.get());
    EXPECT_GE(reply.size(), wire::kFrameHeaderSize);  // an error reply, then EOF
  }
  {  // a 4 GiB length field
    UniqueFd fd = raw_connect(broker_->socket_path());
    wire::FrameHeader h;
    h.type = wire::MessageType::kHelloRequest;
    h.body_length = 0xffffffffu;
    const auto bytes = wire::encode_header(h);
    ASSERT_GT(::send(fd.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL), 0);
    const std::string reply = read_until_eof(fd.get());
    auto decoded = wire::decode_header(std::as_bytes(std::span(reply)), wire::kMaxReplyBody);
    ASSERT_TRUE(decoded);
    EXPECT_EQ(decoded->type, wire::MessageType::kErrorReply);
  }
  {  // a valid header with a garbage body
    UniqueFd fd = raw_connect(broker_->socket_path());
    const std::byte junk[8]{std::byte{1}, std::byte{2}};
    const auto frame = wire::encode_frame(wire::MessageType::kHelloRequest, 1, junk);
    ASSERT_TRUE(wire::send_all(fd.get(), frame, -1, wire::Clock::now() + 1s));
    EXPECT_FALSE(read_until_eof(fd.get()).empty());
  }
  {  // a descriptor sent to the broker
    UniqueFd fd = raw_connect(broker_->socket_path());
    const auto hello = wire::encode_message(wire::HelloRequest{}, 1);
    ASSERT_TRUE(wire::send_all(fd.get(), hello, STDIN_FILENO, wire::Clock::now() + 1s));
    read_until_eof(fd.get());
  }
  {  // a truncated frame, then silence: the broker times it out (test config 10 s default), so
     // just check that others are served meanwhile
    UniqueFd fd = raw_connect(broker_->socket_path());
    const auto hello = wire::encode_message(wire::HelloRequest{}, 1);
    ASSERT_GT(::send(fd.get(), hello.data(), hello.size() / 2, MSG_NOSIGNAL), 0);
    EXPECT_TRUE(good.stat("ok"));
  }
  EXPECT_TRUE(good.stat("ok"));
  auto fresh = broker_->client();
  EXPECT_TRUE(fresh.stat("ok"));
  ASSERT_TRUE(good.remove("ok"));
}

TEST_F(BrokerLifecycleTest, HelloWithNoCommonProtocolVersionIsRefusedClearly) {
  UniqueFd fd = raw_connect(broker_->socket_path());
  wire::HelloRequest hello;
  hello.min_version = 90;
  hello.max_version = 99;
  ASSERT_TRUE(wire::send_all(fd.get(), wire::encode_message(hello, 7), -1,
                             wire::Clock::now() + 1s));
  const std::string reply = read_until_eof(fd.get());
  wire::FrameReader reader(wire::kMaxReplyBody);
  reader.append(std::as_bytes(std::span(reply)));
  auto frame = reader.next();
  ASSERT_TRUE(frame && frame->has_value());
  EXPECT_EQ((*frame)->header.request_id, 7u);
  auto error = wire::decode<wire::ErrorReply>((*frame)->body);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->code, ErrorCode::kProtocolError);
  EXPECT_NE(error->message.find("90..99"), std::string::npos) << error->message;

  // A request before hello is refused too.
  UniqueFd early = raw_connect(broker_->socket_path());
  ASSERT_TRUE(wire::send_all(early.get(), wire::encode_message(wire::ListRequest{}, 1), -1,
                             wire::Clock::now() + 1s));
  EXPECT_FALSE(read_until_eof(early.get()).empty());
  EXPECT_TRUE(broker_->client().list());
}

}  // namespace
}  // namespace shmarray::test
