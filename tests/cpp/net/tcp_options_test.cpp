#include "net/tcp_options.h"

#include <gtest/gtest.h>

#include <vector>

#include "net/test_packets.h"

namespace hl::net {
namespace {

using test::from_hex;

TEST(TcpOptions, RealLinuxSynOptions) {
  const auto syn = from_hex(test::kSynHex);
  auto r = parse_tcp_options(std::span(syn).subspan(40, 20));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->mss, 65495);
  EXPECT_TRUE(r->sack_permitted);
  EXPECT_EQ(r->wscale, 9);
  EXPECT_EQ(r->timestamps, (Timestamps{0xe82b1cf5, 0}));
  EXPECT_EQ(r->timestamps_offset, 8u);
  EXPECT_EQ(r->sack_count, 0u);
  EXPECT_EQ(r->unknown_count, 0u);
}

TEST(TcpOptions, SackBlocksWithOffsets) {
  // NOP NOP SACK(2 blocks) as Linux sends it.
  const auto region = from_hex("0101051200000064000000c8000001f4000003e8");
  auto r = parse_tcp_options(region);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->sack_count, 2u);
  EXPECT_EQ(r->sack_offset, 4u);
  EXPECT_EQ(r->sack[0], (SackBlock{100, 200}));
  EXPECT_EQ(r->sack[1], (SackBlock{500, 1000}));
}

TEST(TcpOptions, UnknownKindsAreKeptAndEolStops) {
  // Kind 30 (MPTCP-like), 4 bytes; kind 253 experimental, 2 bytes; EOL; junk.
  const auto region = from_hex("1e04abcdfd020001ffffff");
  auto r = parse_tcp_options(region);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->unknown_count, 2u);
  EXPECT_EQ(r->unknown[0].kind, 30);
  EXPECT_EQ(r->unknown[0].offset, 0);
  EXPECT_EQ(r->unknown[0].length, 4);
  EXPECT_EQ(r->unknown[1].kind, 253);
  EXPECT_EQ(r->unknown[1].offset, 4);
  EXPECT_FALSE(r->mss);
}

TEST(TcpOptions, EmptyAndAllNop) {
  EXPECT_TRUE(parse_tcp_options({}).ok());
  EXPECT_TRUE(parse_tcp_options(from_hex("01010101")).ok());
}

TEST(TcpOptions, MalformedTable) {
  struct Case {
    const char* description;
    const char* hex;
    OptionError expected;
  };
  const Case cases[] = {
      {"kind without length byte", "0101010102", OptionError::Truncated},
      {"length past the region", "020405", OptionError::Truncated},
      {"zero length would loop", "1e00", OptionError::BadLength},
      {"length 1 would loop", "1e0100", OptionError::BadLength},
      {"MSS with length 3", "020305", OptionError::BadLength},
      {"window scale with length 4", "03040700", OptionError::BadLength},
      {"SACK-permitted with length 3", "040300", OptionError::BadLength},
      {"timestamps with length 8", "080800000000000000", OptionError::BadLength},
      {"SACK with no block", "0502", OptionError::BadLength},
      {"SACK with a partial block", "050e000000010000000200000003", OptionError::BadLength},
      {"SACK with five blocks",
       "052a"
       "00000001000000020000000300000004000000050000000600000007000000080000000900000010",
       OptionError::BadLength},
      {"duplicate MSS", "0204058c0204058c", OptionError::Duplicate},
      {"duplicate timestamps", "080a0000000100000002080a0000000100000002",
       OptionError::Duplicate},
      {"duplicate window scale", "030307030307", OptionError::Duplicate},
      {"duplicate SACK-permitted", "04020402", OptionError::Duplicate},
      {"duplicate SACK", "050a0000000100000002050a0000000300000004", OptionError::Duplicate},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.description);
    auto r = parse_tcp_options(from_hex(c.hex));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(), c.expected) << to_string(r.error());
  }
}

TEST(TcpOptionWriter, LinuxSynLayoutRoundTrips) {
  TcpOptionWriter w;
  w.mss(65495).sack_permitted().timestamps(0xe82b1cf5, 0).nop().wscale(9);
  EXPECT_EQ(w.bytes(), from_hex("0204ffd70402080ae82b1cf50000000001030309"));
}

TEST(TcpOptionWriter, PadsWithNopsAndRoundTrips) {
  const SackBlock blocks[] = {{1, 2}, {3, 4}, {5, 6}};
  TcpOptionWriter w;
  w.wscale(14).sack(blocks).raw(30, std::vector<uint8_t>{9, 8, 7});
  const auto bytes = w.bytes();
  EXPECT_EQ(w.size(), 3u + 26u + 5u);
  ASSERT_EQ(bytes.size(), 36u);
  EXPECT_EQ(bytes[34], tcp_option_kind::kNop);
  EXPECT_EQ(bytes[35], tcp_option_kind::kNop);
  auto r = parse_tcp_options(bytes);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->wscale, 14);
  ASSERT_EQ(r->sack_count, 3u);
  EXPECT_EQ(r->sack_offset, 5u);
  EXPECT_EQ(r->sack[2], (SackBlock{5, 6}));
  ASSERT_EQ(r->unknown_count, 1u);
  EXPECT_EQ(r->unknown[0].offset, 29u);
  EXPECT_EQ(r->unknown[0].length, 5u);
}

TEST(TcpOptionWriter, RejectsTooManySackBlocks) {
  const SackBlock five[5] = {};
  TcpOptionWriter w;
  EXPECT_THROW(w.sack(five), std::length_error);
  EXPECT_THROW(w.sack({}), std::length_error);
}

}  // namespace
}  // namespace hl::net
