#include "net/checksum.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "net/byte_order.h"
#include "net/test_packets.h"

namespace hl::net {
namespace {

using test::from_hex;

TEST(ByteOrder, LoadsAndStoresBigEndian) {
  uint8_t buf[6] = {0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc};
  EXPECT_EQ(load_be16(buf + 1), 0x3456);
  EXPECT_EQ(load_be32(buf + 1), 0x3456789au);
  store_be16(buf, 0xbeef);
  store_be32(buf + 2, 0x01020304);
  EXPECT_EQ(from_hex("beef01020304"), std::vector<uint8_t>(buf, buf + 6));
}

struct SumCase {
  const char* description;
  const char* hex;
  uint16_t checksum;  // independently computed (RFC 1071 examples / Python)
};

TEST(Checksum, InternetChecksumTable) {
  const SumCase cases[] = {
      {"RFC 1071 section 3 example", "0001f203f4f5f6f7", 0x220d},
      {"odd length pads with zero", "010203", 0xfbfd},
      {"single byte", "ff", 0x00ff},
      {"empty", "", 0xffff},
      {"all ones sums to negative zero", "ffffffff", 0x0000},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.description);
    EXPECT_EQ(internet_checksum(from_hex(c.hex)), c.checksum);
  }
}

TEST(Checksum, Ipv4HeaderKnownValues) {
  // Wikipedia's IPv4 header checksum example (field holds 0xb861).
  EXPECT_EQ(ipv4_header_checksum(from_hex("450000730000400040110000c0a80001c0a800c7")), 0xb861);
  EXPECT_EQ(ipv4_header_checksum(from_hex("450000730000400040112222c0a80001c0a800c7")), 0xb861)
      << "the checksum field itself is ignored";
  const auto syn = from_hex(test::kSynHex);
  EXPECT_EQ(ipv4_header_checksum(std::span(syn).first(20)), 0x4c03);
}

TEST(Checksum, TcpChecksumOfRealPackets) {
  struct Case {
    std::string_view hex;
    uint16_t full;
  };
  const Case cases[] = {{test::kSynHex, test::kSynFullChecksum},
                        {test::kSynAckHex, test::kSynAckFullChecksum},
                        {test::kRequestHex, test::kRequestFullChecksum},
                        {test::kResponseHex, test::kResponseFullChecksum}};
  for (const auto& c : cases) {
    const auto p = from_hex(c.hex);
    const Ipv4Addr src{load_be32(&p[12])}, dst{load_be32(&p[16])};
    const std::span<const uint8_t> seg = std::span(p).subspan(20);
    EXPECT_EQ(tcp_checksum(src, dst, seg), c.full);
    // The captured (partial) field is the folded pseudo-header sum.
    EXPECT_EQ(checksum_fold(tcp_pseudo_header_sum(src, dst, static_cast<uint32_t>(seg.size()))),
              load_be16(&p[36]));
  }
}

TEST(Checksum, PseudoHeaderHandlesLengthsAbove64k) {
  // A 70000-byte length contributes 0x0001 + 0x1170.
  EXPECT_EQ(tcp_pseudo_header_sum(Ipv4Addr{0}, Ipv4Addr{0}, 70000), 6u + 1u + 0x1170u);
}

TEST(Checksum, Update16Table) {
  // A 4-byte buffer whose first word changes; expected = recomputation.
  struct Case {
    uint16_t other, old_word, new_word;
  };
  const Case cases[] = {{0x1234, 0x0000, 0xffff}, {0x0001, 0x0001, 0x0000},
                        {0xffff, 0xabcd, 0xabcd}, {0x8000, 0x7fff, 0x8001},
                        {0xedcb, 0x1234, 0x0000}};
  for (const auto& c : cases) {
    uint8_t before[4], after[4];
    store_be16(before, c.old_word);
    store_be16(before + 2, c.other);
    store_be16(after, c.new_word);
    store_be16(after + 2, c.other);
    EXPECT_EQ(checksum_update16(internet_checksum(before), c.old_word, c.new_word),
              internet_checksum(after))
        << std::hex << c.other << " " << c.old_word << "->" << c.new_word;
  }
}

TEST(Checksum, AllZeroDataIsTheOnlyRepresentationMismatch) {
  // Data that becomes all zeros: a full computation yields 0xffff, RFC 1624
  // eqn. 3 yields 0x0000 (both are zero in one's complement). Cannot happen
  // for TCP: the pseudo-header always holds protocol 6.
  uint8_t zero[4] = {};
  EXPECT_EQ(internet_checksum(zero), 0xffff);
  EXPECT_EQ(checksum_update16(internet_checksum(from_hex("00010000")), 0x0001, 0x0000), 0x0000);
}

TEST(Checksum, IncrementalEqualsFullOnRandomEdits) {
  std::mt19937 rng(1071);
  for (int i = 0; i < 10000; ++i) {
    std::vector<uint8_t> buf(8 + 2 * (rng() % 700));
    for (auto& b : buf) b = static_cast<uint8_t>(rng());
    const uint16_t before = internet_checksum(buf);
    const size_t words = buf.size() / 2;
    switch (rng() % 3) {
      case 0: {
        const size_t at = 2 * (rng() % words);
        const uint16_t old_word = load_be16(&buf[at]);
        const auto new_word = static_cast<uint16_t>(rng());
        store_be16(&buf[at], new_word);
        ASSERT_EQ(checksum_update16(before, old_word, new_word), internet_checksum(buf));
        break;
      }
      case 1: {
        const size_t at = 2 * (rng() % (words - 1));
        const uint32_t old_value = load_be32(&buf[at]);
        const auto new_value = static_cast<uint32_t>(rng());
        store_be32(&buf[at], new_value);
        ASSERT_EQ(checksum_update32(before, old_value, new_value), internet_checksum(buf));
        break;
      }
      default: {
        // An unaligned 4-byte field: sum the aligned 6-byte cover.
        const size_t at = 2 * (rng() % (words - 2)) + 1;
        const std::span<const uint8_t> cover(&buf[at - 1], 6);
        const uint64_t old_sum = checksum_add(cover);
        store_be32(&buf[at], static_cast<uint32_t>(rng()));
        ASSERT_EQ(checksum_update_sum(before, old_sum, checksum_add(cover)),
                  internet_checksum(buf));
        break;
      }
    }
  }
}

// checksum_add sums long spans in native byte order (32 bytes per step): it must
// agree with the RFC 1071 definition (big-endian 16-bit words) for every length
// and start offset, odd ones included, and for all-0xff data (maximal carries).
TEST(Checksum, WideSumEqualsWordByWordDefinition) {
  std::mt19937 rng(1071);
  std::vector<uint8_t> data(70000);
  for (auto& b : data) b = static_cast<uint8_t>(rng());
  const auto reference = [](std::span<const uint8_t> bytes) {
    uint64_t sum = 0;
    for (size_t i = 0; i + 1 < bytes.size(); i += 2) sum += load_be16(&bytes[i]);
    if (bytes.size() % 2) sum += uint64_t{bytes.back()} << 8;
    return checksum_finish(sum);
  };
  for (size_t len : {0u, 1u, 2u, 3u, 4u, 15u, 16u, 17u, 18u, 19u, 20u, 23u, 24u, 31u, 32u, 40u, 52u, 60u, 63u, 64u,
                     65u, 66u, 67u, 95u, 96u, 97u, 1448u, 1449u, 65535u, 69990u}) {
    for (size_t off : {0u, 1u, 2u, 3u}) {
      const std::span<const uint8_t> s(data.data() + off, len);
      EXPECT_EQ(internet_checksum(s), reference(s)) << "len " << len << " offset " << off;
    }
  }
  const std::vector<uint8_t> ones(65536, 0xff);
  EXPECT_EQ(internet_checksum(ones), reference(ones));
  // A zero sum folds to 0x0000, not 0xffff: the long path must keep that apart.
  const std::vector<uint8_t> zeros(1448, 0);
  EXPECT_EQ(checksum_fold(checksum_add(zeros)), 0x0000);
  EXPECT_EQ(internet_checksum(zeros), reference(zeros));
}

TEST(Checksum, ChainedSumsEqualOneSum) {
  const auto p = from_hex(test::kResponseHex);
  const std::span<const uint8_t> all(p);
  EXPECT_EQ(checksum_fold(checksum_add(all.subspan(10), checksum_add(all.first(10)))),
            checksum_fold(checksum_add(all)));
}

}  // namespace
}  // namespace hl::net
