// ClientReset: resetting the clients of a node that died, as their TCP accepts
// it. RFC 5961 §3.2: a RST ends a connection only at exactly the receiver's
// rcv_nxt. The client's latest ack number seen is the best guess; if data was in
// flight, the client answers with a challenge ACK carrying its rcv_nxt, which
// gets a RST at exactly that number. If the client's ACKs went by the fast path
// the guess may be below its window, where a RST is dropped unanswered: a probe
// (HandshakeSender::probe) makes it answer first. Shared by the front-end
// (FrontendEngine) and the always/rare origin (NodeEngine).
#pragma once

#include <cstdint>
#include <vector>

#include "engine/fast_mapper.h"
#include "tcp/handshake.h"
#include "tcp/rfc5961.h"
#include "net/tcp_packet.h"
#include "tcp/seq.h"

namespace hl::engine {

struct ClientReset {
  // RSTs a reset connection answers at most (a client that got one goes quiet).
  static constexpr uint32_t kMaxAnswers = 8;

  tcp::SeqNum seq;       // of the last RST sent
  uint32_t answers = 0;  // RSTs sent again at a new ack number

  // Sends a RST at `at` (acking the client's bytes up to rcv_nxt).
  void send(tcp::HandshakeSender& answer, const tcp::ClientHandshake& hs, tcp::SeqNum at) {
    answer.rst_at(hs, at);
    seq = at;
  }

  // A segment from the reset client (not a RST: that frees the state). Answers an
  // ACK at a new number with a RST there; true if it did. The segment is never
  // forwarded (the node is gone).
  bool on_client(tcp::HandshakeSender& answer, tcp::ClientHandshake& hs, const net::TcpPacket& pkt) {
    if (!pkt.has_flags(net::tcp_flag::ACK) || answers >= kMaxAnswers) return false;
    tcp::advance_contiguous(hs.rcv_nxt, pkt);
    const tcp::SeqNum ack(pkt.ack());
    if (ack == seq && pkt.payload_len == 0 && !pkt.has_flags(net::tcp_flag::FIN)) return false;  // answered there
    ++answers;
    send(answer, hs, ack);
    return true;
  }
};

// Resets the clients of `hit`, the states of connections whose node died (each
// with .hs, .fast, .reset, .client_ack, .created_ms; already in their Reset
// state). Mapped ones are unmapped, and the change sent, before anything goes
// to a client: its answer must reach the engine, not the dead node.
template <class State>
void reset_clients(const std::vector<State*>& hit, FastMapper& fast, tcp::HandshakeSender& answer, uint64_t now) {
  std::vector<bool> probe(hit.size());
  bool unmapped = false;
  for (size_t i = 0; i < hit.size(); ++i) {
    probe[i] = hit[i]->fast.mapped;
    unmapped = unmapped || probe[i];
    fast.unmap(hit[i]->fast, hit[i]->hs.client);
  }
  if (unmapped) fast.flush();
  for (size_t i = 0; i < hit.size(); ++i) {
    State& s = *hit[i];
    if (probe[i]) answer.probe(s.hs, s.client_ack, now - s.created_ms);
    s.reset.send(answer, s.hs, s.client_ack);
  }
}

}  // namespace hl::engine
