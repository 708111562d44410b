// ServingConn: a handed-off connection on the node whose kernel serves it (the
// back-end of the frontend design, the serving part of always and rare). The
// kernel gets the client's SYN replayed; its SYN/ACK teaches b; client packets are
// held until then; afterwards every segment is translated both ways, and the
// connection's end is seen (an exact RST, RFC 5961, or both FINs acknowledged).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "io/checked_io.h"
#include "tcp/close_tracker.h"
#include "io/packet_hold.h"
#include "net/ipv4_addr.h"
#include "net/tcp_packet.h"
#include "tcp/seq.h"
#include "tcp/translator.h"

namespace hl::tcp {

// The client's half of a handed-off connection, as its replayed SYN carries it.
struct SynReplay {
  tcp::SeqNum client_isn;                // c
  tcp::SeqNum frontend_isn;              // f
  std::optional<uint8_t> client_wscale;  // the shift of the client's SYN, if it offered scaling
  bool timestamps = false;               // the client's SYN offered timestamps
  uint32_t frontend_ts_base = 0;         // TSval the client got in the SYN/ACK
  uint8_t frontend_wscale = 0;           // shift the client got in the SYN/ACK
};

struct ServingConn {
  enum class State {
    AwaitSynAck,  // the kernel has the client's SYN; its SYN/ACK (b) not seen yet
    Established,  // translating both ways
    Closed,       // ended (both FINs acknowledged, or reset): lingering for retransmissions
  };
  // What a client segment meant for the connection.
  enum class ClientEvent {
    kNone,
    kRst,        // a RST at exactly the next sequence number: the connection is over
    kBlindRst,   // a RST elsewhere (RFC 5961): the kernel judges it, the state stays
    kFinsAcked,  // both FINs sent, and the server's acknowledged
  };
  // What a server segment was.
  enum class ServerEvent { kData, kFin, kRst };

  State state = State::AwaitSynAck;
  net::Endpoint client;
  tcp::ConnectionParams params;
  std::optional<tcp::Translator> translator;  // once b is known
  std::vector<io::HeldPacket> held;               // client packets that came before b
  uint64_t created_ms = 0;
  uint64_t last_seen_ms = 0;
  uint64_t closed_ms = 0;
  CloseTracker close_tracker;  // server_fin_end in the back-end's own sequence space
  tcp::SeqNum client_next;     // the client's next contiguous sequence number (RST check)

  // The kernel at `backend` gets the client's SYN (`syn`) for `vip`, at `now` (ms).
  ServingConn(net::Endpoint client, const SynReplay& syn, net::Endpoint vip, net::Endpoint backend,
              uint64_t now);

  // The kernel's SYN/ACK: learns b, its TS base and shift, and starts translating.
  // False for a retransmission (b known already).
  bool learn_synack(const net::TcpPacket& synack);
  // Translates a client segment for the kernel (translator required; the verdict is the caller's).
  ClientEvent from_client(net::TcpPacket& pkt, net::ChecksumState state);
  // Translates a kernel segment for the client (translator required; the verdict is the caller's).
  ServerEvent from_server(net::TcpPacket& pkt, net::ChecksumState state);
  // Ends the connection at `now` (ms); false if it had ended already.
  bool close(uint64_t now);
  // Whether the state has run its time at `now` (ms): no SYN/ACK `handshake_ms`
  // after it was created, idle for `idle_ms`, or closed for `linger_ms`.
  bool expired(uint64_t now, uint32_t handshake_ms, uint32_t idle_ms, uint32_t linger_ms) const;
};

// Takes the held packets of `conn` and gives each to `translate(id, pkt, state)`,
// dropping any that no longer parses (cannot happen: each parsed when it arrived).
template <class Translate>
void replay_held(ServingConn& conn, io::CheckedVerdicts& verdicts, Translate&& translate) {
  std::vector<io::HeldPacket> held;
  held.swap(conn.held);
  for (auto& h : held) {
    auto parsed = net::parse_tcp_packet(h.bytes);
    if (!parsed) {
      verdicts.drop(h.id);
      continue;
    }
    translate(h.id, *parsed, io::checksum_state(h.partial));
  }
}

}  // namespace hl::tcp
