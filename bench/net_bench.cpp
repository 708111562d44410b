// Micro-benchmarks of hl_net: checksums (full vs incremental) and IPv4/TCP parsing.
#include <benchmark/benchmark.h>

#include "bench_iterations.h"

#include <vector>

#include "net/checksum.h"
#include "net/packet_builder.h"
#include "net/tcp_packet.h"

namespace {

using namespace hl::net;

std::vector<uint8_t> data_segment(size_t payload_len) {
  std::vector<uint8_t> payload(payload_len);
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<uint8_t>(i * 7);
  return PacketBuilder()
      .ipv4(ipv4(10, 0, 0, 2), ipv4(10, 0, 1, 1))
      .tcp(80, 40000)
      .seq(1)
      .ack(2)
      .flags(tcp_flag::ACK)
      .timestamps(3, 4)
      .payload(payload)
      .build();
}

// Full TCP checksum over a segment of the given payload size (bytes/s reported).
void BM_TcpChecksumFull(benchmark::State& state) {
  auto buf = data_segment(static_cast<size_t>(state.range(0)));
  auto pkt = *parse_tcp_packet(buf);
  for (auto _ : state) {
    pkt.tcp_checksum_full();
    benchmark::DoNotOptimize(buf.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(buf.size()));
}
BENCHMARK(BM_TcpChecksumFull)->Arg(0)->Arg(1448)->Arg(64000)->Apply(hl::bench::fixed_iterations);

// One 32-bit field edit with an RFC 1624 update (independent of payload size).
void BM_SetSeqIncremental(benchmark::State& state) {
  auto buf = data_segment(static_cast<size_t>(state.range(0)));
  auto pkt = *parse_tcp_packet(buf);
  uint32_t seq = 0;
  for (auto _ : state) {
    pkt.set_seq(++seq);
    benchmark::DoNotOptimize(buf.data());
  }
}
BENCHMARK(BM_SetSeqIncremental)->Arg(0)->Arg(1448)->Arg(64000)->Apply(hl::bench::fixed_iterations);

// Parsing one packet (IPv4 + TCP + options).
void BM_ParseTcpPacket(benchmark::State& state) {
  auto buf = data_segment(1448);
  for (auto _ : state) {
    auto r = parse_tcp_packet(buf);
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_ParseTcpPacket)->Apply(hl::bench::fixed_iterations);

void BM_ParseSynWithAllOptions(benchmark::State& state) {
  auto buf = PacketBuilder()
                 .ipv4(ipv4(10, 0, 1, 1), ipv4(10, 0, 0, 100))
                 .tcp(40000, 80)
                 .flags(tcp_flag::SYN)
                 .mss(1460)
                 .sack_permitted()
                 .timestamps(1, 0)
                 .wscale(7)
                 .build();
  for (auto _ : state) {
    auto r = parse_tcp_packet(buf);
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_ParseSynWithAllOptions)->Apply(hl::bench::fixed_iterations);

}  // namespace
