// TranslationCarrier: carries handed-in connections by translation. The kernel gets
// the client's SYN (the replayed one, or one built from the HandoffRequest), its
// SYN/ACK teaches b and is dropped, the request is injected (control channel),
// and every segment is rewritten both ways through NFQUEUE verdicts (tcp::ServingConn).
// Moves (control::Release): each connection's two byte streams feed a
// tcp::ExchangeWatch; at the quiet point the kernel's socket is retired by an
// exact-seq RST injected into this node's own kernel, and every later packet of
// the connection is dropped; one that never gets quiet in time (kTimeout) is
// reset there and ended, since its origin resets the client.
// The end: both FINs acknowledged or an exact RST, seen in the packets; with a
// ServerSockets, also the kernel's socket gone (sock_diag, socket_end.h), which
// a lost FIN or last ACK does not hide.
#pragma once

#include <cstdint>
#include <optional>
#include <unordered_map>
#include <vector>

#include "engine/serving_side.h"
#include "engine/socket_end.h"
#include "io/checked_io.h"
#include "io/packet_hold.h"
#include "io/packet_io.h"
#include "tcp/exchange_watch.h"
#include "tcp/serving.h"
#include "util/clock.h"

namespace hl::engine {

struct TranslationConfig {
  static constexpr uint32_t kDefaultReleaseTimeoutMs = 10000;
  // A retired connection's state lingers at least this long (repeated Release
  // orders are answered again; its stray packets are dropped).
  static constexpr uint32_t kMinRetiredLingerMs = 2000;

  net::Endpoint vip;          // what clients connected to (source of translated responses)
  net::Endpoint node;         // this node's address and web server port (its sockets' side)
  uint32_t linger_ms = 0;     // state kept after the connection ended
  uint32_t handshake_timeout_ms = 0;  // the kernel's SYN/ACK must show within
  uint32_t idle_timeout_ms = 0;
  size_t max_connections = SIZE_MAX;  // hand-ins past it are refused (kBusy)
  size_t max_held = 0;                // client packets held per connection until b is known
  uint32_t release_timeout_ms = kDefaultReleaseTimeoutMs;  // a move waits this long without progress
  uint32_t check_ms = SocketEnds::kDefaultCheckMs;  // with ServerSockets: live sockets looked up this often
};

class TranslationCarrier final : public Carrier {
 public:
  // `raw` sends the built SYN and injected segments (control channel) and the
  // RSTs that retire moved connections (may be null in band: then no move is
  // ever carried out, every Release times out). `sockets`: this node's sockets
  // on config.node, their ends (may be null: the packets and timeouts alone).
  // The references and `sockets` must outlive this.
  TranslationCarrier(TranslationConfig config, io::Verdicts& verdicts, io::PacketSender* raw, OriginLink& link,
                     ServingCounters& counters, Clock clock, ServerSockets* sockets = nullptr);

  Intake hand_in(HandIn in, const io::QueuedPacket* qp, net::TcpPacket* syn) override;
  std::optional<Existing> existing(net::Endpoint client, uint32_t c) const override;
  bool from_client(const io::QueuedPacket& qp, net::TcpPacket& pkt) override;
  void from_local_origin(const io::QueuedPacket& qp, net::TcpPacket& pkt) override;
  bool from_server(const io::QueuedPacket& qp, net::TcpPacket& pkt) override;
  void deliver(net::TcpPacket& pkt) override;
  void release(net::Ipv4Addr origin, const control::Release& order) override;
  std::optional<Orphan> carry(net::Ipv4Addr origin, net::Endpoint client) override;
  void on_timer(uint64_t now) override;
  std::vector<Orphan> take_over(net::Ipv4Addr dead, net::Ipv4Addr self) override;
  size_t active() const override { return conns_.size(); }
  size_t open() const override;

