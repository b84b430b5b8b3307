// The pure parts of mirrors across hosts: the peer-link messages between bridges
// (server/src/bridge/peer_messages.hpp) round-trip and reject hostile bytes naming the field;
// the key file is refused unless private to the broker's user; the challenge-response proofs
// verify only with the same key, role and nonces; the broker's mirror table persists and refuses
// overlapping prefixes.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "bridge/peer_key.hpp"
#include "bridge/peer_messages.hpp"
#include "bridge/spin_policy.hpp"
#include "mirror_table.hpp"

namespace shmarray::bridge {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

template <class M>
M round_trip(const M& m) {
  const auto bytes = encode_peer(PeerMessage{m});
  auto header = decode_peer_header(bytes);
  EXPECT_TRUE(header.has_value());
  EXPECT_EQ(header->body_bytes, bytes.size() - kPeerHeaderBytes);
  auto body = decode_peer_body(header->type, std::span(bytes).subspan(kPeerHeaderBytes));
  EXPECT_TRUE(body.has_value()) << body.error().message();
  return std::get<M>(*body);
}

ArrayBegin sample_begin() {
  return ArrayBegin{"cam/0", "<f4", {480, 640}, Order::kF, 0644, 42, 480 * 640 * 4,
                    "0123456789abcdef0123456789abcdef", 3, 256 * 1024};
}

TEST(PeerMessages, EveryMessageRoundTrips) {
  Hello hello{PeerRole::kSource, random_nonce()};
  EXPECT_EQ(round_trip(hello).nonce, hello.nonce);
  EXPECT_EQ(round_trip(hello).role, PeerRole::kSource);
  Proof proof{};
  proof.mac[3] = std::byte{7};
  EXPECT_EQ(round_trip(proof).mac, proof.mac);
  EXPECT_EQ(round_trip(Refused{ErrorCode::kPermissionDenied, "no"}).message, "no");
  EXPECT_EQ(round_trip(Subscribe{"cam/"}).prefix, "cam/");
  const auto b = round_trip(sample_begin());
  EXPECT_EQ(b.name, "cam/0");
  EXPECT_EQ(b.dtype, "<f4");
  EXPECT_EQ(b.shape, (std::vector<std::uint64_t>{480, 640}));
  EXPECT_EQ(b.order, Order::kF);
  EXPECT_EQ(b.mode, 0644u);
  EXPECT_EQ(b.version, 42u);
  EXPECT_EQ(b.nbytes, 480u * 640 * 4);
  EXPECT_EQ(b.source_id, "0123456789abcdef0123456789abcdef");
  EXPECT_EQ(b.transfer, 3u);
  EXPECT_EQ(b.chunk_bytes, 256u * 1024);
  auto on_stream = sample_begin();
  on_stream.chunk_bytes = 0;  // the bytes follow on the stream
  EXPECT_EQ(round_trip(on_stream).chunk_bytes, 0u);
  EXPECT_EQ(round_trip(ArrayEnd{TransferEnd::kRetry, 9}).end, TransferEnd::kRetry);
  EXPECT_EQ(round_trip(ArrayRemoved{"cam/1"}).name, "cam/1");
  EXPECT_EQ(round_trip(InventoryEnd{5}).count, 5u);
  (void)round_trip(Heartbeat{});
  (void)round_trip(Subscribed{});
  const auto sb = round_trip(StreamBegin{"cam/s", 8, 64, 2, 4, Overflow::kDropOldest, 0640,
                                         "0123456789abcdef0123456789abcdef"});
  EXPECT_EQ(sb.slots, 8u);
  EXPECT_EQ(sb.slot_bytes, 64u);
  EXPECT_EQ(sb.history, 2u);
  EXPECT_EQ(sb.max_subscribers, 4u);
  EXPECT_EQ(sb.overflow, Overflow::kDropOldest);
  const auto sm = round_trip(StreamMessage{"cam/s", 77, "<u8", {8}, Order::kC, 64});
  EXPECT_EQ(sm.seq, 77u);
  EXPECT_EQ(sm.shape, (std::vector<std::uint64_t>{8}));
  EXPECT_EQ(sm.nbytes, 64u);
  PeerAddresses addresses;
  addresses.addresses.push_back({});
  addresses.addresses.back()[15] = std::byte{1};
  addresses.ports = {40001, 65535};
  const auto back = round_trip(addresses);
  EXPECT_EQ(back.addresses, addresses.addresses);
  EXPECT_EQ(back.ports, addresses.ports);
  const WorkerAddress worker{{std::byte{1}, std::byte{2}, std::byte{3}}};
  EXPECT_EQ(round_trip(worker).address, worker.address);
}

TEST(PeerMessages, TheAddressMessagesAreBounded) {
  const auto body_of = [](const PeerMessage& m) {
    auto bytes = encode_peer(m);
    return std::vector<std::byte>(bytes.begin() + kPeerHeaderBytes, bytes.end());
  };
  PeerAddresses many;
  many.addresses.resize(kMaxPeerAddresses + 1);
  many.ports = {40001};
  EXPECT_THAT(decode_peer_body(PeerType::kPeerAddresses, body_of(many)).error().message(),
              HasSubstr("address count 65 is over 64"));
  auto truncated = body_of(PeerAddresses{{{}, {}}, {40001}});
  truncated.resize(truncated.size() - 8);  // the ports and 4 bytes of the second address
  EXPECT_THAT(decode_peer_body(PeerType::kPeerAddresses, truncated).error().message(),
              HasSubstr("truncated at address"));
  // The source ports: 1 to 8, none of them 0 (what the receiver's listeners admit).
  EXPECT_THAT(
      decode_peer_body(PeerType::kPeerAddresses, body_of(PeerAddresses{{{}}, {}})).error().message(),
      HasSubstr("source port count 0 is not 1-8"));
  PeerAddresses ports;
  ports.addresses.resize(1);
  ports.ports.assign(kMaxPeerSourcePorts + 1, 40001);
  EXPECT_THAT(decode_peer_body(PeerType::kPeerAddresses, body_of(ports)).error().message(),
              HasSubstr("source port count 9 is not 1-8"));
  ports.ports = {40001, 0};
  EXPECT_THAT(decode_peer_body(PeerType::kPeerAddresses, body_of(ports)).error().message(),
              HasSubstr("source port 0"));
  EXPECT_THAT(decode_peer_body(PeerType::kWorkerAddress, body_of(WorkerAddress{})).error().message(),
              HasSubstr("worker address length 0"));
  WorkerAddress huge;
  huge.address.resize(kMaxWorkerAddressBytes + 1);
  EXPECT_FALSE(decode_peer_body(PeerType::kWorkerAddress, body_of(huge)));
  auto longer = body_of(WorkerAddress{{std::byte{1}, std::byte{2}}});
  longer[0] = std::byte{3};  // says 3 bytes, holds 2
  EXPECT_THAT(decode_peer_body(PeerType::kWorkerAddress, longer).error().message(),
              HasSubstr("truncated"));
}

TEST(PeerMessages, StreamBeginIsCheckedWithTheStreamRules) {
  const auto body_of = [](const PeerMessage& m) {
    auto bytes = encode_peer(m);
    return std::vector<std::byte>(bytes.begin() + kPeerHeaderBytes, bytes.end());
  };
  StreamBegin b{"cam/s", 1, 64, 0, 4, Overflow::kBlock, 0640, "0123456789abcdef0123456789abcdef"};
  EXPECT_THAT(decode_peer_body(PeerType::kStreamBegin, body_of(b)).error().message(),
              HasSubstr("slots"));
  b.slots = 8;
  b.history = 8;  // history must stay below slots
  EXPECT_FALSE(decode_peer_body(PeerType::kStreamBegin, body_of(b)));
  auto body = body_of(StreamMessage{"cam/s", 1, "<u8", {8}, Order::kC, 64});
  body[body.size() - 8 - 4] = std::byte{33};  // ndim 33
  EXPECT_THAT(decode_peer_body(PeerType::kStreamMessage, body).error().message(),
              HasSubstr("ndim"));
}

TEST(PeerMessages, HeaderRejectsWrongMagicVersionTypeAndHugeBodies) {
  auto bytes = encode_peer(Heartbeat{});
  auto bad = bytes;
  bad[0] = std::byte{'X'};
  EXPECT_THAT(decode_peer_header(bad).error().message(), HasSubstr("not a shmarray bridge"));
  bad = bytes;
  bad[4] = std::byte{9};
  EXPECT_THAT(decode_peer_header(bad).error().message(), HasSubstr("peer-link version 9"));
  bad = bytes;
  bad[6] = std::byte{99};
  EXPECT_THAT(decode_peer_header(bad).error().message(), HasSubstr("unknown message type 99"));
  bad = bytes;
  bad[10] = std::byte{0x10};  // body length 1 MiB
  EXPECT_THAT(decode_peer_header(bad).error().message(), HasSubstr("over the limit"));
  EXPECT_EQ(decode_peer_header(std::span(bytes).first(5)).error().code(),
            ErrorCode::kProtocolError);
}

TEST(PeerMessages, BodiesRejectHostileFieldsNamingThem) {
  const auto body_of = [](const PeerMessage& m) {
    auto bytes = encode_peer(m);
    return std::vector<std::byte>(bytes.begin() + kPeerHeaderBytes, bytes.end());
  };
  auto begin = sample_begin();
  begin.name = "../etc/passwd";
  auto r = decode_peer_body(PeerType::kArrayBegin, body_of(begin));
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message(), HasSubstr("bad array name"));

