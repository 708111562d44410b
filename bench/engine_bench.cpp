// Whole synthetic connections through each design's state machines, no kernel:
// ns (and, under ci/bench-instructions, instructions) per connection.
//
// The benchmark plays the kernels and the client as tests/cpp/engine/handoff_test.cpp
// and node_engine_test.cpp do, but without allocating per packet: every packet
// is a template built once, copied into a reused buffer and patched (client
// port; ack / TSecr / SACK where they depend on the engine's random ISN) with
// RFC 1624 updates, as a kernel hands the engine a buffer. Each iteration is one
// connection from SYN to freed state (linger expiry included), one request of
// a 1000-byte response, timestamps + SACK + window scaling on.
#include <benchmark/benchmark.h>

#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "bench_iterations.h"
#include "dispatch/dispatcher.h"
#include "engine/backend.h"
#include "engine/frontend.h"
#include "engine/node_engine.h"
#include "net/byte_order.h"
#include "net/checksum.h"
#include "net/packet_builder.h"

namespace {

using namespace hl;
using net::PacketBuilder;
using net::tcp_flag::ACK;
using net::tcp_flag::FIN;
using net::tcp_flag::PSH;
using net::tcp_flag::SYN;

const net::Endpoint kVip{net::ipv4(10, 0, 100, 1), 80};
const net::Ipv4Addr kFe = net::ipv4(10, 0, 2, 2);
const net::Ipv4Addr kA = net::ipv4(10, 0, 2, 11);
const net::Ipv4Addr kB = net::ipv4(10, 0, 2, 12);
const net::Ipv4Addr kClient = net::ipv4(10, 0, 1, 11);
constexpr uint32_t kClientIsn = 0x10000000;
constexpr uint32_t kKernelIsn = 0x12345678;     // the serving kernel's b
constexpr uint32_t kVipKernelIsn = 0x0badf00d;  // rare: the origin kernel's f
constexpr uint32_t kClientTs = 1000;
constexpr uint32_t kKernelTs = 777777;
constexpr uint32_t kVipKernelTs = 4242;
constexpr size_t kBody = 1000;
// One request per connection, as wrk sends it in the experiments (Connection:
// close): the connection never moves, so the origin does not read on (moves:
// origin_requests.cpp).
const std::string kRequestA = "GET /docs/a HTTP/1.1\r\nHost: cluster\r\nUser-Agent: wrk\r\nConnection: close\r\n\r\n";
const std::string kRequestB = "GET /docs/b HTTP/1.1\r\nHost: cluster\r\nUser-Agent: wrk\r\nConnection: close\r\n\r\n";
constexpr uint32_t kReqEnd = kClientIsn + 1 + 75;  // both requests are 75 bytes
static_assert(sizeof("GET /docs/b HTTP/1.1\r\nHost: cluster\r\nUser-Agent: wrk\r\nConnection: close\r\n\r\n") - 1 == 75);
constexpr size_t kIp = 20;  // IPv4 header length of every template

// --- the kernel's side: packet templates stamped into reused buffers ---------------
// A packet template; stamp() copies it into a reused buffer and patches the client
// port (source if from the client, else destination) and optionally ack, TSecr and
// the first SACK block, keeping a Full checksum right (Partial ones hold only the
// pseudo-header sum, which none of these fields is part of).
class Template {
 public:
  Template(std::vector<uint8_t> bytes, bool from_client, bool partial = false)
      : bytes_(std::move(bytes)), from_client_(from_client), partial_(partial) {
    auto p = *net::parse_tcp_packet(bytes_);
    if (p.options.timestamps) tsecr_at_ = p.options_offset() + p.options.timestamps_offset + 4;
    if (p.options.sack_count > 0) sack_at_ = p.options_offset() + p.options.sack_offset;
  }

