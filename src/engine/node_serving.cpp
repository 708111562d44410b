// NodeEngine's serving part: handed-off connections this node's kernel serves. The
// client's SYN is injected into the local TCP; its SYN/ACK teaches b, then the
// buffered request is injected; every segment is translated both ways, responses
// (FIN and RST included) go straight to the client, and a Termination to the
// origin when the connection ends.
#include <algorithm>
#include <optional>
#include <span>

#include "engine/conn_key.h"
#include "engine/node_engine_impl.h"
#include "net/packet_builder.h"
#include "tcp/seq.h"

namespace hl::engine {

using net::tcp_flag::ACK;
using net::tcp_flag::SYN;
using tcp::SeqNum;

void NodeEngine::Impl::terminate(Serving& s, control::TerminationReason reason) {
  if (!s.close(clock())) return;
  if (s.origin == cfg.node) {
    on_termination(cfg.node, control::Termination{s.client, reason});
  } else {
    send_message(s.origin, control::Termination{s.client, reason});
  }
  ++counters.terminations_sent;
}

void NodeEngine::Impl::refuse(net::Ipv4Addr to, net::Endpoint client, control::RefuseReason reason) {
  ++counters.refused;
  if (to == cfg.node) {
    on_refuse(cfg.node, control::HandoffRefuse{client, reason});
  } else {
    send_message(to, control::HandoffRefuse{client, reason});
  }
}

void NodeEngine::Impl::ack_origin(const Serving& s) {
  const control::HandoffAck ack{s.client, s.params.backend_isn.value()};
  if (s.origin == cfg.node) {
    on_ack(cfg.node, ack);
  } else {
    send_message(s.origin, ack);
  }
}

void NodeEngine::Impl::take_handoff(net::Ipv4Addr from, control::HandoffRequest req) {
  const uint64_t key = conn_key(req.client);
  if (req.vip_port != cfg.vip.port || req.origin != from) {
    ++counters.control_errors;
    refuse(from, req.client, control::RefuseReason::kBadRequest);
    return;
  }
  auto it = servings.find(key);
  if (it != servings.end()) {
    if (it->second.params.client_isn == SeqNum(req.client_isn)) {  // sent again
      if (it->second.state == Serving::State::Established) ack_origin(it->second);
      return;
    }
    free_serving(it);  // a new connection on a reused port
  }
  if (servings.size() >= cfg.max_connections) {
    refuse(from, req.client, control::RefuseReason::kBusy);
    return;
  }
  tcp::SynReplay syn;
  syn.client_isn = SeqNum(req.client_isn);
  syn.frontend_isn = SeqNum(req.frontend_isn);
  syn.client_wscale = req.wscale;
  syn.timestamps = req.syn_tsval.has_value();  // the origin echoes timestamps when offered
  syn.frontend_ts_base = req.frontend_ts_base;
  syn.frontend_wscale = req.frontend_wscale;
  Serving s(req.client, syn, cfg.vip, net::Endpoint{cfg.node, cfg.vip.port}, clock());
  s.origin = from;
  s.client_next = s.client_next + static_cast<uint32_t>(req.request.size());  // injected by us
  // The client's SYN, as it sent it, to our own address (SO_MARK: not queued).
  net::SynOptions opts;
  opts.mss = req.mss;
  opts.wscale = req.wscale;
  opts.sack_permitted = req.sack_permitted;
  if (req.syn_tsval) opts.timestamps = net::Timestamps{*req.syn_tsval, 0};
  raw.send(net::PacketBuilder()
               .ipv4(req.client.addr, cfg.node)
               .tcp(req.client.port, cfg.vip.port)
               .seq(req.client_isn)
               .flags(SYN)
               .window(req.syn_window)
               .syn_options(opts)
               .build_into(raw.buffer()));
  s.request = std::move(req);
  servings.emplace(key, std::move(s));
  ++counters.handoffs_received;
}

void NodeEngine::Impl::on_injected_synack(const io::QueuedPacket& qp, const net::TcpPacket& pkt, Serving& s) {
  verdicts.drop(qp.id);
  ++counters.synacks_dropped;
  if (!s.learn_synack(pkt)) return;  // a retransmission
  inject_request(s, pkt);
  tcp::replay_held(s, verdicts, [&](uint32_t id, net::TcpPacket& held, net::ChecksumState state) {
    translate_in(id, held, state, s);
  });
  ack_origin(s);
}

void NodeEngine::Impl::inject_request(Serving& s, const net::TcpPacket& synack) {
  const control::HandoffRequest& r = s.request;
  const net::Endpoint from = r.client;
  const net::Endpoint to{cfg.node, cfg.vip.port};
  const uint32_t ack = (s.params.backend_isn + 1u).value();
  std::optional<net::Timestamps> ts;
  if (s.params.timestamps) ts = net::Timestamps{r.client_tsval, synack.options.timestamps->tsval};
  const uint16_t mss =
      std::min<uint16_t>(synack.options.mss.value_or(tcp::kDefaultPeerMss), r.mss.value_or(tcp::kDefaultPeerMss));
  SeqNum seq = s.params.client_isn + 1u;
  const std::span<const uint8_t> bytes(r.request);
  if (bytes.empty()) raw.send(net::make_ack(raw.buffer(), from, to, seq.value(), ack, r.client_window, ts));
  for (size_t off = 0; off < bytes.size(); off += mss) {
    const auto chunk = bytes.subspan(off, std::min<size_t>(mss, bytes.size() - off));
    raw.send(net::make_ack(raw.buffer(), from, to, seq.value(), ack, r.client_window, ts, chunk));
    seq = seq + static_cast<uint32_t>(chunk.size());
  }
  s.request.request.clear();
  s.request.request.shrink_to_fit();
}

void NodeEngine::Impl::translate_in(uint32_t id, net::TcpPacket& pkt, net::ChecksumState state, Serving& s) {
  s.last_seen_ms = clock();
  const tcp::ServingConn::ClientEvent event = s.from_client(pkt, state);
  ++counters.translated;
  verdicts.accept_modified(id, pkt.bytes);
  switch (event) {
    case tcp::ServingConn::ClientEvent::kNone:
      return;
    case tcp::ServingConn::ClientEvent::kRst:
      terminate(s, control::TerminationReason::kRst);
      return;
    case tcp::ServingConn::ClientEvent::kBlindRst:
      ++counters.blind_rejected;  // the kernel challenges one inside its window itself
      return;
    case tcp::ServingConn::ClientEvent::kFinsAcked:
      terminate(s, control::TerminationReason::kFin);
      return;
  }
}

void NodeEngine::Impl::on_node_inbound(const io::QueuedPacket& qp, net::TcpPacket& pkt) {
  auto it = servings.find(conn_key({pkt.src_addr(), pkt.src_port()}));
  if (it == servings.end()) {
    verdicts.accept(qp.id);  // a connection to the node's own address: not ours
    return;
  }
  if (!qp.checksum_partial && !pkt.tcp_checksum_ok()) {
    // Checked here, not left to the kernel: veth marks received packets
    // CHECKSUM_UNNECESSARY, so this node's TCP would take a corrupt segment.
    verdicts.drop(qp.id);
    ++counters.dropped_malformed;
    return;
  }
  Serving& s = it->second;
  if (!s.translator) {
    hold.hold(s.held, qp, true);
    return;
  }
  translate_in(qp.id, pkt, io::checksum_state(qp.checksum_partial), s);
}

void NodeEngine::Impl::on_node_outbound(const io::QueuedPacket& qp, net::TcpPacket& pkt) {
  auto it = servings.find(conn_key({pkt.dst_addr(), pkt.dst_port()}));
  if (it == servings.end()) {
    verdicts.accept(qp.id);
    return;
  }
  Serving& s = it->second;
  if (pkt.has_flags(SYN)) {
    if (pkt.has_flags(ACK)) {
      on_injected_synack(qp, pkt, s);
    } else {
      verdicts.drop(qp.id);
    }
    return;
  }
  if (!s.translator) {
    verdicts.drop(qp.id);
    return;
  }
  s.last_seen_ms = clock();
  const tcp::ServingConn::ServerEvent event = s.from_server(pkt, io::checksum_state(qp.checksum_partial));
  ++counters.translated;
  verdicts.accept_modified(qp.id, pkt.bytes);  // straight to the client, FIN and RST included
  if (event == tcp::ServingConn::ServerEvent::kRst) terminate(s, control::TerminationReason::kRst);
}

}  // namespace hl::engine
