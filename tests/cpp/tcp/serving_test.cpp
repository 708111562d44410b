// ServingConn (serving.h): the serving side of a handed-off connection, alone.
#include "tcp/serving.h"

#include <gtest/gtest.h>

#include "io/fakes.h"
#include "net/packet_builder.h"

namespace hl::tcp {
namespace {

namespace flag = net::tcp_flag;
using tcp::SeqNum;

const net::Endpoint kVip{net::ipv4(10, 0, 100, 1), 80};
const net::Endpoint kBackend{net::ipv4(10, 0, 2, 11), 80};
const net::Endpoint kClient{net::ipv4(10, 0, 1, 11), 40000};
constexpr uint32_t kC = 1000;  // client ISN
constexpr uint32_t kF = 5000;  // front-end ISN
constexpr uint32_t kB = 9000;  // back-end ISN

tcp::ServingConn make_conn() {
  tcp::SynReplay syn;
  syn.client_isn = SeqNum(kC);
  syn.frontend_isn = SeqNum(kF);
  return tcp::ServingConn(kClient, syn, kVip, kBackend, 42);
}

std::vector<uint8_t> from_client(uint32_t seq, uint32_t ack, uint8_t flags, std::string_view text = {}) {
  return net::PacketBuilder().ipv4(kClient.addr, kBackend.addr).tcp(kClient.port, 80).seq(seq).ack(ack)
      .flags(flags).payload(text).build();
}

std::vector<uint8_t> from_server(uint32_t seq, uint32_t ack, uint8_t flags, std::string_view text = {}) {
  return net::PacketBuilder().ipv4(kBackend.addr, kClient.addr).tcp(80, kClient.port).seq(seq).ack(ack)
      .flags(flags).payload(text).build();
}

void learn(tcp::ServingConn& conn) {
  auto synack = testing::parse(from_server(kB, kC + 1, static_cast<uint8_t>(flag::SYN | flag::ACK)));
  ASSERT_TRUE(conn.learn_synack(synack.pkt));
}

TEST(ServingConnTest, LearnsBOnceAndTranslatesBothWays) {
  tcp::ServingConn conn = make_conn();
  EXPECT_EQ(conn.state, tcp::ServingConn::State::AwaitSynAck);
  EXPECT_EQ(conn.created_ms, 42u);
  EXPECT_EQ(conn.client_next, SeqNum(kC + 1));
  learn(conn);
  EXPECT_EQ(conn.state, tcp::ServingConn::State::Established);
  auto again = testing::parse(from_server(kB + 7, kC + 1, static_cast<uint8_t>(flag::SYN | flag::ACK)));
  EXPECT_FALSE(conn.learn_synack(again.pkt)) << "a retransmitted SYN/ACK teaches nothing";
  EXPECT_EQ(conn.params.backend_isn, SeqNum(kB));

  auto request = testing::parse(from_client(kC + 1, kF + 1, flag::ACK, "GET"));
  EXPECT_EQ(conn.from_client(request.pkt, net::ChecksumState::Full), tcp::ServingConn::ClientEvent::kNone);
  EXPECT_EQ(request.pkt.ack(), kB + 1) << "ack -= f - b";
  EXPECT_EQ(request.pkt.dst_addr(), kBackend.addr);
  EXPECT_EQ(conn.client_next, SeqNum(kC + 4));

  auto response = testing::parse(from_server(kB + 1, kC + 4, flag::ACK, "200"));
  EXPECT_EQ(conn.from_server(response.pkt, net::ChecksumState::Full), tcp::ServingConn::ServerEvent::kData);
  EXPECT_EQ(response.pkt.seq(), kF + 1) << "seq += f - b";
  EXPECT_EQ(response.pkt.src_addr(), kVip.addr);
}

TEST(ServingConnTest, EndsWithBothFinsAcknowledged) {
  tcp::ServingConn conn = make_conn();
  learn(conn);
  auto server_fin = testing::parse(from_server(kB + 1, kC + 1, static_cast<uint8_t>(flag::FIN | flag::ACK), "bye"));
  EXPECT_EQ(conn.from_server(server_fin.pkt, net::ChecksumState::Full), tcp::ServingConn::ServerEvent::kFin);
  auto client_fin = testing::parse(from_client(kC + 1, kF + 4, static_cast<uint8_t>(flag::FIN | flag::ACK)));
  EXPECT_EQ(conn.from_client(client_fin.pkt, net::ChecksumState::Full), tcp::ServingConn::ClientEvent::kNone)
      << "the server's FIN is not acknowledged yet";
  auto last_ack = testing::parse(from_client(kC + 2, kF + 5, flag::ACK));
  EXPECT_EQ(conn.from_client(last_ack.pkt, net::ChecksumState::Full), tcp::ServingConn::ClientEvent::kFinsAcked);
  EXPECT_TRUE(conn.close(100));
  EXPECT_FALSE(conn.close(200)) << "closed once";
  EXPECT_EQ(conn.state, tcp::ServingConn::State::Closed);
  EXPECT_EQ(conn.closed_ms, 100u);
}

TEST(ServingConnTest, OnlyAnExactRstEndsIt) {
  tcp::ServingConn conn = make_conn();
  learn(conn);
  auto blind = testing::parse(from_client(kC + 500, 0, flag::RST));
  EXPECT_EQ(conn.from_client(blind.pkt, net::ChecksumState::Full), tcp::ServingConn::ClientEvent::kBlindRst);
  auto exact = testing::parse(from_client(kC + 1, 0, flag::RST));
  EXPECT_EQ(conn.from_client(exact.pkt, net::ChecksumState::Full), tcp::ServingConn::ClientEvent::kRst);
  auto server_rst = testing::parse(from_server(kB + 1, 0, flag::RST));
  EXPECT_EQ(conn.from_server(server_rst.pkt, net::ChecksumState::Full), tcp::ServingConn::ServerEvent::kRst);
}

TEST(ServingConnTest, ReplaysHeldPacketsInOrder) {
  tcp::ServingConn conn = make_conn();
  auto a = from_client(kC + 1, kF + 1, flag::ACK, "a");
  auto b = from_client(kC + 2, kF + 1, flag::ACK, "b");
  conn.held.push_back({7, false, a});
  conn.held.push_back({8, true, b});
  conn.held.push_back({9, false, {1, 2, 3}});  // cannot parse: dropped
  testing::FakeVerdicts fake;
  uint64_t errors = 0;
  io::CheckedVerdicts verdicts(fake, errors);
  std::vector<std::pair<uint32_t, net::ChecksumState>> seen;
  tcp::replay_held(conn, verdicts, [&](uint32_t id, net::TcpPacket&, net::ChecksumState state) {
    seen.emplace_back(id, state);
  });
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0], std::make_pair(7u, net::ChecksumState::Full));
  EXPECT_EQ(seen[1], std::make_pair(8u, net::ChecksumState::Partial));
  auto dropped = fake.take();
  ASSERT_EQ(dropped.size(), 1u);
  EXPECT_EQ(dropped[0].id, 9u);
  EXPECT_TRUE(conn.held.empty());
}

TEST(ServingConnTest, ExpiresByState) {
  tcp::ServingConn conn = make_conn();  // created at 42
  EXPECT_FALSE(conn.expired(42 + 9, 10, 100, 5));
  EXPECT_TRUE(conn.expired(42 + 10, 10, 100, 5)) << "no SYN/ACK within the handshake time";
  learn(conn);
  conn.last_seen_ms = 60;
  EXPECT_FALSE(conn.expired(60 + 99, 10, 100, 5));
  EXPECT_TRUE(conn.expired(60 + 100, 10, 100, 5)) << "idle";
  conn.close(70);
  EXPECT_TRUE(conn.expired(70 + 5, 10, 100, 5)) << "lingered";
}

}  // namespace
}  // namespace hl::tcp