  begin = sample_begin();
  begin.shape.assign(kMaxNdim + 1, 1);
  r = decode_peer_body(PeerType::kArrayBegin, body_of(begin));
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message(), HasSubstr("ndim"));

  begin = sample_begin();
  begin.source_id = "not-hex";
  EXPECT_THAT(decode_peer_body(PeerType::kArrayBegin, body_of(begin)).error().message(),
              HasSubstr("source id"));
  begin = sample_begin();
  begin.mode = 04755;
  EXPECT_THAT(decode_peer_body(PeerType::kArrayBegin, body_of(begin)).error().message(),
              HasSubstr("mode"));

  auto body = body_of(sample_begin());
  body.resize(body.size() - 3);
  EXPECT_THAT(decode_peer_body(PeerType::kArrayBegin, body).error().message(),
              HasSubstr("truncated"));
  body = body_of(sample_begin());
  body.push_back(std::byte{0});
  EXPECT_THAT(decode_peer_body(PeerType::kArrayBegin, body).error().message(),
              HasSubstr("unexpected bytes"));

  EXPECT_FALSE(decode_peer_body(PeerType::kSubscribe, body_of(Subscribe{"/abs"})));
  EXPECT_FALSE(decode_peer_body(PeerType::kSubscribe, body_of(Subscribe{"a b"})));
  auto end = body_of(ArrayEnd{TransferEnd::kCommit, 1});
  end[0] = std::byte{4};
  EXPECT_THAT(decode_peer_body(PeerType::kArrayEnd, end).error().message(),
              HasSubstr("transfer end"));
  auto hello = body_of(Hello{PeerRole::kMirror, {}});
  hello[0] = std::byte{3};
  EXPECT_THAT(decode_peer_body(PeerType::kHello, hello).error().message(), HasSubstr("role"));
}

