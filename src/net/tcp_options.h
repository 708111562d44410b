// TCP options: parsing into a fixed-size record of values and in-place offsets, and serializing.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "util/result.h"

namespace hl::net {

// Option kinds (RFC 793, 7323, 2018, 879).
namespace tcp_option_kind {
inline constexpr uint8_t kEol = 0;
inline constexpr uint8_t kNop = 1;
inline constexpr uint8_t kMss = 2;
inline constexpr uint8_t kWindowScale = 3;
inline constexpr uint8_t kSackPermitted = 4;
inline constexpr uint8_t kSack = 5;
inline constexpr uint8_t kTimestamps = 8;
}  // namespace tcp_option_kind

// Largest options region: 60-byte TCP header minus the 20 fixed bytes.
inline constexpr size_t kMaxTcpOptionsLen = 40;
// At most four SACK blocks fit in an options region.
inline constexpr size_t kMaxSackBlocks = 4;

// Why an options region was rejected.
enum class OptionError {
  Truncated,  // a kind byte with no length byte, or a length running past the region
  BadLength,  // length < 2 (would loop), or wrong for a known kind (MSS 4, WS 3, ...)
  Duplicate,  // MSS, window scale, SACK-permitted, SACK or timestamps seen twice
};
const char* to_string(OptionError error);

// A SACK block [left, right) in the sender's peer's sequence space (host order).
struct SackBlock {
  uint32_t left = 0;
  uint32_t right = 0;
  friend constexpr bool operator==(const SackBlock&, const SackBlock&) = default;
};

// The timestamps option values (host order).
struct Timestamps {
  uint32_t tsval = 0;
  uint32_t tsecr = 0;
  friend constexpr bool operator==(const Timestamps&, const Timestamps&) = default;
};

// An option of a kind this parser does not interpret, left in place.
struct RawOption {
  uint8_t kind = 0;
  uint8_t offset = 0;  // of the kind byte, from the start of the options region
  uint8_t length = 0;  // including kind and length bytes
};

// Parsed options. Offsets are from the start of the options region (the byte
// after the 20 fixed TCP header bytes); they locate fields for in-place rewrites.
struct TcpOptions {
  std::optional<uint16_t> mss;
  std::optional<uint8_t> wscale;  // shift count as sent (not clamped to 14)
  bool sack_permitted = false;
  std::optional<Timestamps> timestamps;
  uint8_t timestamps_offset = 0;  // of TSval (TSecr follows at +4); valid if timestamps
  std::array<SackBlock, kMaxSackBlocks> sack{};
  uint8_t sack_count = 0;   // blocks used in sack
  uint8_t sack_offset = 0;  // of the first block's left edge; block i at +8*i
  std::array<RawOption, kMaxTcpOptionsLen / 2> unknown{};
  uint8_t unknown_count = 0;
};

// Parses an options region (at most kMaxTcpOptionsLen bytes; longer is
// Truncated-safe but offsets are 8-bit). Parsing stops at EOL.
Result<TcpOptions, OptionError> parse_tcp_options(std::span<const uint8_t> region);

// As parse_tcp_options, filling `out` (which must be default-constructed) in
// place; returns the error, or nullopt on success. For the per-packet path.
std::optional<OptionError> parse_tcp_options_into(std::span<const uint8_t> region,
                                                  TcpOptions& out);

// Appends options one by one; bytes() pads with NOPs to a multiple of 4.
// Callers choose order and NOP alignment (PacketBuilder mimics Linux).
class TcpOptionWriter {
 public:
  TcpOptionWriter& nop();
  TcpOptionWriter& mss(uint16_t value);
  TcpOptionWriter& wscale(uint8_t shift);
  TcpOptionWriter& sack_permitted();
  TcpOptionWriter& timestamps(uint32_t tsval, uint32_t tsecr);
  // Up to kMaxSackBlocks blocks; more is a programming error (throws std::length_error).
  TcpOptionWriter& sack(std::span<const SackBlock> blocks);
  // An arbitrary option: kind, then a length byte of 2 + data.size(), then data.
  TcpOptionWriter& raw(uint8_t kind, std::span<const uint8_t> data);

  // Current length before padding.
  size_t size() const { return bytes_.size(); }
  // The options padded with NOPs to a multiple of 4 bytes.
  std::vector<uint8_t> bytes() const;

 private:
  std::vector<uint8_t> bytes_;
};

}  // namespace hl::net
