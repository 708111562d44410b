// The emulated handshake (handshake.h): what a client's SYN teaches, the answer an
// emulated server chooses, in-order request buffering, and the segments sent.
#include "tcp/handshake.h"

#include <gtest/gtest.h>

#include "io/fakes.h"
#include "net/packet_builder.h"

namespace hl::tcp {
namespace {

namespace flag = net::tcp_flag;
using tcp::SeqNum;

const net::Endpoint kVip{net::ipv4(10, 0, 100, 1), 80};
const net::Endpoint kClient{net::ipv4(10, 0, 1, 11), 40000};

std::vector<uint8_t> client_syn(bool options) {
  net::PacketBuilder b;
  b.ipv4(kClient.addr, kVip.addr).tcp(kClient.port, kVip.port).seq(1000).flags(flag::SYN).window(64240);
  if (options) b.mss(1460).wscale(7).sack_permitted().timestamps(77, 0);
  return b.build();
}

std::vector<uint8_t> client_data(uint32_t seq, std::string_view text) {
  return net::PacketBuilder().ipv4(kClient.addr, kVip.addr).tcp(kClient.port, kVip.port).seq(seq).ack(1)
      .flags(flag::ACK).payload(text).build();
}

TEST(HandshakeTest, NotesTheSynAndAnswersWithItsOptions) {
  auto syn = testing::parse(client_syn(true));
  tcp::ClientHandshake hs;
  hs.note_syn(syn.pkt, 1400);
  EXPECT_EQ(hs.client, kClient);
  EXPECT_EQ(hs.client_isn, SeqNum(1000));
  EXPECT_EQ(hs.rcv_nxt, SeqNum(1001));
  EXPECT_EQ(hs.mss, 1400) << "capped by what the servers accept";
  EXPECT_EQ(hs.syn_window, 64240);
  EXPECT_EQ(hs.client_tsval, 77u);
  std::mt19937_64 rng(1);
  hs.answer(rng, 9);
  EXPECT_TRUE(hs.ts_ok);
  EXPECT_TRUE(hs.wscale_ok);
  EXPECT_EQ(hs.server_wscale, 9);
  ASSERT_TRUE(hs.our_timestamps());
  EXPECT_EQ(hs.our_timestamps()->tsecr, 77u);

  auto bare = testing::parse(client_syn(false));
  tcp::ClientHandshake plain;
  plain.note_syn(bare.pkt, 1460);
  EXPECT_EQ(plain.mss, tcp::kDefaultPeerMss);
  plain.answer(rng, 9);
  EXPECT_FALSE(plain.ts_ok);
  EXPECT_FALSE(plain.wscale_ok);
  EXPECT_EQ(plain.server_wscale, 0);
  EXPECT_FALSE(plain.our_timestamps());
}

TEST(HandshakeTest, LearnsARealServersSynAck) {
  auto syn = testing::parse(client_syn(true));
  tcp::ClientHandshake hs;
  hs.note_syn(syn.pkt, 1460);
  net::SynOptions opts;
  opts.mss = 1200;
  opts.wscale = 10;
  opts.timestamps = net::Timestamps{5555, 77};
  auto synack = testing::parse(net::make_synack(kVip, kClient, 9000, 1001, 65535, opts));
  hs.learn_synack(synack.pkt);
  EXPECT_EQ(hs.server_isn, SeqNum(9000));
  EXPECT_EQ(hs.server_wscale, 10);
  EXPECT_EQ(hs.ts_base, 5555u);
  EXPECT_EQ(hs.mss, 1200);
}

TEST(RequestBufferTest, TakesBytesInOrderOnly) {
  tcp::RequestBuffer request(http::Limits{});
  SeqNum rcv_nxt(1001);
  auto first = testing::parse(client_data(1001, "GET / HTTP/1.1\r\n"));
  EXPECT_EQ(request.take(rcv_nxt, first.pkt), http::ParseStatus::Incomplete);
  EXPECT_EQ(rcv_nxt, SeqNum(1001 + 16));
  EXPECT_FALSE(request.take(rcv_nxt, first.pkt)) << "a retransmission brings nothing new";
  auto after_gap = testing::parse(client_data(1001 + 20, "Host: a\r\n\r\n"));
  EXPECT_FALSE(request.take(rcv_nxt, after_gap.pkt)) << "a segment after a gap is ignored";
  auto overlapping = testing::parse(client_data(1001 + 10, "/1.1\r\nHost: a\r\n\r\n"));
  EXPECT_EQ(request.take(rcv_nxt, overlapping.pkt), http::ParseStatus::Complete);
  EXPECT_EQ(std::string(request.bytes.begin(), request.bytes.end()), "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  request.release();
  EXPECT_TRUE(request.bytes.empty());
}

TEST(HandshakeSenderTest, SendsTheServersSegments) {
  testing::FakeSender sender;
  uint64_t errors = 0;
  uint64_t resets = 0;
  io::CheckedSender raw(sender, errors);
  tcp::HandshakeSender answer(kVip, 64240, raw, resets);
  auto syn = testing::parse(client_syn(true));
  tcp::ClientHandshake hs;
  hs.note_syn(syn.pkt, 1460);
  std::mt19937_64 rng(1);
  hs.answer(rng, 7);

  answer.synack(hs);
  answer.ack(hs);
  answer.rst(hs);
  answer.rst_for(syn.pkt);
  answer.error_response(hs, http::HttpError::BadRequestLine);
  auto sent = sender.take();
  ASSERT_EQ(sent.size(), 5u);
  auto synack = testing::parse(sent[0]);
  EXPECT_TRUE(synack.pkt.has_flags(flag::SYN | flag::ACK));
  EXPECT_EQ(synack.pkt.seq(), hs.server_isn.value());
  EXPECT_EQ(synack.pkt.ack(), 1001u);
  ASSERT_TRUE(synack.pkt.options.wscale);
  EXPECT_EQ(*synack.pkt.options.wscale, 7);
  auto ack = testing::parse(sent[1]);
  EXPECT_EQ(ack.pkt.window(), 64240 >> 7) << "scaled by the shift we announced";
  EXPECT_EQ(ack.pkt.seq(), (hs.server_isn + 1u).value());
  EXPECT_TRUE(testing::parse(sent[2]).pkt.has_flags(flag::RST));
  EXPECT_TRUE(testing::parse(sent[3]).pkt.has_flags(flag::RST));
  auto error = testing::parse(sent[4]);
  EXPECT_TRUE(error.pkt.has_flags(flag::FIN | flag::ACK));
  EXPECT_GT(error.pkt.payload_len, 0u);
  EXPECT_EQ(resets, 2u);
  EXPECT_EQ(errors, 0u);
}

}  // namespace
}  // namespace hl::tcp
