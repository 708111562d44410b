#include "engine/serving_side.h"

#include <algorithm>
#include <utility>

#include "net/handoff_option.h"

namespace hl::engine {

using net::tcp_flag::ACK;
using net::tcp_flag::SYN;

bool ServingSide::take_replayed_syn(const io::QueuedPacket& qp, net::TcpPacket& pkt,
                                    io::CheckedVerdicts& verdicts) {
  if (!pkt.has_flags(SYN) || pkt.has_flags(ACK)) return false;
  const std::optional<net::HandoffOption> opt = net::find_handoff_option(pkt);
  if (!opt) return false;
  const net::Endpoint client{pkt.src_addr(), pkt.src_port()};
  if (mac_) {
    const auto in = net::handoff_mac_input(client, {pkt.dst_addr(), pkt.dst_port()}, pkt.seq(), *opt);
    if (opt->mac != mac_(in)) {
      verdicts.drop(qp.id);
      ++counters_.forged_handoffs;
      return true;
    }
  }
  net::Ipv4Addr origin;  // unset with one front-end: the link (RelayLink) knows it
  if (!frontends_.empty()) {
    if (opt->frontend_id >= frontends_.size()) {
      verdicts.drop(qp.id);
      ++counters_.forged_handoffs;
      return true;
    }
    origin = frontends_[opt->frontend_id];
  }
  if (const auto old = carrier_.existing(client, pkt.seq())) {  // the handoff was sent again
    verdicts.drop(qp.id);
    ++counters_.duplicate_handoffs;
    if (old->phase != Carrier::Phase::kHandshaking) link_.acked(origin, client, old->local_isn);
    return true;
  }
  HandIn in;
  in.client = client;
  in.origin = origin;
  in.syn.client_isn = tcp::SeqNum(pkt.seq());
  in.syn.frontend_isn = tcp::SeqNum(opt->frontend_isn);
  in.syn.client_wscale = pkt.options.wscale;
  in.syn.timestamps = pkt.options.timestamps.has_value();
  in.syn.frontend_ts_base = opt->frontend_ts_base;
  in.syn.frontend_wscale = opt->frontend_wscale;
  in.syn_window = pkt.window();
  in.client_syn = net::SynOptions{pkt.options.mss, pkt.options.wscale, pkt.options.sack_permitted,
                                  pkt.options.timestamps};  // the client's, replayed (a takeover repeats them)
  (void)carrier_.hand_in(std::move(in), &qp, &pkt);  // no bound in band
  return true;
}

void ServingSide::take_request(net::Ipv4Addr from, control::HandoffRequest req) {
  if (req.vip_port != vip_.port || req.origin != from) {
    ++counters_.control_errors;
    ++counters_.refused;
    link_.refused(from, req.client, control::RefuseReason::kBadRequest);
    return;
  }
  if (const auto old = carrier_.existing(req.client, req.client_isn)) {  // sent again
    if (old->phase == Carrier::Phase::kCarrying) link_.acked(from, req.client, old->local_isn);
    return;
  }
  HandIn in;
  in.client = req.client;
  in.origin = from;
  in.syn.client_isn = tcp::SeqNum(req.client_isn);
  in.syn.frontend_isn = tcp::SeqNum(req.frontend_isn);
  in.syn.client_wscale = req.wscale;
  in.syn.timestamps = req.syn_tsval.has_value();  // the origin echoes timestamps when offered
  in.syn.frontend_ts_base = req.frontend_ts_base;
  in.syn.frontend_wscale = req.frontend_wscale;
  in.client_syn.mss = req.mss;
  in.client_syn.wscale = req.wscale;
  in.client_syn.sack_permitted = req.sack_permitted;
  if (req.syn_tsval) in.client_syn.timestamps = net::Timestamps{*req.syn_tsval, 0};
  in.syn_window = req.syn_window;
  in.inject = true;
  in.client_window = req.client_window;
  in.client_tsval = req.client_tsval;
  in.request = std::move(req.request);
  const net::Endpoint client = in.client;
  if (carrier_.hand_in(std::move(in), nullptr, nullptr) == Carrier::Intake::kBusy) {
    ++counters_.refused;
    link_.refused(from, client, control::RefuseReason::kBusy);
  }
}

namespace {

// A takeover's stream from `next_request` on, with the handshake the client made.
control::TakeoverStream stream_from(const tcp::SynReplay& syn, const net::SynOptions& client_syn,
                                    uint16_t syn_window, uint32_t next_request) {
  control::TakeoverStream st;
  st.next_request = next_request;
  st.mss = client_syn.mss;
  st.wscale = syn.client_wscale;
  if (st.wscale && *st.wscale > control::HandoffRequest::kMaxWscale) st.wscale = control::HandoffRequest::kMaxWscale;
  st.sack_permitted = client_syn.sack_permitted;
  st.timestamps = syn.timestamps;
  st.syn_window = syn_window;
  st.frontend_ts_base = syn.frontend_ts_base;
  st.frontend_wscale = std::min<uint8_t>(syn.frontend_wscale, control::HandoffRequest::kMaxWscale);
  return st;
}

}  // namespace

std::optional<control::TakeoverStream> takeover_stream(const tcp::SynReplay& syn, const net::SynOptions& client_syn,
                                                       uint16_t syn_window, const tcp::ExchangeWatch* watch) {
  if (watch == nullptr) return std::nullopt;
  const std::optional<uint32_t> next = watch->next_request();
  if (!next) return std::nullopt;
  control::TakeoverStream st = stream_from(syn, client_syn, syn_window, *next);
  st.requests = static_cast<uint32_t>(watch->requests());
  return st;
}

control::TakeoverStream released_stream(const tcp::SynReplay& syn, const net::SynOptions& client_syn,
                                        uint16_t syn_window, const control::Release& order) {
  control::TakeoverStream st = stream_from(syn, client_syn, syn_window, order.client_seq);
  st.requests = order.requests;  // the new origin's Release repeats the order: the answer again
  st.released = true;
  return st;
}

control::TakeoverStream carried_stream(const tcp::SynReplay& syn, const net::SynOptions& client_syn,
                                       uint16_t syn_window, uint32_t next_request) {
  control::TakeoverStream st = stream_from(syn, client_syn, syn_window, next_request);
  st.requests = 1;  // never 0 in a Release (the carrier's watchless quiet check ignores it)
  return st;
}

void ServingSide::take_release(net::Ipv4Addr from, const control::Release& order) {
  ++counters_.release_orders;
  carrier_.release(from, order);
}

void ServingSide::on_packet(const io::QueuedPacket& qp, net::TcpPacket& pkt, bool to_node,
                            io::CheckedVerdicts& verdicts) {
  const bool carried = to_node ? carrier_.from_client(qp, pkt) : carrier_.from_server(qp, pkt);
  if (carried) return;
  verdicts.accept(qp.id);  // a connection to the node's own address: not ours
  ++counters_.passthrough;
}

}  // namespace hl::engine