  // Connection `conn` is client port 1024 + conn % 60000 at address kClient + conn / 60000.
  io::QueuedPacket stamp(std::vector<uint8_t>& buf, uint32_t id, uint32_t conn,
                         std::optional<uint32_t> ack = {}, std::optional<uint32_t> tsecr = {},
                         std::optional<net::SackBlock> sack = {}, io::Hook hook = io::Hook::kPreRouting) const {
    buf.assign(bytes_.begin(), bytes_.end());
    put16(buf, kIp + (from_client_ ? 0 : 2), static_cast<uint16_t>(1024 + conn % 60000));
    if (conn >= 60000) {
      const size_t at = from_client_ ? 12 : 16;
      const uint32_t old = net::load_be32(&buf[at]);
      const uint32_t addr = kClient.value + (conn / 60000) % 100;
      net::store_be32(&buf[at], addr);
      net::store_be16(&buf[10], net::checksum_update32(net::load_be16(&buf[10]), old, addr));
      if (!partial_) net::store_be16(&buf[kIp + 16], net::checksum_update32(net::load_be16(&buf[kIp + 16]), old, addr));
    }
    if (ack) put32(buf, kIp + 8, *ack);
    if (tsecr && tsecr_at_) put32(buf, tsecr_at_, *tsecr);
    if (sack && sack_at_) {
      put32(buf, sack_at_, sack->left);
      put32(buf, sack_at_ + 4, sack->right);
    }
    io::QueuedPacket q;
    q.id = id;
    q.data = buf;
    q.hook = hook;
    q.checksum_partial = partial_;
    return q;
  }

 private:
  void put16(std::vector<uint8_t>& b, size_t at, uint16_t v) const {
    const uint16_t old = net::load_be16(&b[at]);
    net::store_be16(&b[at], v);
    if (!partial_) net::store_be16(&b[kIp + 16], net::checksum_update16(net::load_be16(&b[kIp + 16]), old, v));
  }
  void put32(std::vector<uint8_t>& b, size_t at, uint32_t v) const {
    const uint32_t old = net::load_be32(&b[at]);
    net::store_be32(&b[at], v);
    if (!partial_) net::store_be16(&b[kIp + 16], net::checksum_update32(net::load_be16(&b[kIp + 16]), old, v));
  }

  std::vector<uint8_t> bytes_;
  bool from_client_;
  bool partial_;
  size_t tsecr_at_ = 0;
  size_t sack_at_ = 0;
};

// --- fakes of the I/O boundary that keep only the latest packets, in reused buffers --
enum class Kind { None, Accept, Modified, Drop, Marked };

class Verdicts final : public io::Verdicts {
 public:
  io::IoStatus accept(uint32_t) override { return set(Kind::Accept); }
  io::IoStatus accept_modified(uint32_t, std::span<const uint8_t> p) override {
    bytes.assign(p.begin(), p.end());
    return set(Kind::Modified);
  }
  io::IoStatus drop(uint32_t) override { return set(Kind::Drop); }
  io::IoStatus accept_with_mark(uint32_t, uint32_t) override { return set(Kind::Marked); }
  void accept_deferred(uint32_t) override { (void)set(Kind::Accept); }
  io::IoStatus flush() override { return io::io_ok(); }

  Kind last = Kind::None;
  size_t count = 0;
  std::vector<uint8_t> bytes;  // of the latest Modified

