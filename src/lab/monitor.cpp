#include "lab/monitor.h"

namespace hl::lab {
namespace {

constexpr std::size_t kIpv4MinHeader = 20;
constexpr std::uint8_t kProtoTcp = 6;

bool is_inbound(io::Hook hook) {
  switch (hook) {
    case io::Hook::kPreRouting:
    case io::Hook::kLocalIn:
    case io::Hook::kForward:
      return true;
    case io::Hook::kLocalOut:
    case io::Hook::kPostRouting:
      return false;
  }
  return true;
}

}  // namespace

void Monitor::on_packet(const io::QueuedPacket& packet) {
  const auto data = packet.data;
  std::uint64_t bytes = data.size();
  bool inbound = is_inbound(packet.hook);
  if (data.size() < kIpv4MinHeader || (data[0] >> 4) != 4) {
    ++counters_.parse_failures;
  } else {
    std::size_t header_len = std::size_t{data[0] & 0x0fu} * 4u;
    std::size_t total_len = (std::size_t{data[2]} << 8) | data[3];
    if (header_len < kIpv4MinHeader || header_len > data.size() || total_len < header_len) {
      ++counters_.parse_failures;
    } else {
      bytes = total_len;
      if (data[9] == kProtoTcp) {
        ++counters_.tcp_packets;
      } else {
        ++counters_.non_tcp_packets;
      }
    }
  }
  if (inbound) {
    ++counters_.packets_in;
    counters_.bytes_in += bytes;
  } else {
    ++counters_.packets_out;
    counters_.bytes_out += bytes;
  }
  if (packet.checksum_partial) ++counters_.checksum_partial;
  if (packet.is_gso) ++counters_.gso_packets;
  verdicts_.accept_deferred(packet.id);
}

}  // namespace hl::lab
