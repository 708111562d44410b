// CloseTracker: the end of a connection seen from the middle, as both FINs sent
// and the server's acknowledged by the client.
#pragma once

#include "net/tcp_packet.h"
#include "tcp/seq.h"

namespace hl::engine {

struct CloseTracker {
  bool client_fin = false;
  bool server_fin = false;
  tcp::SeqNum server_fin_end;  // sequence number after the server's FIN, in the space of
                               //   the client segments' ack numbers given to on_client

  // The server sent its FIN; `end` is the sequence number after it.
  void on_server_fin(tcp::SeqNum end) {
    server_fin = true;
    server_fin_end = end;
  }

  // A client segment; true when both FINs are sent and this segment acknowledges the server's.
  bool on_client(const net::TcpPacket& pkt) {
    if (pkt.has_flags(net::tcp_flag::FIN)) client_fin = true;
    return server_fin && client_fin && pkt.has_flags(net::tcp_flag::ACK) &&
           tcp::seq_ge(tcp::SeqNum(pkt.ack()), server_fin_end);
  }
};

}  // namespace hl::engine