 private:
  io::IoStatus set(Kind k) {
    last = k;
    ++count;
    return io::io_ok();
  }
};

class Sender final : public io::PacketSender {
 public:
  io::IoStatus send(std::span<const uint8_t> p) override {
    if (n == sent.size()) sent.emplace_back();
    sent[n++].assign(p.begin(), p.end());
    return io::io_ok();
  }
  std::vector<std::vector<uint8_t>> sent;
  size_t n = 0;  // packets sent since the caller last reset it
};

class Messenger final : public control::MessageSender {
 public:
  bool send(net::Ipv4Addr, const control::Message& m) override {
    last = m;
    ++n;
    return true;
  }
  control::Message last;
  size_t n = 0;
};

std::unique_ptr<dispatch::Dispatcher> dispatcher(const char* map) {
  return std::make_unique<dispatch::Dispatcher>(dispatch::ContentMap::parse(map), "first");
}

io::QueuedPacket as_queued(std::vector<uint8_t>& bytes, uint32_t id, io::Hook hook = io::Hook::kPreRouting) {
  io::QueuedPacket q;
  q.id = id;
  q.data = bytes;
  q.hook = hook;
  return q;
}

void fail(benchmark::State& state, const char* what) { state.SkipWithError(what); }

PacketBuilder from_client() {
  return std::move(PacketBuilder().ipv4(kClient, kVip.addr).tcp(40000, kVip.port));
}
std::vector<uint8_t> client_syn() {
  return from_client().seq(kClientIsn).flags(SYN).window(64240).mss(1460).sack_permitted()
      .timestamps(kClientTs, 0).wscale(7).build();
}
std::vector<uint8_t> body() { return std::vector<uint8_t>(kBody, 'x'); }

// --- frontend design: FrontendEngine + BackendEngine -----------------------------------
// SYN, SYN/ACK (front-end), ACK, request, replayed SYN + request at the back-end, the
// kernel's SYN/ACK, handoff ack, 1000-byte response (Partial: full checksum written),
// client ACK with SACK forwarded + translated, back-end FIN relayed, client FIN
// forwarded, linger expiry on both.
void BM_FrontendConnection(benchmark::State& state) {
  uint64_t now = 1000;
  Verdicts fe_v, be_v;
  Sender fe_raw;
  Messenger be_msg;
  engine::FrontendConfig fc;
  fc.vip = kVip;
  fc.backend_addrs = {kA, kB};
  fc.seed = 42;
  engine::BackendConfig bc;
  bc.node = kB;
  bc.vip = kVip;
  bc.frontend = kFe;
  engine::FrontendEngine fe(fc, dispatcher("/docs/a be1\n/docs/b be2\n"), fe_v, fe_raw, [&] { return now; });
  engine::BackendEngine be(bc, be_v, be_msg, [&] { return now; });

  const Template syn(client_syn(), true);
  const Template ack(from_client().seq(kClientIsn + 1).ack(0).flags(ACK).window(502)
                         .timestamps(kClientTs + 1, 0).build(), true);
  const Template req(from_client().seq(kClientIsn + 1).ack(0).flags(ACK | PSH).window(502)
                         .timestamps(kClientTs + 2, 0).payload(kRequestB).build(), true);
  const auto from_kernel = [] { return std::move(PacketBuilder().ipv4(kB, kClient).tcp(80, 40000)); };
  const Template k_synack(from_kernel().seq(kKernelIsn).ack(kClientIsn + 1).flags(SYN | ACK).mss(1460)
                              .sack_permitted().timestamps(kKernelTs, kClientTs).wscale(6).build(), false);
  const Template k_data(from_kernel().seq(kKernelIsn + 1).ack(kReqEnd).flags(ACK | PSH).window(1000)
                            .timestamps(kKernelTs + 10, kClientTs + 2).payload(body())
                            .checksum_state(net::ChecksumState::Partial).build(), false, true);
  const Template c_sack(from_client().seq(kReqEnd).ack(0).flags(ACK).window(502)
                            .timestamps(kClientTs + 3, 0).sack({{1, 2}}).build(), true);
  const Template k_fin(from_kernel().seq(kKernelIsn + 1 + kBody).ack(kReqEnd).flags(FIN | ACK).window(1000)
                           .timestamps(kKernelTs + 20, kClientTs + 3).build(), false);
  const Template c_fin(from_client().seq(kReqEnd).ack(0).flags(FIN | ACK).window(502)
                           .timestamps(kClientTs + 4, 0).build(), true);

  std::vector<uint8_t> buf;
  buf.reserve(2048);
  uint32_t id = 1;
  uint32_t conn = 0;
  for (auto _ : state) {
    const uint32_t port = conn++ % 6000000;
    fe_raw.n = 0;
    fe.on_packet(syn.stamp(buf, id++, port));
    if (fe_raw.n != 1) return fail(state, "no SYN/ACK");
    auto synack = *net::parse_tcp_packet(fe_raw.sent[0]);
    const uint32_t f = synack.seq();
    const uint32_t fe_ts = synack.options.timestamps->tsval;
    fe.on_packet(ack.stamp(buf, id++, port, f + 1, fe_ts));
    fe_raw.n = 0;
    fe.on_packet(req.stamp(buf, id++, port, f + 1, fe_ts));
    if (fe_raw.n != 2) return fail(state, "no handoff");
    be.on_packet(as_queued(fe_raw.sent[0], id++));  // replayed SYN: accepted, option stripped
    be.on_packet(as_queued(fe_raw.sent[1], id++));  // request: held
    be_msg.n = 0;
    be.on_packet(k_synack.stamp(buf, id++, port, {}, {}, {}, io::Hook::kLocalOut));
    if (be_msg.n != 1 || be_v.last != Kind::Modified) return fail(state, "no handoff ack");
    fe.on_message(kB, be_msg.last);
    be.on_packet(k_data.stamp(buf, id++, port, {}, {}, {}, io::Hook::kLocalOut));
    if (be_v.last != Kind::Modified) return fail(state, "response not translated");
    fe.on_packet(c_sack.stamp(buf, id++, port, f + 1 + kBody, fe_ts + 10, net::SackBlock{f + 1, f + 501}));
    if (fe_v.last != Kind::Modified) return fail(state, "ACK not forwarded");
    be.on_packet(as_queued(fe_v.bytes, id++));
    be_msg.n = 0;
    be.on_packet(k_fin.stamp(buf, id++, port, {}, {}, {}, io::Hook::kLocalOut));
    if (be_msg.n != 1) return fail(state, "FIN not relayed");
    fe.on_message(kB, be_msg.last);
    fe.on_packet(c_fin.stamp(buf, id++, port, f + 2 + kBody, fe_ts + 20));
    be.on_packet(as_queued(fe_v.bytes, id++));
    now += engine::FrontendConfig::kDefaultLingerMs;
    fe.on_timer();
    be.on_timer();
  }
  if (fe.counters().active != 0 || be.counters().active != 0) fail(state, "states not freed");
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.counters["fe_pkts"] = benchmark::Counter(static_cast<double>(fe_v.count) /
                                                 static_cast<double>(state.iterations()));
  state.counters["be_pkts"] = benchmark::Counter(static_cast<double>(be_v.count) /
                                                 static_cast<double>(state.iterations()));
}
BENCHMARK(BM_FrontendConnection)->Apply(hl::bench::fixed_iterations);

// Forwarding one client ACK at the front-end (lookup + translation + verdict) while
// Arg connections are established: does the flow table degrade at 10k / 100k?
void BM_FrontendForwardAtScale(benchmark::State& state) {
  const auto conns = static_cast<uint32_t>(state.range(0));
  uint64_t now = 1000;
  Verdicts fe_v, be_v;
  Sender fe_raw;
  Messenger be_msg;
  engine::FrontendConfig fc;
  fc.vip = kVip;
  fc.backend_addrs = {kA, kB};
  fc.seed = 42;
  fc.max_connections = conns + 16;
  engine::BackendConfig bc;
  bc.node = kB;
  bc.vip = kVip;
  bc.frontend = kFe;
  engine::FrontendEngine fe(fc, dispatcher("/docs/a be1\n/docs/b be2\n"), fe_v, fe_raw, [&] { return now; });
  engine::BackendEngine be(bc, be_v, be_msg, [&] { return now; });
  const Template syn(client_syn(), true);
  const Template req(from_client().seq(kClientIsn + 1).ack(0).flags(ACK | PSH).window(502)
                         .timestamps(kClientTs + 2, 0).payload(kRequestB).build(), true);
  const Template k_synack(PacketBuilder().ipv4(kB, kClient).tcp(80, 40000).seq(kKernelIsn).ack(kClientIsn + 1)
                              .flags(SYN | ACK).mss(1460).sack_permitted().timestamps(kKernelTs, kClientTs)
                              .wscale(7).build(), false);
  const Template c_ack(from_client().seq(kReqEnd).ack(0).flags(ACK).window(502)
                           .timestamps(kClientTs + 3, 0).build(), true);
  std::vector<uint8_t> buf;
  buf.reserve(2048);
  std::vector<std::pair<uint32_t, uint32_t>> isn(conns);  // f, fe_ts per connection
  uint32_t id = 1;
  for (uint32_t c = 0; c < conns; ++c) {
    fe_raw.n = 0;
    fe.on_packet(syn.stamp(buf, id++, c));
    if (fe_raw.n != 1) return fail(state, "no SYN/ACK");
    auto synack = *net::parse_tcp_packet(fe_raw.sent[0]);
    isn[c] = {synack.seq(), synack.options.timestamps->tsval};
    fe_raw.n = 0;
    fe.on_packet(req.stamp(buf, id++, c, isn[c].first + 1, isn[c].second));
    if (fe_raw.n != 2) return fail(state, "no handoff");
    be.on_packet(as_queued(fe_raw.sent[0], id++));
    be.on_packet(as_queued(fe_raw.sent[1], id++));
    be_msg.n = 0;
    be.on_packet(k_synack.stamp(buf, id++, c, {}, {}, {}, io::Hook::kLocalOut));
    if (be_msg.n != 1) return fail(state, "no handoff ack");
    fe.on_message(kB, be_msg.last);
  }
  uint32_t c = 0;
  for (auto _ : state) {
    fe.on_packet(c_ack.stamp(buf, id++, c, isn[c].first + 1, isn[c].second));
    c = (c * 7919 + 1) % conns;  // wander over the table
  }
  if (fe_v.last != Kind::Modified) fail(state, "not forwarded");
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_FrontendForwardAtScale)->Arg(1)->Arg(10000)->Arg(100000)->Apply(hl::bench::fixed_iterations);

// --- always and rare: two NodeEngines, a (origin) and b (serving) ----------------------
struct Nodes {
  uint64_t now = 1000;
  Verdicts a_v, b_v;
  Sender a_raw, b_raw;
  Messenger a_msg, b_msg;
  engine::NodeEngine a, b;

