// SYN cookies (as Linux's net.ipv4.tcp_syncookies=1): when the half-open table
// is full, the handshake's engine answers a SYN without keeping any state. The
// SYN/ACK's ISN is a keyed hash of the connection's addresses and the client's
// ISN, a coarse time counter and a 3-bit MSS index; when the client sent
// timestamps, its window scale and SACK-permitted ride in the low 6 bits of our
// TSval, which the client echoes in every TSecr. The client's ACK is checked
// against the cookie and the connection state is built from what it encodes.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <random>
#include <span>

#include "io/checked_io.h"
#include "tcp/handshake.h"
#include "io/packet_io.h"
#include "net/ipv4_addr.h"
#include "net/tcp_packet.h"

namespace hl::tcp {

// SipHash-2-4 of two 64-bit words (the cookie's keyed hash; exposed for its test).
uint64_t siphash24(const std::array<uint64_t, 2>& key, const uint8_t* data, size_t len);

// The cookie secret: both SipHash keys and the TSval clock offset. Nodes that
// share one (derived from the cluster key) check each other's cookies: a
// request dispatched in the kernel is adopted by its serving node on its cookie.
struct SynCookieSecret {
  std::array<std::array<uint64_t, 2>, 2> keys{};
  uint32_t ts_offset = 0;
};

class SynCookies {
 public:
  // The counter advances every 64 s; a cookie is valid in its slot and the next
  // (Linux: MAX_SYNCOOKIE_AGE 2, a counter of seconds / 64).
  static constexpr uint64_t kSlotMs = 64000;
  static constexpr uint32_t kMaxAgeSlots = 2;
  // MSS values a cookie can encode (3 bits); a client gets the largest not above its own.
  static constexpr std::array<uint16_t, 8> kMssTable = {88, 536, 1200, 1300, 1380, 1420, 1440, 1460};
  // The low bits of our TSval: the client's window scale (kNoWscale if none) and SACK.
  static constexpr uint32_t kTsOptBits = 6;
  static constexpr uint32_t kTsOptMask = (1u << kTsOptBits) - 1;
  static constexpr uint32_t kTsWscaleMask = 0xf;
  static constexpr uint32_t kTsNoWscale = 0xf;
  static constexpr uint32_t kTsSackBit = 0x10;
  static constexpr uint8_t kMaxWscale = 14;  // RFC 7323 §2.3

  // The secret key and the TS clock offset come from `rng` (seeded per process).
  explicit SynCookies(std::mt19937_64& rng);
  // Replaces the secret (before the first cookie is sent).
  void set_secret(const SynCookieSecret& secret) {
    keys_ = secret.keys;
    ts_offset_ = secret.ts_offset;
  }
  // The secret of 40 bytes of key material (little-endian words: the four
  // keys, then the offset): what every node derives from the cluster key.
  static SynCookieSecret secret_from(std::span<const uint8_t, 40> material);

  // Answers `hs` (note_syn done, any MSS cap applied) statelessly: server ISN =
  // cookie, MSS rounded down to a table value; without timestamps the client's
  // window scale and SACK are forgotten (nowhere to keep them), so our SYN/ACK
  // offers neither. `wscale`: the shift we announce when the client scales.
  void answer(ClientHandshake& hs, const net::Endpoint& vip, uint8_t wscale, uint64_t now_ms);

  // The state of the connection whose ACK `ack` (no SYN, no RST) completes a
  // cookie handshake, as note_syn + answer would have built it; nullopt if the
  // cookie is forged or too old. (The options in TSecr are not authenticated,
  // as in Linux: a client can only misstate its own window scale and SACK.)
  // `max_mss` caps the MSS as note_syn does.
  std::optional<ClientHandshake> check(const net::TcpPacket& ack, const net::Endpoint& vip, uint8_t wscale,
                                       uint16_t max_mss, uint64_t now_ms) const;

  // The secret (both SipHash keys, the TS clock offset), for a kernel data
  // path that answers SYNs with this engine's cookies (bpf::OriginPath).
  const std::array<std::array<uint64_t, 2>, 2>& keys() const { return keys_; }
  uint32_t ts_offset() const { return ts_offset_; }

  // Whether a cookie was sent recently enough to still be valid (else an
  // unknown ACK is not worth checking, as Linux's tcp_synq_no_recent_overflow).
  bool recently_sent(uint64_t now_ms) const {
    return last_sent_ms_ && now_ms - *last_sent_ms_ < kMaxAgeSlots * kSlotMs;
  }
  // Counts as a cookie sent at `now_ms` without answering a SYN here: for a
  // kernel data path that answers SYNs with this secret (bpf::OriginPath),
  // whose cookies user space never sees leave.
  void note_sent(uint64_t now_ms) { last_sent_ms_ = now_ms; }

 private:
  uint32_t hash(const net::Endpoint& client, const net::Endpoint& vip, uint32_t count, size_t key) const;
  uint32_t make(const net::Endpoint& client, const net::Endpoint& vip, uint32_t client_isn, uint32_t count,
                uint32_t data) const;

  std::array<std::array<uint64_t, 2>, 2> keys_;
  uint32_t ts_offset_;
  std::optional<uint64_t> last_sent_ms_;
};

// An ACK of no known connection in an engine that answers SYNs (frontend,
// always), with cookies on: the handshake state it completes, if any, with the
// verdict and the counts that go with it. Returns the state to build (the ACK
// then goes on as in SYN-RECEIVED); otherwise `handled` says whether the ACK
// got its verdict here (dropped: corrupt, or the connection table is `full`:
// the client retransmits and the cookie stays valid a while) or is an unknown
// packet after all (a forged or old cookie is counted). `Counters` has
// dropped_malformed, syn_cookies_invalid, syns_dropped and syn_cookies_valid.
template <class Counters>
std::optional<ClientHandshake> take_cookie_ack(const SynCookies& cookies, const io::QueuedPacket& qp,
                                               const net::TcpPacket& pkt, const net::Endpoint& vip, uint8_t wscale,
                                               uint16_t max_mss, uint64_t now_ms, bool full,
                                               io::CheckedVerdicts& verdicts, Counters& counters, bool& handled) {
  using namespace net::tcp_flag;
  handled = false;
  if (!pkt.has_flags(ACK) || (pkt.flags() & (SYN | RST)) != 0 || !cookies.recently_sent(now_ms)) return std::nullopt;
  if (!qp.checksum_partial && !pkt.tcp_checksum_ok()) {
    verdicts.drop(qp.id);  // no state for a corrupt ACK
    ++counters.dropped_malformed;
    handled = true;
    return std::nullopt;
  }
  std::optional<ClientHandshake> hs = cookies.check(pkt, vip, wscale, max_mss, now_ms);
  if (!hs) {
    ++counters.syn_cookies_invalid;
    return std::nullopt;
  }
  if (full) {
    verdicts.drop(qp.id);
    ++counters.syns_dropped;
    handled = true;
    return std::nullopt;
  }
  ++counters.syn_cookies_valid;
  return hs;
}

}  // namespace hl::tcp
