// Micro-benchmarks of hl_tcp's translator: ns per packet, with and without options.
#include <benchmark/benchmark.h>

#include "bench_iterations.h"

#include <vector>

#include "net/packet_builder.h"
#include "tcp/translator.h"

namespace {

using namespace hl;

tcp::Translator make_translator() {
  tcp::ConnectionParams p;
  p.client_isn = tcp::SeqNum(1000);
  p.frontend_isn = tcp::SeqNum(0x12345678);
  p.backend_isn = tcp::SeqNum(0x9abcdef0);
  p.timestamps = true;
  p.frontend_ts_base = 100;
  p.backend_ts_base = 0x7777;
  p.client_wscale = p.client_wscale_at_backend = 7;
  p.frontend_wscale = p.backend_wscale = 7;
  p.vip = {net::ipv4(10, 0, 0, 100), 80};
  p.backend = {net::ipv4(10, 0, 0, 2), 80};
  return tcp::Translator(p);
}

std::vector<uint8_t> client_ack(bool with_options) {
  net::PacketBuilder b;
  b.ipv4(net::ipv4(10, 0, 1, 1), net::ipv4(10, 0, 0, 100)).tcp(40000, 80).seq(1001)
      .ack(0x12345679).flags(net::tcp_flag::ACK).window(1000);
  if (with_options) b.timestamps(5, 200).sack({{0x12350000, 0x12351000}, {0x12360000, 0x12361000}});
  return b.build();
}

// Parse + to_backend on a client ACK; arg 0: no options, 1: TS + 2 SACK blocks.
// Every iteration translates a fresh copy so values do not drift.
void BM_ToBackend(benchmark::State& state) {
  const auto t = make_translator();
  const auto original = client_ack(state.range(0) != 0);
  auto buf = original;
  for (auto _ : state) {
    buf = original;
    auto pkt = net::parse_tcp_packet(buf);
    t.to_backend(*pkt, net::ChecksumState::Full);
    benchmark::DoNotOptimize(buf.data());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_ToBackend)->Arg(0)->Arg(1)->Apply(hl::bench::fixed_iterations);

// Parse + to_client on a 1448-byte back-end data segment, Full (incremental)
// vs Partial (complete recomputation over the payload).
void BM_ToClient(benchmark::State& state) {
  const auto t = make_translator();
  const auto state_kind = state.range(0) != 0 ? net::ChecksumState::Partial : net::ChecksumState::Full;
  const auto original = net::PacketBuilder()
                            .ipv4(net::ipv4(10, 0, 0, 2), net::ipv4(10, 0, 1, 1))
                            .tcp(80, 40000)
                            .seq(0x9abcdef1)
                            .ack(1001)
                            .flags(net::tcp_flag::ACK)
                            .timestamps(0x7778, 5)
                            .payload(std::vector<uint8_t>(1448, 0x61))
                            .checksum_state(state_kind)
                            .build();
  auto buf = original;
  for (auto _ : state) {
    buf = original;
    auto pkt = net::parse_tcp_packet(buf);
    t.to_client(*pkt, state_kind);
    benchmark::DoNotOptimize(buf.data());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_ToClient)->Arg(0)->Arg(1)->Apply(hl::bench::fixed_iterations);

}  // namespace
