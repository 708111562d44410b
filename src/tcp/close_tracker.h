// CloseTracker: the end of a connection seen from the middle, as both FINs sent
// and the server's acknowledged by the client.
#pragma once

#include "net/tcp_packet.h"
#include "tcp/seq.h"

namespace hl::tcp {

struct CloseTracker {
  bool client_fin = false;
  bool server_fin = false;
  bool client_acked = false;   // some client segment carried an ACK (highest_ack is valid)
  tcp::SeqNum server_fin_end;  // sequence number after the server's FIN, in the space of
                               //   the client segments' ack numbers given to on_client
  tcp::SeqNum highest_ack;     // the highest ack number of the client's segments

  // The server sent its FIN; `end` is the sequence number after it.
  void on_server_fin(tcp::SeqNum end) {
    server_fin = true;
    server_fin_end = end;
  }

  // A client segment; true when both FINs are sent and the server's is acknowledged.
  // Judged on everything seen, not on this segment alone: a reordered client FIN
  // may arrive after the ACK of the server's FIN (a client that closed first).
  bool on_client(const net::TcpPacket& pkt) {
    if (pkt.has_flags(net::tcp_flag::FIN)) client_fin = true;
    if (pkt.has_flags(net::tcp_flag::ACK)) {
      const tcp::SeqNum ack(pkt.ack());
      if (!client_acked || tcp::seq_gt(ack, highest_ack)) highest_ack = ack;
      client_acked = true;
    }
    return done();
  }

  bool done() const {
    return server_fin && client_fin && client_acked && tcp::seq_ge(highest_ack, server_fin_end);
  }
};

}  // namespace hl::tcp
