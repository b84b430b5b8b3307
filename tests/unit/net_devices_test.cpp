// Which interfaces the bridge lets UCX use (server/src/bridge/net_devices.hpp).
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "bridge/net_devices.hpp"

namespace shmarray::bridge {
namespace {

using ::testing::HasSubstr;

sockaddr_storage v4(const char* text) {
  sockaddr_storage s{};
  auto& a = reinterpret_cast<sockaddr_in&>(s);
  a.sin_family = AF_INET;
  EXPECT_EQ(::inet_pton(AF_INET, text, &a.sin_addr), 1);
  return s;
}

sockaddr_storage v6(const char* text) {
  sockaddr_storage s{};
  auto& a = reinterpret_cast<sockaddr_in6&>(s);
  a.sin6_family = AF_INET6;
  EXPECT_EQ(::inet_pton(AF_INET6, text, &a.sin6_addr), 1);
  return s;
}

TEST(NetDevices, WildcardsAreTheAnyAddressesOnly) {
  EXPECT_TRUE(is_wildcard(v4("0.0.0.0")));
  EXPECT_TRUE(is_wildcard(v6("::")));
  EXPECT_FALSE(is_wildcard(v4("127.0.0.1")));
  EXPECT_FALSE(is_wildcard(v6("::1")));
}

TEST(NetDevices, LoopbackAddressesAndRoutesAreOnLo) {
  EXPECT_EQ(interface_of(v4("127.0.0.1")).value_or("?"), "lo");
  EXPECT_EQ(interface_toward(v4("127.0.0.1")).value_or("?"), "lo");
}

TEST(NetDevices, AnAddressNoInterfaceHoldsIsNotFoundNamingIt) {
  // 203.0.113.0/24 is TEST-NET-3: documentation only, never assigned.
  auto i = interface_of(v4("203.0.113.77"));
  ASSERT_FALSE(i);
  EXPECT_EQ(i.error().code(), ErrorCode::kNotFound);
  EXPECT_THAT(i.error().message(), HasSubstr("203.0.113.77"));
}

TEST(NetDevices, TheListIsTheInterfacesOnceEachThenEveryRdmaPort) {
  char tmpl[] = "/tmp/shmarray-ib-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::filesystem::path ib = tmpl;
  std::filesystem::create_directories(ib / "mlx5_1" / "ports" / "1");
  std::filesystem::create_directories(ib / "mlx5_0" / "ports" / "1");
  std::filesystem::create_directories(ib / "mlx5_0" / "ports" / "2");
  EXPECT_EQ(ucx_net_devices({"lo", "eth1", "lo"}, ib.string()),
            "lo,eth1,mlx5_0:1,mlx5_0:2,mlx5_1:1");
  EXPECT_EQ(ucx_net_devices({"eth0"}, (ib / "absent").string()), "eth0");
  std::filesystem::remove_all(ib);
}

TEST(NetDevices, TheChoiceCoversTheListenerAndTheRoutesToSources) {
  const auto both = choose_net_devices(v4("127.0.0.1"), {v4("127.0.0.2")}, {});
  ASSERT_TRUE(both.devices) << both.why;
  EXPECT_EQ(both.devices->substr(0, 2), "lo");
  EXPECT_THAT(both.why, HasSubstr("UCX_NET_DEVICES=lo"));
  const auto none = choose_net_devices(std::nullopt, {}, {});
  EXPECT_FALSE(none.devices);
  EXPECT_EQ(none.why, "");
}

TEST(NetDevices, WhatCannotBeKnownLeavesUcxsDefaultSayingWhy) {
  const auto wildcard = choose_net_devices(v4("0.0.0.0"), {}, {});
  EXPECT_FALSE(wildcard.devices);
  EXPECT_THAT(wildcard.why, HasSubstr("wildcard"));
  EXPECT_THAT(wildcard.why, HasSubstr("set UCX_NET_DEVICES"));
  const auto unresolved = choose_net_devices(v4("127.0.0.1"), {}, {"camhost:7500"});
  EXPECT_FALSE(unresolved.devices);
  EXPECT_THAT(unresolved.why, HasSubstr("camhost:7500"));
  const auto foreign = choose_net_devices(v4("203.0.113.77"), {}, {});
  EXPECT_FALSE(foreign.devices);
  EXPECT_THAT(foreign.why, HasSubstr("--peer-listen"));
}

}  // namespace
}  // namespace shmarray::bridge