// The array bytes' tag API fields (chunked_transfer.hpp): a transfer number a tag can hold, and
// chunks neither tiny (a chunk index per 1 byte) nor more than a tag can count.
TEST(PeerMessages, ArrayBeginRejectsTransferAndChunkFieldsATagCannotHold) {
  const auto body_of = [](const PeerMessage& m) {
    auto bytes = encode_peer(m);
    return std::vector<std::byte>(bytes.begin() + kPeerHeaderBytes, bytes.end());
  };
  auto begin = sample_begin();
  begin.transfer = 0;
  EXPECT_THAT(decode_peer_body(PeerType::kArrayBegin, body_of(begin)).error().message(),
              HasSubstr("transfer 0"));
  begin.transfer = kMaxTransfer + 1;
  EXPECT_THAT(decode_peer_body(PeerType::kArrayBegin, body_of(begin)).error().message(),
              HasSubstr("transfer"));
  begin = sample_begin();
  begin.chunk_bytes = 1;
  EXPECT_THAT(decode_peer_body(PeerType::kArrayBegin, body_of(begin)).error().message(),
              HasSubstr("chunk bytes 1 "));
  begin.chunk_bytes = kMaxChunkBytes + 1;
  EXPECT_THAT(decode_peer_body(PeerType::kArrayBegin, body_of(begin)).error().message(),
              HasSubstr("chunk bytes"));
  begin = sample_begin();
  begin.chunk_bytes = kMinChunkBytes;
  begin.nbytes = kMinChunkBytes * kMaxChunks + 1;
  begin.shape = {begin.nbytes};
  begin.dtype = "|u1";
  EXPECT_THAT(decode_peer_body(PeerType::kArrayBegin, body_of(begin)).error().message(),
              HasSubstr("chunks"));
  begin.nbytes -= 1;
  begin.shape = {begin.nbytes};
  EXPECT_TRUE(decode_peer_body(PeerType::kArrayBegin, body_of(begin)));
}

