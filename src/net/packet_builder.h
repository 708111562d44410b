// PacketBuilder: fluent construction of IPv4/TCP packets with correct checksums
// (tests and synthesized segments), plus make_rst / make_ack / make_synack.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "net/ipv4_addr.h"
#include "net/tcp_options.h"
#include "net/tcp_packet.h"

namespace hl::net {

// Handshake options of a SYN or SYN/ACK (absent = not sent).
struct SynOptions {
  std::optional<uint16_t> mss;
  std::optional<uint8_t> wscale;
  bool sack_permitted = false;
  std::optional<Timestamps> timestamps;
};

// Builds one IPv4/TCP packet. Defaults: TTL 64, DF set, IP id 0, window 65535,
// no flags, no options, no payload, Full checksums. Options are laid out as
// Linux does (MSS, SACK-perm+TS or NOP NOP TS, NOP WS, NOP NOP SACK-perm,
// NOP NOP SACK), then raw options, padded with NOPs to a multiple of 4.
class PacketBuilder {
 public:
  PacketBuilder& ipv4(Ipv4Addr src, Ipv4Addr dst);
  PacketBuilder& ttl(uint8_t value);
  PacketBuilder& ip_id(uint16_t value);
  PacketBuilder& tos(uint8_t value);
  PacketBuilder& dont_fragment(bool value);
  PacketBuilder& tcp(uint16_t src_port, uint16_t dst_port);
  PacketBuilder& seq(uint32_t value);
  PacketBuilder& ack(uint32_t value);
  PacketBuilder& flags(uint8_t value);  // tcp_flag bits
  PacketBuilder& window(uint16_t value);
  PacketBuilder& urgent(uint16_t value);
  PacketBuilder& mss(uint16_t value);
  PacketBuilder& wscale(uint8_t shift);
  PacketBuilder& sack_permitted();
  PacketBuilder& timestamps(uint32_t tsval, uint32_t tsecr);
  PacketBuilder& sack(std::span<const SackBlock> blocks);  // 1..4 blocks
  PacketBuilder& sack(std::initializer_list<SackBlock> blocks);
  PacketBuilder& syn_options(const SynOptions& options);
  PacketBuilder& raw_option(uint8_t kind, std::span<const uint8_t> data);
  PacketBuilder& payload(std::span<const uint8_t> bytes);
  PacketBuilder& payload(std::string_view text);
  // Partial: the TCP checksum field gets the folded, uncomplemented
  // pseudo-header sum, as a CHECKSUM_PARTIAL packet carries it.
  PacketBuilder& checksum_state(ChecksumState state);

  // The packet bytes. Throws std::length_error if options exceed 40 bytes or
  // the packet exceeds 65535 bytes (setup-time misuse).
  std::vector<uint8_t> build() const;
  // The same into `out` (resized; its capacity is kept, so a reused buffer
  // allocates nothing); returns the packet.
  std::span<const uint8_t> build_into(std::vector<uint8_t>& out) const;

 private:
  Ipv4Addr src_{}, dst_{};
  uint8_t ttl_ = 64, tos_ = 0, flags_ = 0;
  uint16_t ip_id_ = 0, src_port_ = 0, dst_port_ = 0, window_ = 65535, urgent_ = 0;
  bool dont_fragment_ = true;
  uint32_t seq_ = 0, ack_ = 0;
  SynOptions syn_{};
  std::array<SackBlock, kMaxSackBlocks> sack_{};
  size_t sack_count_ = 0;
  // The raw options encoded (kind, length, data); more than fit is remembered
  // so that build() throws.
  std::array<uint8_t, kMaxTcpOptionsLen> raw_{};
  size_t raw_len_ = 0;
  bool raw_overflow_ = false;
  std::vector<uint8_t> payload_;
  ChecksumState checksum_state_ = ChecksumState::Full;
};

// A RST from `from` to `to` with sequence number seq; with an ACK flag and
// ack number when ack is given (window 0, no options).
std::vector<uint8_t> make_rst(Endpoint from, Endpoint to, uint32_t seq,
                              std::optional<uint32_t> ack = std::nullopt);

// A pure ACK (optionally with timestamps and a payload, e.g. a replayed request).
std::vector<uint8_t> make_ack(Endpoint from, Endpoint to, uint32_t seq, uint32_t ack,
                              uint16_t window, std::optional<Timestamps> timestamps = std::nullopt,
                              std::span<const uint8_t> payload = {});

// A SYN/ACK with initial sequence number isn and the given handshake options.
std::vector<uint8_t> make_synack(Endpoint from, Endpoint to, uint32_t isn, uint32_t ack,
                                 uint16_t window, const SynOptions& options);

// The same packets built into `out` (see PacketBuilder::build_into), for the
// engines' per-connection segments.
std::span<const uint8_t> make_rst(std::vector<uint8_t>& out, Endpoint from, Endpoint to, uint32_t seq,
                                  std::optional<uint32_t> ack = std::nullopt);
std::span<const uint8_t> make_ack(std::vector<uint8_t>& out, Endpoint from, Endpoint to, uint32_t seq,
                                  uint32_t ack, uint16_t window,
                                  std::optional<Timestamps> timestamps = std::nullopt,
                                  std::span<const uint8_t> payload = {});
std::span<const uint8_t> make_synack(std::vector<uint8_t>& out, Endpoint from, Endpoint to, uint32_t isn,
                                     uint32_t ack, uint16_t window, const SynOptions& options);

}  // namespace hl::net
