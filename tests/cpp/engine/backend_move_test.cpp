// BackendEngine and moves (the frontend design, in band): its front-end's
// Release retires a quiet connection, answered over the relay link.
#include <gtest/gtest.h>

#include <string>
#include <variant>

#include "engine/backend.h"
#include "engine/harness.h"
#include "net/handoff_option.h"
#include "net/packet_builder.h"

namespace hl::engine {
namespace {

using namespace hl::engine::testing;

constexpr uint32_t kIsn = 100;     // c
constexpr uint32_t kFeIsn = 5000;  // f
const std::string kGet = "GET /docs/a HTTP/1.1\r\nHost: x\r\n\r\n";
const std::string kResponse = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";

struct Be : EngineFakes {
  uint64_t now = 0;
  BackendEngine engine;

  static BackendConfig config(io::PacketSender* raw) {
    BackendConfig c = backend_config(kBe1);
    c.raw = raw;
    return c;
  }
  explicit Be(bool with_raw = true) : engine(config(with_raw ? &raw : nullptr), verdicts, messages, [this] { return now; }) {}

  std::vector<Verdict> send(std::vector<uint8_t> bytes, io::Hook hook = io::Hook::kPreRouting) {
    return run(engine, bytes, hook);
  }
  static PacketBuilder client() { return std::move(PacketBuilder().ipv4(kClient.addr, kBe1).tcp(kClient.port, 80)); }

  // A connection handed in with one request, answered and acknowledged.
  void carry_one_exchange() {
    const auto opt = net::encode_option_data(net::HandoffOption{kFeIsn, 0, 0});
    send(client().seq(kIsn).flags(SYN).raw_option(net::kHandoffOptionKind, opt).build());
    send(client().seq(kIsn + 1).ack(kFeIsn + 1).flags(ACK | PSH).payload(kGet).build());  // held
    send(from_kernel(kBe1).seq(1).ack(kIsn + 1).flags(SYN | ACK).build(), io::Hook::kLocalOut);
    send(from_kernel(kBe1).seq(2).ack(request_end()).flags(ACK | PSH).payload(kResponse).build(),
         io::Hook::kLocalOut);
    send(client().seq(request_end()).ack(server_end()).flags(ACK).build());
    verdicts.take();
    messages.take();
  }
  static uint32_t request_end() { return kIsn + 1 + static_cast<uint32_t>(kGet.size()); }
  static uint32_t server_end() { return kFeIsn + 1 + static_cast<uint32_t>(kResponse.size()); }
  static control::Release order() { return control::Release{kClient, 1, request_end(), server_end(), 0, 0}; }
};

TEST(BackendMoveTest, TheFrontEndsReleaseRetiresAQuietConnection) {
  Be be;
  be.carry_one_exchange();
  be.engine.on_message(kFe, be.order());
  auto rst = be.raw.take();
  ASSERT_EQ(rst.size(), 1u);
  auto pkt = net::parse_tcp_packet(rst[0]);
  ASSERT_TRUE(pkt);
  EXPECT_EQ(pkt->src_addr(), kClient.addr);
  EXPECT_EQ(pkt->dst_addr(), kBe1);
  EXPECT_EQ(pkt->dst_port(), 80);
  EXPECT_EQ(pkt->seq(), Be::request_end());
  EXPECT_EQ(pkt->flags(), RST);
  auto m = be.messages.take();
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].to, kFe);
  EXPECT_EQ(std::get<control::Released>(m[0].message),
            (control::Released{kClient, control::ReleaseStatus::kReleased, Be::server_end(), 0}));
  EXPECT_EQ(be.engine.counters().release_orders, 1u);
  EXPECT_EQ(be.engine.counters().released, 1u);
  // Its packets go nowhere now; no Termination follows.
  EXPECT_EQ(only_verdict(be.send(Be::client().seq(Be::request_end()).ack(Be::server_end()).flags(ACK | PSH)
                                     .payload(kGet).build())).kind,
            VerdictKind::Drop);
  be.now += 60000;
  be.engine.on_timer();
  EXPECT_TRUE(be.messages.take().empty());
  EXPECT_EQ(be.engine.counters().active, 0u);
}

TEST(BackendMoveTest, ReleasesFromAnyoneElseAreControlErrors) {
  Be be;
  be.carry_one_exchange();
  be.engine.on_message(kStranger, be.order());
  be.engine.on_message(kFe, control::Keepalive{});  // not for a back-end: ignored
  EXPECT_TRUE(be.raw.take().empty());
  EXPECT_TRUE(be.messages.take().empty());
  EXPECT_EQ(be.engine.counters().control_errors, 1u);
  EXPECT_EQ(be.engine.counters().release_orders, 0u);
}

TEST(BackendMoveTest, UnknownConnectionsAreAnsweredSo) {
  Be be;
  be.engine.on_message(kFe, be.order());
  auto m = be.messages.take();
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(std::get<control::Released>(m[0].message).status, control::ReleaseStatus::kUnknown);
  EXPECT_EQ(be.engine.counters().release_unknown, 1u);
}

TEST(BackendMoveTest, WithoutARawSenderAMoveTimesOut) {
  Be be(false);
  be.carry_one_exchange();
  be.engine.on_message(kFe, be.order());
  EXPECT_TRUE(be.messages.take().empty());
  be.now += BackendConfig::kDefaultReleaseTimeoutMs;
  be.engine.on_timer();
  auto m = be.messages.take();
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(std::get<control::Released>(m[0].message).status, control::ReleaseStatus::kTimeout);
  // Its origin resets the client: the connection ends here too (no socket
  // reset without a raw sender: its server's own timeouts end that).
  EXPECT_TRUE(std::holds_alternative<control::Termination>(m[1].message));
  EXPECT_EQ(be.engine.counters().release_timeouts, 1u);
}

}  // namespace
}  // namespace hl::engine