// A peer of another release: refused in its own version's header (the header and Refused keep
// their layout), naming both versions and the remedy.
TEST(PeerMessages, APeerOfAnotherVersionIsRefusedInItsOwnVersionNamingBoth) {
  auto bytes = encode_peer(Hello{PeerRole::kMirror, {}});
  bytes[4] = std::byte{1};  // a version-1 bridge's Hello
  EXPECT_EQ(peer_version_of(bytes), std::uint16_t{1});
  const auto refused = decode_peer_header(bytes);
  ASSERT_FALSE(refused);
  EXPECT_THAT(refused.error().message(), HasSubstr("peer-link version 1"));
  EXPECT_THAT(refused.error().message(), HasSubstr("version " + std::to_string(kPeerVersion)));
  EXPECT_THAT(refused.error().message(), HasSubstr("upgrade both brokers"));
  const auto answer = encode_refusal(1, Refused{ErrorCode::kPermissionDenied, "why"});
  EXPECT_EQ(peer_version_of(answer), std::uint16_t{1});
  EXPECT_EQ(static_cast<int>(answer[6]), static_cast<int>(PeerType::kRefused));
  std::vector<std::byte> not_ours(bytes);
  not_ours[0] = std::byte{'X'};
  EXPECT_FALSE(peer_version_of(not_ours));
}

TEST(PeerMessages, PrefixAllowedOnlyUnderAnAllowedPrefix) {
  const std::vector<std::string> allowed{"cam/", "sim/run1"};
  EXPECT_TRUE(prefix_allowed("cam/", allowed));
  EXPECT_TRUE(prefix_allowed("cam/left/", allowed));
  EXPECT_TRUE(prefix_allowed("sim/run10", allowed));
  EXPECT_FALSE(prefix_allowed("ca", allowed));
  EXPECT_FALSE(prefix_allowed("secret/", allowed));
  EXPECT_FALSE(prefix_allowed("cam/", {}));
}

class KeyFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("peer_key_test." + std::to_string(::getpid()));
    fs::create_directories(dir_);
    path_ = (dir_ / "key").string();
  }
  void TearDown() override { fs::remove_all(dir_); }
  void write(std::size_t bytes, mode_t mode) {
    std::ofstream(path_) << std::string(bytes, 'k');
    ::chmod(path_.c_str(), mode);
  }
  fs::path dir_;
  std::string path_;
};

TEST_F(KeyFile, PrivateFileOfTheBrokersUserIsAccepted) {
  write(32, 0600);
  EXPECT_TRUE(PeerKey::load(path_, ::geteuid()).has_value());
}

