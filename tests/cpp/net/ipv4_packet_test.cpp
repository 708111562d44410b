// parse_ipv4_header / parse_ipv4_packet / fill_l4_checksum (net/ipv4_packet.h) on
// real packets captured from Linux loopback (kernel 6.x) and on broken copies of
// them. Loopback UDP is CHECKSUM_PARTIAL like its TCP: the field holds the folded
// pseudo-header sum; the full checksums below were computed independently
// (Python, RFC 1071), not by the code under test.
#include "net/ipv4_packet.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "net/byte_order.h"
#include "net/test_packets.h"

namespace hl::net {
namespace {

using test::from_hex;

// UDP 127.0.0.1:5353 -> 127.0.0.1:53, "hello udp" (9 bytes). Full UDP checksum 0xc354.
constexpr std::string_view kUdpHex = "45000025e9754000401153507f0000017f00000114e900350011fe2468656c6c6f20756470";
// UDP 127.0.0.1:5353 -> 127.0.0.1:53, "odd" (3 bytes: odd length). Full UDP checksum 0x1953.
constexpr std::string_view kUdpOddHex = "4500001fe9764000401153557f0000017f00000114e90035000bfe1e6f6464";
// ICMP echo request 127.0.0.1 -> 127.0.0.1, id 0x1234, seq 1, "ping".
constexpr std::string_view kIcmpHex = "45000020541740004001e8c37f0000017f000001080006fa1234000170696e67";
// Crafted (not captured): UDP 5353 -> 53, "zero" + 0xffdc, whose checksum computes
// to 0 and is sent as 0xffff. Field 0 as a sender without checksum leaves it.
constexpr std::string_view kUdpZeroSumHex = "450000221234400040112a957f0000017f00000114e90035000e00007a65726fffdc";

const Ipv4Addr kLoopback = ipv4(127, 0, 0, 1);

// --- well-formed packets ----------------------------------------------------

struct GoodCase {
  const char* what;
  std::string_view hex;
  size_t header_len;
  size_t total_len;
  uint8_t protocol;
  uint8_t ttl;
};

const GoodCase kGood[] = {
    {"Linux TCP SYN with options", test::kSynHex, 20, 60, kIpProtoTcp, 64},
    {"Linux TCP segment with a request", test::kRequestHex, 20, 70, kIpProtoTcp, 64},
    {"Linux UDP datagram", kUdpHex, 20, 37, kIpProtoUdp, 64},
    {"Linux UDP datagram of odd length", kUdpOddHex, 20, 31, kIpProtoUdp, 64},
    {"Linux ICMP echo request", kIcmpHex, 20, 32, 1, 64},
};

TEST(ParseIpv4, RealPacketsParseWithTheirFields) {
  for (const auto& c : kGood) {
    SCOPED_TRACE(c.what);
    auto buf = from_hex(c.hex);
    auto h = parse_ipv4_header(buf);
    ASSERT_TRUE(h.ok()) << to_string(h.error());
    EXPECT_EQ(h->header_len, c.header_len);
    EXPECT_EQ(h->l4_offset(), c.header_len);
    EXPECT_EQ(h->total_len, c.total_len);
    EXPECT_EQ(h->l4_len(), c.total_len - c.header_len);
    EXPECT_EQ(h->protocol, c.protocol);
    EXPECT_EQ(h->ttl, c.ttl);
    EXPECT_EQ(h->src, kLoopback);
    EXPECT_EQ(h->dst, kLoopback);

    auto p = parse_ipv4_packet(buf);
    ASSERT_TRUE(p.ok()) << to_string(p.error());
    EXPECT_EQ(p->bytes.data(), buf.data());
    EXPECT_EQ(p->bytes.size(), c.total_len);
    EXPECT_EQ(p->l4().data(), buf.data() + c.header_len);
    EXPECT_EQ(p->l4().size(), c.total_len - c.header_len);
    EXPECT_EQ(p->header.protocol, c.protocol);
  }
}

TEST(ParseIpv4, OptionsAreInTheHeaderLength) {
  // The UDP datagram with 4 bytes of IPv4 options (NOP x 3, EOL) inserted: IHL 6.
  auto buf = from_hex(kUdpHex);
  buf.insert(buf.begin() + 20, {1, 1, 1, 0});
  buf[0] = 0x46;
  store_be16(&buf[2], 41);
  auto p = parse_ipv4_packet(buf);
  ASSERT_TRUE(p.ok()) << to_string(p.error());
  EXPECT_EQ(p->header.header_len, 24u);
  EXPECT_EQ(p->l4().size(), 17u);
  EXPECT_EQ(load_be16(&p->l4()[0]), 5353);  // the UDP source port
}

TEST(ParseIpv4, LinkPaddingIsLeftOutOfThePacket) {
  auto buf = from_hex(kUdpOddHex);
  buf.resize(60, 0);  // an Ethernet minimum frame's padding
  auto p = parse_ipv4_packet(buf);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->bytes.size(), 31u);
  EXPECT_EQ(p->l4().size(), 11u);
}

TEST(ParseIpv4, ATruncatedCopyHasAHeaderButNoPacket) {
  auto buf = from_hex(test::kRequestHex);
  buf.resize(40);  // an NFQUEUE copy range shorter than the packet
  auto h = parse_ipv4_header(buf);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->total_len, 70u);
  auto p = parse_ipv4_packet(buf);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error(), ParseError::BadTotalLength);
}

// --- broken packets ---------------------------------------------------------