  static engine::NodeConfig config(engine::NodeMode mode, net::Ipv4Addr node) {
    engine::NodeConfig c;
    c.mode = mode;
    c.vip = kVip;
    c.node = node;
    c.node_addrs = {kA, kB};
    c.seed = 7;
    return c;
  }
  explicit Nodes(engine::NodeMode mode)
      : a(config(mode, kA), dispatcher("/docs/a a\n/docs/b b\n"), a_v, a_raw, a_msg, [this] { return now; }),
        b(config(mode, kB), dispatcher("/docs/a a\n/docs/b b\n"), b_v, b_raw, b_msg, [this] { return now; }) {}
};

PacketBuilder from_b() { return std::move(PacketBuilder().ipv4(kB, kClient).tcp(80, 40000)); }

// The serving part on b, shared by always and rare: the HandoffRequest in `a_msg`
// arrives, SYN injected, kernel's SYN/ACK dropped, request injected, ack to a; then
// the kernel's 1000-byte response with FIN.
struct Serving {
  Template k_synack{from_b().seq(kKernelIsn).ack(kClientIsn + 1).flags(SYN | ACK).mss(1460).sack_permitted()
                        .timestamps(kKernelTs, kClientTs).wscale(7).build(), false};
  Template k_data{from_b().seq(kKernelIsn + 1).ack(kReqEnd).flags(ACK | PSH | FIN).window(1000)
                      .timestamps(kKernelTs + 5, kClientTs + 2).payload(body())
                      .checksum_state(net::ChecksumState::Partial).build(), false, true};