TEST_F(KeyFile, ModeOtherThan0600IsRefusedWithTheRemedy) {
  write(32, 0644);
  auto key = PeerKey::load(path_, ::geteuid());
  ASSERT_FALSE(key);
  EXPECT_EQ(key.error().code(), ErrorCode::kPermissionDenied);
  EXPECT_THAT(key.error().message(), HasSubstr("mode 0644"));
  EXPECT_THAT(key.error().message(), HasSubstr("chmod 600"));
}

TEST_F(KeyFile, AnotherOwnerIsRefused) {
  write(32, 0600);
  auto key = PeerKey::load(path_, ::geteuid() + 1);
  ASSERT_FALSE(key);
  EXPECT_THAT(key.error().message(), HasSubstr("not by the broker's uid"));
}

TEST_F(KeyFile, ShortFileSymlinkAndDirectoryAreRefused) {
  write(31, 0600);
  EXPECT_THAT(PeerKey::load(path_, ::geteuid()).error().message(), HasSubstr("31 bytes"));
  write(32, 0600);
  const std::string link = (dir_ / "link").string();
  ASSERT_EQ(::symlink(path_.c_str(), link.c_str()), 0);
  EXPECT_THAT(PeerKey::load(link, ::geteuid()).error().message(), HasSubstr("symbolic link"));
  EXPECT_THAT(PeerKey::load(dir_.string(), ::geteuid()).error().message(),
              HasSubstr("not a regular file"));
}

TEST(PeerProof, VerifiesOnlyWithTheSameKeyRoleAndNonces) {
  std::vector<std::byte> bytes(32, std::byte{1});
  const auto key = PeerKey::from_bytes(bytes);
  bytes[0] = std::byte{2};
  const auto other = PeerKey::from_bytes(bytes);
  const auto m = random_nonce();
  const auto s = random_nonce();
  const auto mac = key.prove(PeerRole::kMirror, m, s);
  EXPECT_TRUE(key.verify(PeerRole::kMirror, m, s, mac));
  EXPECT_FALSE(other.verify(PeerRole::kMirror, m, s, mac));         // wrong key
  EXPECT_FALSE(key.verify(PeerRole::kSource, m, s, mac));           // reflected to the other role
  EXPECT_FALSE(key.verify(PeerRole::kMirror, s, m, mac));           // nonces swapped
  EXPECT_FALSE(key.verify(PeerRole::kMirror, m, random_nonce(), mac));  // replayed on a new link
}

// The bridges' polling after activity: on by default only where there are cores to spare (on 2
// vCPUs the spinning bridges took the CPU from the publisher and the reader), and the variable's
// text is taken only when it is a sane number of microseconds.
TEST(SpinPolicyTest, SpinsByDefaultOnlyWithCoresToSpare) {
  using std::chrono::nanoseconds;
  EXPECT_EQ(default_spin_for(1), nanoseconds(0));
  EXPECT_EQ(default_spin_for(2), nanoseconds(0));
  EXPECT_EQ(default_spin_for(kMinCpusToSpin - 1), nanoseconds(0));
  EXPECT_EQ(default_spin_for(kMinCpusToSpin), nanoseconds(kSpinWithIdleCores));
  EXPECT_EQ(default_spin_for(16), nanoseconds(kSpinWithIdleCores));
  EXPECT_GT(kSpinWithIdleCores.count(), 0);
}