struct BadCase {
  const char* what;
  std::string_view hex;
  void (*mutate)(std::vector<uint8_t>& p);
  ParseError header_error;  // from parse_ipv4_header (and parse_ipv4_packet)
};

const BadCase kBad[] = {
    {"empty buffer", kUdpHex, [](std::vector<uint8_t>& p) { p.clear(); }, ParseError::TooShortForIpv4},
    {"19 bytes", kUdpHex, [](std::vector<uint8_t>& p) { p.resize(19); }, ParseError::TooShortForIpv4},
    {"version 6", kUdpHex, [](std::vector<uint8_t>& p) { p[0] = 0x60; }, ParseError::NotIpv4},
    {"version 0", kIcmpHex, [](std::vector<uint8_t>& p) { p[0] = 0x05; }, ParseError::NotIpv4},
    {"IHL 4 (16-byte header)", kUdpHex, [](std::vector<uint8_t>& p) { p[0] = 0x44; }, ParseError::BadIhl},
    {"IHL 0", kIcmpHex, [](std::vector<uint8_t>& p) { p[0] = 0x40; }, ParseError::BadIhl},
    {"IHL 15 (60 bytes) in a 37-byte buffer", kUdpHex, [](std::vector<uint8_t>& p) { p[0] = 0x4f; },
     ParseError::BadIhl},
    {"IHL 6 in a 20-byte buffer", kUdpHex,
     [](std::vector<uint8_t>& p) {
       p.resize(20);
       p[0] = 0x46;
     },
     ParseError::BadIhl},
    {"total length 0", test::kSynHex, [](std::vector<uint8_t>& p) { store_be16(&p[2], 0); }, ParseError::BadTotalLength},
    {"total length below the header", kUdpHex, [](std::vector<uint8_t>& p) { store_be16(&p[2], 19); },
     ParseError::BadTotalLength},
};

TEST(ParseIpv4, BrokenHeadersAreRefusedWithTheirReason) {
  for (const auto& c : kBad) {
    SCOPED_TRACE(c.what);
    auto buf = from_hex(c.hex);
    c.mutate(buf);
    auto h = parse_ipv4_header(buf);
    ASSERT_FALSE(h.ok());
    EXPECT_EQ(h.error(), c.header_error) << to_string(h.error());
    auto p = parse_ipv4_packet(buf);
    ASSERT_FALSE(p.ok());
    EXPECT_EQ(p.error(), c.header_error) << to_string(p.error());
  }
}

TEST(ParseIpv4, TotalLengthBeyondTheBufferIsNoPacket) {
  const std::string_view cases[] = {kUdpHex, kIcmpHex, test::kSynHex};
  for (const auto hex : cases) {
    auto buf = from_hex(hex);
    store_be16(&buf[2], static_cast<uint16_t>(buf.size() + 1));
    EXPECT_TRUE(parse_ipv4_header(buf).ok()) << hex;
    auto p = parse_ipv4_packet(buf);
    ASSERT_FALSE(p.ok()) << hex;
    EXPECT_EQ(p.error(), ParseError::BadTotalLength) << hex;
  }
}

// --- L4 checksums -------------------------------------------------------------

struct ChecksumCase {
  const char* what;
  std::string_view hex;
  size_t field_at;  // the checksum field's offset in the packet
  uint16_t full;    // the complete checksum
};

const ChecksumCase kChecksums[] = {
    {"TCP SYN", test::kSynHex, 20 + 16, test::kSynFullChecksum},
    {"TCP request", test::kRequestHex, 20 + 16, test::kRequestFullChecksum},
    {"TCP response of odd length", test::kResponseHex, 20 + 16, test::kResponseFullChecksum},
    {"UDP", kUdpHex, 20 + 6, 0xc354},
    {"UDP of odd length", kUdpOddHex, 20 + 6, 0x1953},
    {"UDP whose sum is 0", kUdpZeroSumHex, 20 + 6, 0xffff},
};

TEST(FillL4Checksum, CompletesPartialAndRewritesFullChecksums) {
  for (const auto& c : kChecksums) {
    SCOPED_TRACE(c.what);
    auto buf = from_hex(c.hex);
    const auto original = buf;
    auto p = parse_ipv4_packet(buf);
    ASSERT_TRUE(p.ok());
    ASSERT_TRUE(fill_l4_checksum(*p));
    EXPECT_EQ(load_be16(&buf[c.field_at]), c.full);
    ASSERT_TRUE(fill_l4_checksum(*p));  // again over a complete checksum: the same
    EXPECT_EQ(load_be16(&buf[c.field_at]), c.full);
    buf[c.field_at] = original[c.field_at];
    buf[c.field_at + 1] = original[c.field_at + 1];
    EXPECT_EQ(buf, original) << "only the checksum field is written";
  }
}

TEST(FillL4Checksum, RefusesOtherProtocolsAndShortHeaders) {
  struct Case {
    const char* what;
    std::string_view hex;
    uint16_t total_len;  // 0: as captured
  };
  const Case cases[] = {
      {"ICMP", kIcmpHex, 0},
      {"UDP cut to 7 bytes", kUdpHex, 27},
      {"TCP cut to 19 bytes", test::kSynHex, 39},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    auto buf = from_hex(c.hex);
    if (c.total_len != 0) store_be16(&buf[2], c.total_len);
    const auto original = buf;
    auto p = parse_ipv4_packet(buf);
    ASSERT_TRUE(p.ok());
    EXPECT_FALSE(fill_l4_checksum(*p));
    EXPECT_EQ(buf, original);
  }
}

}  // namespace
}  // namespace hl::net
