// The in-band handoff option: what a replayed SYN carries from the front-end to the back-end.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>

#include "net/tcp_packet.h"

namespace hl::net {

// TCP option kind 253 (RFC 4727 experimental) with the RFC 6994 experiment id
// 0x4846 ("HF"): kind | length 18 | ExID u16 | front-end ISN u32 |
// front-end TSval base u32 | front-end window-scale shift u8 | front-end id u8 |
// MAC u32. 18 bytes beside a Linux client's 20 of SYN options fit the 40. The
// id says which of the cluster's front-ends sent it (its index in their list;
// 0 with one): the back-end reports to that one.
//
// The MAC (the first 32 bits of an HMAC-SHA256 with the cluster key,
// control::Authenticator::option_tag) covers handoff_mac_input(): a back-end
// with the key takes only replayed SYNs its front-end made; 0 when the cluster
// runs unauthenticated.
inline constexpr uint8_t kHandoffOptionKind = 253;
inline constexpr uint16_t kHandoffExperimentId = 0x4846;
inline constexpr uint8_t kHandoffOptionLen = 18;

// The front-end's half of the TCP state, as the client knows it.
struct HandoffOption {
  uint32_t frontend_isn = 0;      // f: the ISN of the front-end's SYN/ACK
  uint32_t frontend_ts_base = 0;  // TSval the front-end sent (0 without timestamps)
  uint8_t frontend_wscale = 0;    // shift the front-end announced (0 without scaling)
  uint32_t mac = 0;               // over handoff_mac_input() (0: unauthenticated)
  uint8_t frontend_id = 0;        // the sending front-end's index among the cluster's
  friend bool operator==(const HandoffOption&, const HandoffOption&) = default;
};

// What the option's MAC covers: the client's endpoint and ISN, the replayed
// SYN's destination (the back-end) and the option's fields but the MAC.
inline constexpr size_t kHandoffMacInputLen = 26;
std::array<uint8_t, kHandoffMacInputLen> handoff_mac_input(Endpoint client, Endpoint backend, uint32_t client_isn,
                                                          const HandoffOption& option);

// The option's data bytes (after kind and length), for PacketBuilder::raw_option.
std::array<uint8_t, kHandoffOptionLen - 2u> encode_option_data(const HandoffOption& option);

// The handoff option of `pkt`, if it carries a well-formed one.
std::optional<HandoffOption> find_handoff_option(const net::TcpPacket& pkt);

// Overwrites the handoff option of `pkt` with NOPs (so the kernel never sees
// it) and writes a complete TCP checksum. Returns false if there was none.
bool strip_handoff_option(net::TcpPacket& pkt);

}  // namespace hl::net