  bool run(Nodes& n, std::vector<uint8_t>& buf, uint32_t& id, uint32_t port) const {
    n.b_raw.n = 0;
    n.b.on_message(kA, n.a_msg.last);
    if (n.b_raw.n != 1) return false;  // the injected SYN
    n.b_msg.n = 0;
    n.b.on_packet(k_synack.stamp(buf, id++, port, {}, {}, {}, io::Hook::kLocalOut));
    if (n.b_msg.n != 1) return false;  // the HandoffAck
    n.a.on_message(kB, n.b_msg.last);
    n.b.on_packet(k_data.stamp(buf, id++, port, {}, {}, {}, io::Hook::kLocalOut));
    return n.b_v.last == Kind::Modified;
  }

  // The client's FIN (stamped by the caller) goes through a to b; b's Termination
  // frees a's state; both lingers expire. Returns what failed, or nullptr.
  static const char* close(Nodes& n, const io::QueuedPacket& client_fin, uint32_t& id) {
    n.a.on_packet(client_fin);
    if (n.a_v.last != Kind::Modified) return "FIN not forwarded";
    n.b_msg.n = 0;
    n.b.on_packet(as_queued(n.a_v.bytes, id++));
    if (n.b_msg.n != 1) return "no termination";
    n.a.on_message(kB, n.b_msg.last);
    n.now += engine::NodeConfig::kDefaultLingerMs;
    n.a.on_timer();
    n.b.on_timer();
    return nullptr;
  }
};

void finish(benchmark::State& state, Nodes& n) {
  if (n.a.counters().active != 0 || n.b.counters().active != 0) fail(state, "states not freed");
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  const auto per = [&](size_t v) {
    return benchmark::Counter(static_cast<double>(v) / static_cast<double>(state.iterations()));
  };
  state.counters["a_pkts"] = per(n.a_v.count);
  state.counters["b_pkts"] = per(n.b_v.count);
}

// always: a emulates the handshake, hands off to b over the control channel (the
// messages passed as objects; their encoding is BM_ControlEncode/Decode), forwards
// the client's FIN; b translates both ways and sends the Termination.
void BM_AlwaysConnection(benchmark::State& state) {
  Nodes n(engine::NodeMode::kAlways);
  const Serving serving;
  const Template syn(client_syn(), true);
  const Template ack(from_client().seq(kClientIsn + 1).ack(0).flags(ACK).window(502)
                         .timestamps(kClientTs + 1, 0).build(), true);
  const Template req(from_client().seq(kClientIsn + 1).ack(0).flags(ACK | PSH).window(502)
                         .timestamps(kClientTs + 2, 0).payload(kRequestB).build(), true);
  const Template c_fin(from_client().seq(kReqEnd).ack(0).flags(FIN | ACK).window(502)
                           .timestamps(kClientTs + 3, 0).build(), true);
  std::vector<uint8_t> buf;
  buf.reserve(2048);
  uint32_t id = 1;
  uint32_t conn = 0;
  for (auto _ : state) {
    const uint32_t port = conn++ % 6000000;
    n.a_raw.n = 0;
    n.a.on_packet(syn.stamp(buf, id++, port));
    if (n.a_raw.n != 1) return fail(state, "no SYN/ACK");
    auto synack = *net::parse_tcp_packet(n.a_raw.sent[0]);
    const uint32_t f = synack.seq();
    const uint32_t fe_ts = synack.options.timestamps->tsval;
    n.a.on_packet(ack.stamp(buf, id++, port, f + 1, fe_ts));
    n.a_msg.n = 0;
    n.a.on_packet(req.stamp(buf, id++, port, f + 1, fe_ts));
    if (n.a_msg.n != 1) return fail(state, "no handoff request");
    if (!serving.run(n, buf, id, port)) return fail(state, "serving part failed");
    if (const char* what = Serving::close(n, c_fin.stamp(buf, id++, port, f + 2 + kBody, fe_ts + 5), id)) {
      return fail(state, what);
    }
  }
  finish(state, n);
}
BENCHMARK(BM_AlwaysConnection)->Apply(hl::bench::fixed_iterations);

// rare, remote content: a's kernel does the handshake (SYN, SYN/ACK, ACK accepted),
// the request is held, a RST frees a's socket, the handoff goes to b.
void BM_RareConnection(benchmark::State& state) {
  Nodes n(engine::NodeMode::kRare);
  const Serving serving;
  const Template syn(client_syn(), true);
  const Template v_synack(PacketBuilder().ipv4(kVip.addr, kClient).tcp(80, 40000).seq(kVipKernelIsn)
                              .ack(kClientIsn + 1).flags(SYN | ACK).mss(1460).sack_permitted()
                              .timestamps(kVipKernelTs, kClientTs).wscale(7).build(), false);
  const Template ack(from_client().seq(kClientIsn + 1).ack(kVipKernelIsn + 1).flags(ACK).window(502)
                         .timestamps(kClientTs + 1, kVipKernelTs).build(), true);
  const Template req(from_client().seq(kClientIsn + 1).ack(kVipKernelIsn + 1).flags(ACK | PSH).window(502)
                         .timestamps(kClientTs + 2, kVipKernelTs).payload(kRequestB).build(), true);
  const Template c_fin(from_client().seq(kReqEnd).ack(kVipKernelIsn + 2 + kBody).flags(FIN | ACK).window(502)
                           .timestamps(kClientTs + 3, kVipKernelTs + 5).build(), true);
  std::vector<uint8_t> buf;
  buf.reserve(2048);
  uint32_t id = 1;
  uint32_t conn = 0;
  for (auto _ : state) {
    const uint32_t port = conn++ % 6000000;
    n.a.on_packet(syn.stamp(buf, id++, port));
    n.a.on_packet(v_synack.stamp(buf, id++, port, {}, {}, {}, io::Hook::kLocalOut));
    n.a.on_packet(ack.stamp(buf, id++, port));
    n.a_msg.n = 0;
    n.a.on_packet(req.stamp(buf, id++, port));
    if (n.a_msg.n != 1) return fail(state, "no handoff request");
    if (!serving.run(n, buf, id, port)) return fail(state, "serving part failed");
    if (const char* what = Serving::close(n, c_fin.stamp(buf, id++, port), id)) return fail(state, what);
  }
  finish(state, n);
}
BENCHMARK(BM_RareConnection)->Apply(hl::bench::fixed_iterations);

// rare, local content: the kernel's handshake watched, the request released marked;
// later packets skip the queue (connmark), so this is all the engine does.
void BM_RareLocalConnection(benchmark::State& state) {
  Nodes n(engine::NodeMode::kRare);
  const Template syn(client_syn(), true);
  const Template v_synack(PacketBuilder().ipv4(kVip.addr, kClient).tcp(80, 40000).seq(kVipKernelIsn)
                              .ack(kClientIsn + 1).flags(SYN | ACK).mss(1460).sack_permitted()
                              .timestamps(kVipKernelTs, kClientTs).wscale(7).build(), false);
  const Template ack(from_client().seq(kClientIsn + 1).ack(kVipKernelIsn + 1).flags(ACK).window(502)
                         .timestamps(kClientTs + 1, kVipKernelTs).build(), true);
  const Template req(from_client().seq(kClientIsn + 1).ack(kVipKernelIsn + 1).flags(ACK | PSH).window(502)
                         .timestamps(kClientTs + 2, kVipKernelTs).payload(kRequestA).build(), true);
  std::vector<uint8_t> buf;
  buf.reserve(2048);
  uint32_t id = 1;
  uint32_t conn = 0;
  for (auto _ : state) {
    const uint32_t port = conn++ % 6000000;
    n.a.on_packet(syn.stamp(buf, id++, port));
    n.a.on_packet(v_synack.stamp(buf, id++, port, {}, {}, {}, io::Hook::kLocalOut));
    n.a.on_packet(ack.stamp(buf, id++, port));
    n.a.on_packet(req.stamp(buf, id++, port));
    if (n.a_v.last != Kind::Marked) return fail(state, "request not released");
  }
  if (n.a.counters().local != static_cast<uint64_t>(state.iterations())) fail(state, "not served locally");
  finish(state, n);
}
BENCHMARK(BM_RareLocalConnection)->Apply(hl::bench::fixed_iterations);

}  // namespace
