#include "engine/handoff_transport.h"

#include <algorithm>
#include <optional>
#include <span>
#include <utility>

#include "net/handoff_option.h"
#include "net/packet_builder.h"
#include "tcp/seq.h"

namespace hl::engine {

using net::tcp_flag::SYN;
using tcp::SeqNum;

void InBandTransport::send(OriginConn& conn) {
  const tcp::ClientHandshake& hs = conn.hs;
  const net::Endpoint from = hs.client;
  const net::Endpoint to{conn.target, vip_.port};
  net::HandoffOption option{hs.server_isn.value(), hs.ts_ok ? hs.ts_base : 0, hs.server_wscale};
  option.frontend_id = frontend_id_;
  if (mac_) option.mac = mac_(net::handoff_mac_input(from, to, hs.client_isn.value(), option));
  const auto data = net::encode_option_data(option);
  raw_.send(net::PacketBuilder()
                .ipv4(from.addr, to.addr)
                .tcp(from.port, to.port)
                .seq(hs.client_isn.value())
                .flags(SYN)
                .window(hs.syn_window)
                .syn_options(hs.client_syn)
                .raw_option(net::kHandoffOptionKind, data)
                .build_into(raw_.buffer()));
  const std::span<const uint8_t> bytes(conn.request.bytes);
  SeqNum seq = hs.client_isn + 1u;
  for (size_t off = 0; off < bytes.size(); off += hs.mss) {
    const auto chunk = bytes.subspan(off, std::min<size_t>(hs.mss, bytes.size() - off));
    std::optional<net::Timestamps> ts;
    if (hs.ts_ok) ts = net::Timestamps{hs.client_tsval, hs.ts_base};
    raw_.send(net::make_ack(raw_.buffer(), from, to, seq.value(), (hs.server_isn + 1u).value(), hs.client_window,
                            ts, chunk));
    seq = seq + static_cast<uint32_t>(chunk.size());
  }
}

void InBandTransport::release(const OriginConn& conn, const control::Release& order) {
  if (messages_ == nullptr || !messages_->send(conn.target, order)) ++errors_;
}

void ControlTransport::send(OriginConn& conn) {
  const tcp::ClientHandshake& hs = conn.hs;
  control::HandoffRequest r;
  r.client = hs.client;
  r.vip_port = vip_port_;
  r.client_isn = hs.client_isn.value();
  r.frontend_isn = hs.server_isn.value();
  r.mss = hs.client_syn.mss;
  r.wscale = hs.client_syn.wscale;
  r.sack_permitted = hs.client_syn.sack_permitted;
  if (hs.client_syn.timestamps) r.syn_tsval = hs.client_syn.timestamps->tsval;
  r.syn_window = hs.syn_window;
  r.client_window = hs.client_window;
  r.client_tsval = hs.client_tsval;
  r.frontend_ts_base = hs.ts_ok ? hs.ts_base : 0;
  r.frontend_wscale = hs.wscale_ok ? hs.server_wscale : uint8_t{0};
  r.origin = self_;
  r.request = conn.request.bytes;  // kept until the ack: the handoff may be sent again (handoff_retry_ms)
  send_(conn.target, std::move(r));  // last: a local refusal frees `conn`
}

}  // namespace hl::engine
