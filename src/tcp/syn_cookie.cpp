#include "tcp/syn_cookie.h"

#include <algorithm>
#include <cstring>

namespace hl::tcp {

namespace {

constexpr uint32_t kCountShift = 24;  // the counter in the top 8 bits, the data hash below
constexpr uint32_t kLowMask = (1u << kCountShift) - 1;

constexpr uint64_t rotl(uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

struct SipState {
  uint64_t v0, v1, v2, v3;
  void round() {
    v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32);
    v2 += v3; v3 = rotl(v3, 16); v3 ^= v2;
    v0 += v3; v3 = rotl(v3, 21); v3 ^= v0;
    v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32);
  }
  void compress(uint64_t m) {
    v3 ^= m;
    round();
    round();
    v0 ^= m;
  }
};

uint64_t load_le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

uint64_t siphash24(const std::array<uint64_t, 2>& key, const uint8_t* data, size_t len) {
  SipState s{key[0] ^ 0x736f6d6570736575ULL, key[1] ^ 0x646f72616e646f6dULL, key[0] ^ 0x6c7967656e657261ULL,
             key[1] ^ 0x7465646279746573ULL};
  const size_t whole = len - len % 8;
  for (size_t i = 0; i < whole; i += 8) s.compress(load_le64(data + i));
  uint64_t last = static_cast<uint64_t>(len & 0xff) << 56;
  for (size_t i = 0; i < len % 8; ++i) last |= static_cast<uint64_t>(data[whole + i]) << (8 * i);
  s.compress(last);
  s.v2 ^= 0xff;
  for (int i = 0; i < 4; ++i) s.round();
  return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}

SynCookies::SynCookies(std::mt19937_64& rng)
    : keys_{{{rng(), rng()}, {rng(), rng()}}}, ts_offset_(static_cast<uint32_t>(rng())) {}

uint32_t SynCookies::hash(const net::Endpoint& client, const net::Endpoint& vip, uint32_t count,
                          size_t key) const {
  uint8_t buf[16];
  std::memcpy(buf, &client.addr.value, 4);
  std::memcpy(buf + 4, &vip.addr.value, 4);
  std::memcpy(buf + 8, &client.port, 2);
  std::memcpy(buf + 10, &vip.port, 2);
  std::memcpy(buf + 12, &count, 4);
  return static_cast<uint32_t>(siphash24(keys_[key], buf, sizeof buf));
}

// Linux's secure_tcp_syn_cookie: hash0 + client ISN + count << 24 + ((hash1(count) + data) & 0xffffff).
uint32_t SynCookies::make(const net::Endpoint& client, const net::Endpoint& vip, uint32_t client_isn,
                          uint32_t count, uint32_t data) const {
  return hash(client, vip, 0, 0) + client_isn + (count << kCountShift) +
         ((hash(client, vip, count, 1) + data) & kLowMask);
}

void SynCookies::answer(ClientHandshake& hs, const net::Endpoint& vip, uint8_t wscale, uint64_t now_ms) {
  uint32_t index = 0;
  for (uint32_t i = kMssTable.size(); i-- > 0;) {
    if (kMssTable[i] <= hs.mss) {
      index = i;
      break;
    }
  }
  hs.mss = kMssTable[index];
  hs.client_syn.mss = hs.mss;  // what the replayed SYN will say (no more than the client's)
  hs.ts_ok = hs.client_syn.timestamps.has_value();
  if (!hs.ts_ok) {
    hs.client_syn.wscale.reset();
    hs.client_syn.sack_permitted = false;
  }
  if (hs.client_syn.wscale && *hs.client_syn.wscale > kMaxWscale) hs.client_syn.wscale = kMaxWscale;
  hs.wscale_ok = hs.client_syn.wscale.has_value();
  hs.server_wscale = hs.wscale_ok ? wscale : uint8_t{0};
  const auto count = static_cast<uint32_t>(now_ms / kSlotMs);
  hs.server_isn = tcp::SeqNum(make(hs.client, vip, hs.client_isn.value(), count, index));
  if (hs.ts_ok) {
    uint32_t opts = hs.wscale_ok ? *hs.client_syn.wscale : kTsNoWscale;
    if (hs.client_syn.sack_permitted) opts |= kTsSackBit;
    hs.ts_base = ((ts_offset_ + static_cast<uint32_t>(now_ms)) & ~kTsOptMask) | opts;
  }
  last_sent_ms_ = now_ms;
}

SynCookieSecret SynCookies::secret_from(std::span<const uint8_t, 40> material) {
  SynCookieSecret s;
  auto word = [&](size_t at) {
    uint64_t v = 0;
    for (size_t i = 0; i < 8; ++i) v |= uint64_t{material[at + i]} << (8 * i);
    return v;
  };
  s.keys = {{{word(0), word(8)}, {word(16), word(24)}}};
  s.ts_offset = static_cast<uint32_t>(word(32));
  return s;
}

std::optional<ClientHandshake> SynCookies::check(const net::TcpPacket& ack, const net::Endpoint& vip,
                                                 uint8_t wscale, uint16_t max_mss, uint64_t now_ms) const {
  ClientHandshake hs;
  hs.client = net::Endpoint{ack.src_addr(), ack.src_port()};
  hs.client_isn = tcp::SeqNum(ack.seq() - 1);
  hs.server_isn = tcp::SeqNum(ack.ack() - 1);
  // Linux's check_tcp_syn_cookie.
  const auto count = static_cast<uint32_t>(now_ms / kSlotMs);
  const uint32_t c = hs.server_isn.value() - hash(hs.client, vip, 0, 0) - hs.client_isn.value();
  const uint32_t age = (count - (c >> kCountShift)) & 0xff;
  if (age >= kMaxAgeSlots) return std::nullopt;
  const uint32_t index = (c - hash(hs.client, vip, count - age, 1)) & kLowMask;
  if (index >= kMssTable.size()) return std::nullopt;

  hs.rcv_nxt = hs.client_isn + 1u;
  hs.mss = std::min(max_mss, kMssTable[index]);
  hs.client_syn.mss = kMssTable[index];
  hs.client_window = ack.window();
  if (ack.options.timestamps) {
    const uint32_t opts = ack.options.timestamps->tsecr & kTsOptMask;
    const uint32_t shift = opts & kTsWscaleMask;
    if (shift != kTsNoWscale) hs.client_syn.wscale = static_cast<uint8_t>(shift);  // 0..14
    hs.client_syn.sack_permitted = (opts & kTsSackBit) != 0;
    hs.ts_ok = true;
    hs.ts_base = ack.options.timestamps->tsecr;
    hs.client_tsval = ack.options.timestamps->tsval;
    // The SYN's TSval is gone; the ACK's is the closest the replayed SYN can say.
    hs.client_syn.timestamps = net::Timestamps{hs.client_tsval, 0};
  }
  hs.wscale_ok = hs.client_syn.wscale.has_value();
  hs.server_wscale = hs.wscale_ok ? wscale : uint8_t{0};
  // The SYN's window was not scaled; the ACK's is: unscale it for the replayed SYN.
  const uint32_t window = uint32_t{ack.window()} << hs.client_syn.wscale.value_or(0);
  hs.syn_window = static_cast<uint16_t>(std::min<uint32_t>(window, 0xffff));
  return hs;
}

}  // namespace hl::tcp
