#include "lab/monitor.h"

#include "net/ipv4_packet.h"

namespace hl::lab {
namespace {

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
  std::uint64_t bytes = packet.data.size();
  bool inbound = is_inbound(packet.hook);
  if (const auto header = net::parse_ipv4_header(packet.data)) {
    bytes = header->total_len;  // the packet's, also when the copy is truncated
    if (header->protocol == net::kIpProtoTcp) {
      ++counters_.tcp_packets;
    } else {
      ++counters_.non_tcp_packets;
    }
  } else {
    ++counters_.parse_failures;
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
