// The engine's SYN cookie secret as the BPF programs take it: origin.bpf.c
// answers SYNs with it, adopt.bpf.c checks the cookie of a request an origin
// dispatched in the kernel (both read struct hl_origin_settings).
#pragma once

#include <array>
#include <cstdint>

#include "bpf/origin_abi.h"

namespace hl::bpf {

// tcp::SynCookies' secret: its two SipHash keys and its TSval clock offset.
struct CookieSecret {
  std::array<std::array<uint64_t, 2>, 2> keys{};
  uint32_t ts_offset = 0;
};

// How the engine answers a SYN (what the SYN/ACK must say to be its own).
struct SynAnswer {
  uint16_t max_mss = 1460;     // the MSS cap (ClientHandshake::note_syn's max_mss, the engine's cfg.mss)
  uint16_t syn_window = 65535; // the SYN/ACK's window field (HandshakeSender's syn_window)
  uint8_t wscale = 7;          // the shift announced when the client scales (cfg.wscale)
};

// The map value both programs read (key_set = 1).
inline hl_origin_settings to_settings(const CookieSecret& secret, const SynAnswer& answer) {
  hl_origin_settings value{};
  value.keys[0] = secret.keys[0][0];
  value.keys[1] = secret.keys[0][1];
  value.keys[2] = secret.keys[1][0];
  value.keys[3] = secret.keys[1][1];
  value.ts_offset = secret.ts_offset;
  value.max_mss = answer.max_mss;
  value.syn_window = answer.syn_window;
  value.wscale = answer.wscale;
  value.key_set = 1;
  return value;
}

}  // namespace hl::bpf
