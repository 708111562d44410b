// Carried: one connection carried by translation (TranslationCarrier, the
// control path's hand-in: the carrier injects the request), with a client and
// a kernel to play. For the translation carrier's tests.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <variant>
#include <vector>

#include "engine/fakes.h"
#include "engine/origin_link.h"
#include "engine/serving_side.h"
#include "engine/translation_carrier.h"
#include "net/packet_builder.h"

// Its own namespace: other harnesses (topology.h) name their addresses alike.
namespace hl::engine::testing::carried {

using namespace hl::engine::testing;
using net::PacketBuilder;
using net::tcp_flag::ACK;
using net::tcp_flag::PSH;
using net::tcp_flag::SYN;

inline constexpr net::Endpoint kVip{net::ipv4(10, 0, 0, 100), 80};
inline constexpr net::Ipv4Addr kNode = net::ipv4(10, 0, 0, 2);
inline constexpr net::Ipv4Addr kOrigin = net::ipv4(10, 0, 0, 1);
inline constexpr net::Endpoint kClient{net::ipv4(10, 0, 1, 5), 40000};
inline constexpr uint32_t kClientIsn = 1000;
inline constexpr uint32_t kOriginIsn = 7000;   // f: the client's view of the server's ISN
inline constexpr uint32_t kKernelIsn = 50000;  // b
inline constexpr uint32_t kOriginTs = 99;      // the TSval of the origin's SYN/ACK
inline constexpr uint32_t kKernelTs = 77;      // the TSval of the kernel's SYN/ACK
inline constexpr uint32_t kTimeoutMs = 10000;

inline const std::string kGet = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
inline const std::string kGet2 = "GET /b HTTP/1.1\r\nHost: x\r\n\r\n";
inline const std::string kResponse = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";

struct Carried {
  uint64_t now = 1000;
  ServingCounters counters;
  FakeMessenger messages;
  FakeVerdicts verdicts;
  FakeSender raw;
  ControlLink link{[this](net::Ipv4Addr to, const control::Message& m) { (void)messages.send(to, m); }, counters};
  TranslationCarrier carrier;
  ServingSide side{carrier, link, counters, kVip};
  uint32_t next_id = 1;
  uint32_t client_seq = kClientIsn + 1;  // the client's next byte
  uint32_t server_seq = kKernelIsn + 1;  // the kernel's next byte (its own numbers)
  uint32_t kernel_ts = kKernelTs;
  bool timestamps;
  uint32_t client_isn = kClientIsn;      // the connection's (its hand-in's) c

  // `sockets`: the kernel's sockets (the carrier's ServerSockets; may be null).
  explicit Carried(bool ts = true, uint32_t linger_ms = 100, ServerSockets* sockets = nullptr)
      : carrier(TranslationConfig{.vip = kVip, .node = {kNode, 80}, .linger_ms = linger_ms,
                                  .handshake_timeout_ms = 1000, .idle_timeout_ms = 1000000, .max_held = 4,
                                  .release_timeout_ms = kTimeoutMs},
                verdicts, &raw, link, counters, [this] { return now; }, sockets),
        timestamps(ts) {
    hand_in(kClientIsn);
    synack();
  }

  // The origin hands the connection in with client ISN `c` and kGet; the
  // carrier sends the kernel its SYN.
  void hand_in(uint32_t c) {
    control::HandoffRequest r;
    r.client = kClient;
    r.vip_port = kVip.port;
    r.client_isn = c;
    r.frontend_isn = kOriginIsn;
    r.mss = 1460;
    r.wscale = 7;
    if (timestamps) r.syn_tsval = 11;
    r.syn_window = 64240;
    r.client_window = 502;
    r.client_tsval = 12;
    r.frontend_ts_base = kOriginTs;
    r.frontend_wscale = 7;
    r.origin = kOrigin;
    r.request.assign(kGet.begin(), kGet.end());
    side.take_request(kOrigin, r);
    client_isn = c;
    client_seq = c + 1 + static_cast<uint32_t>(kGet.size());
    server_seq = kKernelIsn + 1;
  }
  // The kernel's SYN/ACK: the carrier injects the request and acks the origin.
  void synack() {
    PacketBuilder b = from_kernel().seq(kKernelIsn).ack(client_isn + 1).flags(SYN | ACK).mss(1460).wscale(7);
    if (timestamps) b.timestamps(kKernelTs, 11);
    to_carrier(b.build(), false);
    raw.take();  // the SYN and the injected request
    messages.take();  // the HandoffAck
    verdicts.take();
  }

  static PacketBuilder from_kernel() { return std::move(PacketBuilder().ipv4(kNode, kClient.addr).tcp(80, kClient.port)); }
  static PacketBuilder from_client() { return std::move(PacketBuilder().ipv4(kClient.addr, kNode).tcp(kClient.port, 80)); }

  // One packet through the serving side; its verdicts.
  std::vector<Verdict> to_carrier(std::vector<uint8_t> bytes, bool to_node) {
    auto pkt = net::parse_tcp_packet(bytes);
    EXPECT_TRUE(pkt);
    io::QueuedPacket qp{.id = next_id++, .data = bytes};
    ServingCounters unused;
    io::CheckedVerdicts checked(verdicts, unused.io_errors);
    side.on_packet(qp, *pkt, to_node, checked);
    return verdicts.take();
  }
  // The server sends `bytes` (flags: ACK|PSH and `extra`).
  std::vector<Verdict> server_sends(const std::string& bytes, uint8_t extra = 0) {
    PacketBuilder b = from_kernel().seq(server_seq).ack(client_seq).flags(static_cast<uint8_t>(ACK | PSH | extra));
    if (timestamps) b.timestamps(kernel_ts += 3, 12);
    if (!bytes.empty()) b.payload(bytes);
    server_seq += static_cast<uint32_t>(bytes.size());
    return to_carrier(b.build(), false);
  }
  // The client acks the server's bytes up to `ack` (client's view) and sends `bytes`.
  std::vector<Verdict> client_sends(uint32_t ack, const std::string& bytes = "") {
    PacketBuilder b = from_client().seq(client_seq).ack(ack).flags(bytes.empty() ? ACK : ACK | PSH);
    if (timestamps) b.timestamps(20, kOriginTs + 1);
    if (!bytes.empty()) b.payload(bytes);
    client_seq += static_cast<uint32_t>(bytes.size());
    return to_carrier(b.build(), true);
  }
  // The server's next byte in the client's view.
  uint32_t server_next() const { return server_seq - kKernelIsn + kOriginIsn; }
  control::Release order(uint32_t requests, uint32_t client_ack) const {
    return control::Release{kClient, requests, client_seq, client_ack, 30, 502};
  }
  // The Released answers sent since the last call.
  std::vector<control::Released> answers() {
    std::vector<control::Released> out;
    for (const SentMessage& m : messages.take()) {
      EXPECT_EQ(m.to, kOrigin);
      if (const auto* a = std::get_if<control::Released>(&m.message)) {
        out.push_back(*a);
      } else {
        ADD_FAILURE() << "not a Released";
      }
    }
    return out;
  }
  void tick(uint64_t ms) {
    now += ms;
    carrier.on_timer(now);
  }
};

}  // namespace hl::engine::testing::carried
