// Micro-benchmarks of hl_control's codec: encode and decode of the messages sent
// per handed-off connection (HandoffRequest with a 55-byte request, HandoffAck,
// Termination), and their authenticated envelope (seal at the sender, open at
// the receiver: the cluster key's HMAC-SHA256 twice per message).
#include <benchmark/benchmark.h>

#include <string>

#include "bench_iterations.h"
#include "control/auth.h"
#include "control/message.h"

namespace {

using namespace hl;

control::Message message(int kind) {
  const net::Endpoint client{net::ipv4(10, 0, 1, 11), 40000};
  switch (kind) {
    case 0: {
      control::HandoffRequest r;
      r.client = client;
      r.vip_port = 80;
      r.client_isn = 1;
      r.frontend_isn = 2;
      r.mss = 1460;
      r.wscale = 7;
      r.sack_permitted = true;
      r.syn_tsval = 1000;
      r.syn_window = 64240;
      r.client_window = 502;
      r.client_tsval = 1002;
      r.frontend_ts_base = 4242;
      r.frontend_wscale = 7;
      r.origin = net::ipv4(10, 0, 2, 11);
      const std::string req = "GET /docs/b HTTP/1.1\r\nHost: cluster\r\nUser-Agent: wrk\r\n\r\n";
      r.request.assign(req.begin(), req.end());
      return r;
    }
    case 1:
      return control::HandoffAck{client, 0x12345678};
    default:
      return control::Termination{client, control::TerminationReason::kFin};
  }
}

// Arg: 0 HandoffRequest, 1 HandoffAck, 2 Termination.
void BM_ControlEncode(benchmark::State& state) {
  const auto m = message(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    auto frame = control::encode(m);
    benchmark::DoNotOptimize(frame.data());
  }
}
BENCHMARK(BM_ControlEncode)->Arg(0)->Arg(1)->Arg(2)->Apply(hl::bench::fixed_iterations);

void BM_ControlDecode(benchmark::State& state) {
  const auto frame = control::encode(message(static_cast<int>(state.range(0))));
  for (auto _ : state) {
    auto m = control::decode(frame);
    if (!m) {
      state.SkipWithError("decode failed");
      return;
    }
    benchmark::DoNotOptimize(m);
  }
}
BENCHMARK(BM_ControlDecode)->Arg(0)->Arg(1)->Arg(2)->Apply(hl::bench::fixed_iterations);

void BM_ControlSealOpen(benchmark::State& state) {
  const auto frame = control::encode(message(static_cast<int>(state.range(0))));
  uint64_t now_us = 1'700'000'000'000'000;
  const auto clock = [&now_us] { return now_us; };
  control::Authenticator sender(std::vector<uint8_t>(32, 7), net::ipv4(10, 0, 2, 11).value, clock);
  control::Authenticator receiver(std::vector<uint8_t>(32, 7), net::ipv4(10, 0, 2, 12).value, clock);
  for (auto _ : state) {
    auto sealed = sender.seal(frame);
    auto inner = receiver.open(*sealed);
    if (!inner) {
      state.SkipWithError("open failed");
      return;
    }
    benchmark::DoNotOptimize(inner->data());
  }
}
BENCHMARK(BM_ControlSealOpen)->Arg(0)->Arg(1)->Arg(2)->Apply(hl::bench::fixed_iterations);

}  // namespace
