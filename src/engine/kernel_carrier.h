// KernelCarrier: carries handed-in connections in the serving node's kernel
// (issue 13, the kernel data path). On hand-in it authorises the connection in
// the adopt program's map (src/bpf/adopter.h, behind KernelAdoption), injects
// the request itself as the one segment the origin would forward (client ->
// VIP:port, seq c+1, ack f+1, through the raw socket: it enters the stack via
// lo, where the adopt program also runs, and the kernel creates the socket with
// the request queued) and acks the origin. No SYN replay, no SYN/ACK, no
// translation: the new socket's ISN is the origin's (snt_isn = ack - 1) and its
// local address the VIP, so its segments go straight to the client, and later
// client segments (DNATed by the origin to this node) are un-DNATed back to the
// VIP by the adopt program. The end: the kernel's socket is gone (sock_diag
// destroy notifications, checked by an exact lookup) -> OriginLink::ended and
// the entry revoked.
//
// In band (the frontend design's replayed SYN): the SYN is dropped, the entry
// written and the origin acked at once; the handshake ACK and the request the
// front-end replays to this node's address reach the engine only if they beat
// the entry to the adopt program: they are re-sent to the VIP through the raw
// socket (from_client), and the adopt program creates the socket from them.
#pragma once

#include <cstdint>
#include <optional>
#include <unordered_map>
#include <vector>

#include "engine/serving_side.h"
#include "io/checked_io.h"
#include "io/packet_io.h"
#include "util/clock.h"

namespace hl::engine {

// What the kernel must know to adopt one connection (host byte order; see
// bpf::AdoptAttrs, which the runtime's KernelAdoption fills from it).
struct AdoptGrant {
  net::Endpoint client;
  uint32_t expected_seq = 0;  // the first segment's seq (c + 1)
  uint32_t expected_ack = 0;  // ... and ack (f + 1)
  uint32_t rcv_tsecr = 0;     // the latest TSval the client got from the origin
  uint16_t mss = 536;         // the client's SYN MSS
  uint8_t rcv_wscale = 0;     // the scale the client was told
  uint8_t snd_wscale = 0;     // the client's scale
  bool wscale_ok = false;
  bool sack_ok = false;
  bool tstamp_ok = false;

  friend bool operator==(const AdoptGrant&, const AdoptGrant&) = default;
};

// The kernel side the carrier drives (the real one joins bpf::Adopter and
// io::SockDestroyWatch in the runtime; tests use a fake). All for this node's VIP:port.
class KernelAdoption {
 public:
  virtual ~KernelAdoption() = default;
  // Writes the entry (destroying a TIME_WAIT socket of the tuple first); false: failed.
  virtual bool authorise(const AdoptGrant& grant) = 0;
  // Removes the entry of `client`, if any.
  virtual void revoke(net::Endpoint client) = 0;
  // Clients whose socket to the VIP the kernel destroyed since the last call
  // (appended to `out`); true if some may have been missed (then every
  // connection is checked).
  virtual bool take_destroyed(std::vector<net::Endpoint>& out) = 0;
  // Whether the connection VIP:port <-> client still lives in this kernel: a
  // socket neither TIME_WAIT nor closed, or a FIN_WAIT2 minisock (the server
  // closed; the client's FIN is still to come).
  virtual bool alive(net::Endpoint client) = 0;
};

struct KernelCarrierConfig {
  net::Endpoint vip;                  // the adopted sockets' local side
  uint32_t linger_ms = 0;             // an ended connection is remembered (duplicate hand-ins)
  uint32_t handshake_timeout_ms = 0;  // the socket must show within
  uint32_t check_ms = 30000;          // live connections are looked up at least this often
  size_t max_connections = SIZE_MAX;  // hand-ins past it are refused (kBusy)
};

class KernelCarrier final : public Carrier {
 public:
  // `raw` sends the injected segments (SO_MARK: not queued). The references must outlive this.
  KernelCarrier(KernelCarrierConfig config, KernelAdoption& kernel, io::Verdicts& verdicts, io::PacketSender& raw,
                OriginLink& link, ServingCounters& counters, Clock clock);

  Intake hand_in(HandIn in, const io::QueuedPacket* qp, net::TcpPacket* syn) override;
  std::optional<Existing> existing(net::Endpoint client, uint32_t c) const override;
  bool from_client(const io::QueuedPacket& qp, net::TcpPacket& pkt) override;
  void from_local_origin(const io::QueuedPacket& qp, net::TcpPacket& pkt) override;
  bool from_server(const io::QueuedPacket& qp, net::TcpPacket& pkt) override;
  void deliver(net::TcpPacket& pkt) override;
  void release(net::Ipv4Addr origin, const control::Release& order) override;
  void on_timer(uint64_t now) override;
  size_t active() const override { return conns_.size(); }

 private:
  struct Conn {
    net::Endpoint client;
    net::Ipv4Addr origin;
    uint32_t c = 0;
    uint32_t f = 0;
    uint64_t since_ms = 0;
    uint64_t check_at_ms = 0;   // next lookup of a live connection
    uint64_t ended_ms = 0;      // 0: not ended
    EndCause cause = EndCause::kKernelEnd;
    uint8_t end_repeats = 0;    // an unreliable link: the end told again (kEndRepeats)
    bool seen_alive = false;
    bool destroyed = false;     // a destroy notification named its tuple: looked up every tick
  };
  using ConnIt = std::unordered_map<uint64_t, Conn>::iterator;

  // The request as the segments the origin would forward (client's MSS each).
  void inject(const HandIn& in, uint16_t mss);
  // Ends `conn` (once): tells the origin, revokes the entry.
  void end(Conn& conn, EndCause cause, uint64_t now);
  // Looks the socket up; ends the connection if it is gone (or never came).
  void check(Conn& conn, uint64_t now);

  static constexpr uint8_t kEndRepeats = 3;       // over an unreliable link (UDP), while lingering
  static constexpr uint64_t kEndRepeatMs = 300;

  KernelCarrierConfig cfg_;
  KernelAdoption& kernel_;
  ServingCounters& counters_;
  io::CheckedVerdicts verdicts_;
  io::CheckedSender raw_;
  OriginLink& link_;
  Clock clock_;
  std::unordered_map<uint64_t, Conn> conns_;
  std::vector<net::Endpoint> destroyed_;  // reused by on_timer
};

}  // namespace hl::engine
