// The server side of a client's handshake, as the engine that takes the client's
// connection sees it (the dedicated front-end, the origin of always and rare): what
// both SYNs announced, the request bytes read in order, and the segments the engine
// sends as that server from the VIP (SYN/ACK, ACK, RST, HTTP error response).
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <vector>

#include "io/checked_io.h"
#include "http/http_error.h"
#include "http/request_parser.h"
#include "net/ipv4_addr.h"
#include "net/packet_builder.h"
#include "net/tcp_packet.h"
#include "tcp/seq.h"

namespace hl::tcp {

// The MSS assumed when a SYN carries no MSS option (RFC 9293: 536, Linux's default too).
inline constexpr uint16_t kDefaultPeerMss = 536;

// One client connection's handshake, in the client's sequence spaces.
struct ClientHandshake {
  net::Endpoint client;
  tcp::SeqNum client_isn;      // c
  tcp::SeqNum server_isn;      // f: the ISN of the SYN/ACK the client got
  net::SynOptions client_syn;  // the options of the client's SYN, as it sent them
  uint16_t syn_window = 0;     // the window field of the client's SYN
  uint16_t client_window = 0;  // the latest window field from the client
  uint32_t client_tsval = 0;   // the latest TSval from the client
  uint32_t ts_base = 0;        // TSval of the SYN/ACK the client got
  bool ts_ok = false;          // timestamps negotiated
  bool wscale_ok = false;      // window scaling negotiated
  uint8_t server_wscale = 0;   // shift the SYN/ACK announced (0 without scaling)
  uint16_t mss = 0;            // most payload per segment both sides accept
  tcp::SeqNum rcv_nxt;         // the client's next sequence number expected

  // Records the client's SYN; `max_mss` caps the MSS (what the servers accept).
  void note_syn(const net::TcpPacket& syn, uint16_t max_mss);
  // Answers as an emulated server: a random ISN (then TS base) from `rng`, and
  // shift `wscale` if the client scales.
  void answer(std::mt19937_64& rng, uint8_t wscale);
  // Learns the answer of a real server (the kernel's SYN/ACK to the client).
  void learn_synack(const net::TcpPacket& synack);
  // The timestamps option of our segments to the client, if negotiated.
  std::optional<net::Timestamps> our_timestamps() const;
};

// The client's request bytes in order, and the head parser they feed.
struct RequestBuffer {
  std::vector<uint8_t> bytes;  // in-order client bytes after the SYN
  http::RequestHeadParser parser;

  explicit RequestBuffer(const http::Limits& limits) : parser(limits) {}
  // Appends the bytes of `segment` from `rcv_nxt` on (retransmitted bytes are
  // skipped, a segment after a gap is ignored), advances `rcv_nxt` over them and
  // feeds them to the parser. nullopt when the segment brought nothing new.
  std::optional<http::ParseStatus> take(tcp::SeqNum& rcv_nxt, const net::TcpPacket& segment);
  // Frees the bytes (the request has been handed over).
  void release();
};

// Sends the segments of an emulated server at `vip` to clients, through `raw`.
class HandshakeSender {
 public:
  // `syn_window`: the window of our SYN/ACK (our ACKs announce it, scaled).
  // `resets` counts the RSTs sent. The references must outlive this.
  HandshakeSender(net::Endpoint vip, uint16_t syn_window, io::CheckedSender& raw, uint64_t& resets)
      : vip_(vip), syn_window_(syn_window), raw_(raw), resets_(resets) {}

  // Our SYN/ACK: ISN f, MSS, SACK-permitted as the client offered, our shift, timestamps.
  void synack(const ClientHandshake& hs);
  // Acknowledges the client's bytes up to rcv_nxt. The TSval stays at the
  // SYN/ACK's: the back-end's translated TSvals start there, so the client
  // never sees time run backwards (PAWS).
  void ack(const ClientHandshake& hs);
  // The same at sequence number `seq` (after what error_response sent).
  void ack_at(const ClientHandshake& hs, tcp::SeqNum seq);
  // Resets the connection (seq f + 1, acking rcv_nxt).
  void rst(const ClientHandshake& hs);
  // A RST at sequence number `seq` (acking rcv_nxt): see client_reset.h.
  void rst_at(const ClientHandshake& hs, tcp::SeqNum seq);
  // A RST answering a segment of no connection (RFC 9293 §3.10.7.1).
  void rst_for(const net::TcpPacket& pkt);
  // An ACK below the client's window, which it answers with an ACK carrying its
  // rcv_nxt (RFC 9293 §3.10.7.4): for when the engine's idea of the client's ack
  // number may be old (the fast path carried its ACKs). `acked` is the highest
  // ack number seen; `ms_since_handshake` dates the TSval (see the .cpp).
  void probe(const ClientHandshake& hs, tcp::SeqNum acked, uint64_t ms_since_handshake);
  // A whole HTTP error response for a failed head, with our FIN (RFC 9112 §9.6
  // allows closing after a 4xx/5xx answer), at seq f + 1. Returns the sequence
  // number after it (its bytes and the FIN).
  tcp::SeqNum error_response(const ClientHandshake& hs, http::HttpError error);

 private:
  uint16_t window(const ClientHandshake& hs) const {
    return static_cast<uint16_t>(syn_window_ >> hs.server_wscale);
  }

  net::Endpoint vip_;
  uint16_t syn_window_;
  io::CheckedSender& raw_;
  uint64_t& resets_;
};

}  // namespace hl::tcp