 private:
  // One carried connection: the translation state and what the hand-in left to do.
  // A move being waited for (control::Release).
  struct Move {
    net::Ipv4Addr origin;
    control::Release order;
    uint64_t progress_ms = 0;  // when the exchange last advanced
    uint64_t mark = 0;         // what the exchange looked like then
  };
  // The last answer to a Release (a repeated order gets it again).
  struct Answer {
    control::Release order;
    control::Released answer;
    net::Ipv4Addr to;  // the origin it was sent to
  };
  struct Conn : tcp::ServingConn {
    // `watch` is reset for this connection (a spare one, or new).
    Conn(net::Endpoint client, const tcp::SynReplay& syn, net::Endpoint vip, net::Endpoint backend, uint64_t now,
         tcp::ExchangeWatch watch);
    HandIn in;                  // its request is freed once injected
    tcp::ExchangeWatch watch;   // requests and responses, in the client's numbers
    std::optional<Move> move;
    std::optional<Answer> answer;
    uint32_t ts_high = 0;       // the highest TSval the client got (client's view)
    bool server_fin = false;    // the server closed its side: nothing to move
    bool retired = false;       // moved away: its socket is gone, its packets are dropped
    SocketEnd socket;           // what sock_diag told of its socket (with ServerSockets)
    EndCause cause = EndCause::kTimeout;  // why it ended
    EndRepeats end_repeats;     // over UDP: the end told again while lingering
  };
  using ConnIt = std::unordered_map<uint64_t, Conn>::iterator;

  void free_conn(ConnIt it);
  // Ends `conn` for `cause` (once) and tells the origin (again while it
  // lingers, over UDP: on_timer).
  void end(Conn& conn, EndCause cause);
  // With ServerSockets: ends `conn` if the kernel's socket of it is gone.
  void check_socket(Conn& conn, uint64_t now);
  // Sends the client's SYN, as it sent it, to this node (SO_MARK: not queued).
  void send_syn(const HandIn& in);
  // The kernel's SYN/ACK: learn b, inject the request, carry the held packets, ack the origin.
  void on_synack(const io::QueuedPacket& qp, const net::TcpPacket& synack, Conn& conn);
  // The handshake's ACK and the request, in the kernel's numbers.
  void inject_request(Conn& conn, const net::TcpPacket& synack);
  void translate_in(uint32_t id, net::TcpPacket& pkt, net::ChecksumState state, Conn& conn);
  // Server data with a FIN, the FIN relayed: the data goes straight, the FIN (alone) through the origin.
  void split_fin(const io::QueuedPacket& qp, net::TcpPacket& pkt, const Conn& conn);
  // Moves: whether `conn` is at the quiet point `order` asks for (the server got
  // everything before order.client_seq, answered it all, the client acked it all).
  bool quiet_for(const Conn& conn, const control::Release& order) const;
  // Retires `conn` if it is quiet for its order, else notes progress.
  void check_move(Conn& conn);
  // Injects the exact-seq RST, drops everything after, answers kReleased.
  void retire(Conn& conn);
  // The exact-seq RST (`seq`: the socket's rcv_nxt) into this node's own kernel (raw_ required).
  void reset_socket(const Conn& conn, uint32_t seq);
  // A move that timed out: resets the socket, ends the connection.
  void abandon(Conn& conn);
  void answer(Conn& conn, net::Ipv4Addr origin, const control::Release& order, control::ReleaseStatus status);

  TranslationConfig cfg_;
  ServingCounters& counters_;
  io::CheckedVerdicts verdicts_;
  std::optional<io::CheckedSender> raw_;
  OriginLink& link_;
  Clock clock_;
  io::PacketHold hold_;
  std::unordered_map<uint64_t, Conn> conns_;
  std::optional<SocketEnds> ends_;  // none: no ServerSockets
  // Watches of freed connections, reused (their allocations kept): a hand-in
  // allocates nothing for its watch in the steady state.
  static constexpr size_t kMaxSpareWatches = 64;
  std::vector<tcp::ExchangeWatch> spare_watches_;
};

}  // namespace hl::engine
