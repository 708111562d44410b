#include "tcp/http_reply.h"

#include <string>

#include "net/packet_builder.h"
#include "net/tcp_packet.h"

namespace hl::tcp {

std::vector<uint8_t> make_http_error_segment(net::Endpoint vip, net::Endpoint client, uint32_t seq, uint32_t ack,
                                             uint16_t window, std::optional<net::Timestamps> ts,
                                             http::HttpError error) {
  const std::string response = http::error_response(error);
  net::PacketBuilder b;
  b.ipv4(vip.addr, client.addr)
      .tcp(vip.port, client.port)
      .seq(seq)
      .ack(ack)
      .flags(net::tcp_flag::ACK | net::tcp_flag::PSH | net::tcp_flag::FIN)
      .window(window)
      .payload(response);
  if (ts) b.timestamps(ts->tsval, ts->tsecr);
  return b.build();
}

}  // namespace hl::tcp
