// The broker's side of systemd, in one process: NOTIFY_SOCKET datagrams (sent and received over a
// real socket), refusals of unusable addresses, and socket activation's checks on descriptors
// and environment (a LISTEN_PID of another process is not ours; a bad descriptor is named).
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>

#include "journal_log.hpp"
#include "service_notifier.hpp"
#include "socket_activation.hpp"

namespace shmarray::server {
namespace {

TEST(ServiceNotifier, DisabledWithoutAnAddressAndSendsNothing) {
  ServiceNotifier notifier("");
  EXPECT_FALSE(notifier.enabled());
  EXPECT_TRUE(notifier.notify("READY=1"));
}

TEST(ServiceNotifier, FromEnvironmentReadsAndClearsNotifySocket) {
  ::setenv("NOTIFY_SOCKET", "@shmarray-unit", 1);
  const auto notifier = ServiceNotifier::from_environment();
  EXPECT_EQ(notifier.address(), "@shmarray-unit");
  EXPECT_EQ(std::getenv("NOTIFY_SOCKET"), nullptr);  // children do not inherit it
}

TEST(ServiceNotifier, AnAddressThatIsNeitherPathNorAbstractIsAClearError) {
  ServiceNotifier notifier("relative/notify");
  const auto sent = notifier.notify("READY=1");
  ASSERT_FALSE(sent);
  EXPECT_EQ(sent.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(sent.error().message().find("NOTIFY_SOCKET='relative/notify'"), std::string::npos);
}

TEST(ServiceNotifier, SendsOneDatagramToAnAbstractSocket) {
  const std::string name = "@shmarray-unit-notify-" + std::to_string(::getpid());
  UniqueFd listener(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path + 1, name.data() + 1, name.size() - 1);
  ASSERT_EQ(::bind(listener.get(), reinterpret_cast<const sockaddr*>(&addr),
                   static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size())),
            0);
  ServiceNotifier notifier(name);
  ASSERT_TRUE(notifier.notify("READY=1\nSTATUS=serving"));
  char buf[256];
  const ssize_t n = ::recv(listener.get(), buf, sizeof buf, MSG_DONTWAIT);
  ASSERT_GT(n, 0);
  EXPECT_EQ(std::string(buf, static_cast<std::size_t>(n)), "READY=1\nSTATUS=serving");
}

TEST(ServiceNotifier, NobodyListeningIsUnavailableNamingTheSocket) {
  ServiceNotifier notifier("/nonexistent/shmarray-notify");
  const auto sent = notifier.notify("READY=1");
  ASSERT_FALSE(sent);
  EXPECT_EQ(sent.error().code(), ErrorCode::kUnavailable);
  EXPECT_NE(sent.error().message().find("/nonexistent/shmarray-notify"), std::string::npos);
}

TEST(SocketActivation, NothingPassedWhenListenPidIsAnotherProcess) {
  ::setenv("LISTEN_PID", std::to_string(::getpid() + 1).c_str(), 1);
  ::setenv("LISTEN_FDS", "1", 1);
  auto taken = take_activated_socket("");
  ASSERT_TRUE(taken);
  EXPECT_FALSE(taken->has_value());
  EXPECT_EQ(std::getenv("LISTEN_FDS"), nullptr);  // cleared either way
  EXPECT_EQ(std::getenv("LISTEN_PID"), nullptr);
}

TEST(SocketActivation, NothingPassedWithoutTheVariables) {
  ::unsetenv("LISTEN_PID");
  ::unsetenv("LISTEN_FDS");
  auto taken = take_activated_socket("/run/x.sock");
  ASSERT_TRUE(taken);
  EXPECT_FALSE(taken->has_value());
}

TEST(SocketActivation, TwoDescriptorsAreRefusedNamingThem) {
  ::setenv("LISTEN_PID", std::to_string(::getpid()).c_str(), 1);
  ::setenv("LISTEN_FDS", "2", 1);
  ::setenv("LISTEN_FDNAMES", "a:b", 1);
  auto taken = take_activated_socket("");
  ASSERT_FALSE(taken);
  EXPECT_EQ(taken.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(taken.error().message().find("passed 2 descriptors (a:b)"), std::string::npos)
      << taken.error().message();
}

TEST(JournalLog, PatternHasNoTimestampOnlyForTheJournal) {
  EXPECT_EQ(stderr_log_pattern(true), "%*%v");
  EXPECT_NE(stderr_log_pattern(false).find("%Y-%m-%d"), std::string::npos);
}

TEST(JournalLog, JournalStreamMustNameStderr) {
  ::setenv("JOURNAL_STREAM", "1:1", 1);  // not stderr's device and inode
  EXPECT_FALSE(stderr_is_journal());
  ::unsetenv("JOURNAL_STREAM");
  EXPECT_FALSE(stderr_is_journal());
}

}  // namespace
}  // namespace shmarray::server