TEST(SpinPolicyTest, TheVariableIsAWholeNumberOfMicroseconds) {
  using std::chrono::microseconds;
  EXPECT_EQ(parse_spin_us("0"), microseconds(0));
  EXPECT_EQ(parse_spin_us("120"), microseconds(120));
  EXPECT_EQ(parse_spin_us("10000"), microseconds(10'000));
  for (const char* bad : {"", "-1", "+5", " 5", "5us", "abc", "10001", "99999999999999999999"}) {
    EXPECT_EQ(parse_spin_us(bad), std::nullopt) << "'" << bad << "'";
  }
  EXPECT_EQ(parse_spin_us(nullptr), std::nullopt);
}

// Mid-transfer the bridges poll on any number of CPUs (the producer and the reader wait for the
// transfer anyway): kTransferSpin unless the variable says otherwise, and never less than the
// idle spin (a transfer is not waited for more lazily than idleness).
TEST(SpinPolicyTest, MidTransferPollingIsOnByDefaultAndNeverShorterThanTheIdleSpin) {
  using std::chrono::microseconds;
  using std::chrono::nanoseconds;
  EXPECT_GT(kTransferSpin.count(), 0);
  EXPECT_EQ(transfer_spin_for(nanoseconds(0), nullptr), nanoseconds(kTransferSpin));
  EXPECT_EQ(transfer_spin_for(nanoseconds(0), "0"), nanoseconds(0));
  EXPECT_EQ(transfer_spin_for(nanoseconds(0), "200"), microseconds(200));
  EXPECT_EQ(transfer_spin_for(nanoseconds(0), "5us"), nanoseconds(kTransferSpin));  // ignored
  EXPECT_EQ(transfer_spin_for(microseconds(500), "0"), microseconds(500));
  EXPECT_EQ(transfer_spin_for(microseconds(500), nullptr), microseconds(500));
  EXPECT_EQ(transfer_spin_for(default_spin_for(16), nullptr),
            std::max(nanoseconds(kSpinWithIdleCores), nanoseconds(kTransferSpin)));
}

}  // namespace
}  // namespace shmarray::bridge

namespace shmarray::server {
namespace {

using ::testing::HasSubstr;

TEST(MirrorTable, PersistsAddAndRemoveAndMapsNamesToTheirMirror) {
  const std::string path = "/tmp/mirror_table_test." + std::to_string(::getpid());
  ::unlink(path.c_str());
  {
    auto table = MirrorTable::load(path);
    ASSERT_TRUE(table);
    ASSERT_TRUE(table->add("cam/", "10.0.0.1:7500"));
    ASSERT_TRUE(table->add("sim/", "10.0.0.2:7500"));
    EXPECT_EQ(table->add("cam/left/", "x:1").error().code(), ErrorCode::kAlreadyExists);
    EXPECT_EQ(table->add("ca", "x:1").error().code(), ErrorCode::kAlreadyExists);
    ASSERT_TRUE(table->remove("sim/"));
    EXPECT_EQ(table->remove("sim/").error().code(), ErrorCode::kNotFound);
  }
  auto again = MirrorTable::load(path);
  ASSERT_TRUE(again);
  ASSERT_EQ(again->list().size(), 1u);
  ASSERT_NE(again->mirror_of("cam/0"), nullptr);
  EXPECT_EQ(again->mirror_of("cam/0")->peer, "10.0.0.1:7500");
  EXPECT_EQ(again->mirror_of("cam"), nullptr);
  EXPECT_EQ(again->mirror_of("sim/0"), nullptr);
  EXPECT_EQ(again->mirror_of("dog"), nullptr);
  again->apply_report({MirrorInfo{"cam/", "10.0.0.1:7500", "up", {{"cam/0", 5, 4, 12}, {"x", 1, 1, 0}}}});
  ASSERT_NE(again->array_status("cam/0"), nullptr);
  EXPECT_EQ(again->array_status("cam/0")->source_version, 5u);
  EXPECT_EQ(again->array_status("x"), nullptr);  // a report cannot speak for other names
  EXPECT_EQ(again->list()[0].link, "up");
  ::unlink(path.c_str());
}

TEST(MirrorTable, CorruptOrLinkedFileIsRefused) {
  const std::string path = "/tmp/mirror_table_bad." + std::to_string(::getpid());
  std::ofstream(path) << "no tab here\n";
  EXPECT_THAT(MirrorTable::load(path).error().message(), HasSubstr("line 1"));
  const std::string link = path + ".link";
  ASSERT_EQ(::symlink(path.c_str(), link.c_str()), 0);
  EXPECT_THAT(MirrorTable::load(link).error().message(), HasSubstr("symbolic link"));
  ::unlink(link.c_str());
  ::unlink(path.c_str());
}

}  // namespace
}  // namespace shmarray::server
