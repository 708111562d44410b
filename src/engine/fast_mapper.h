// FastMapper: the kernel fast path (io/fast_path.h) as the engines use it. A
// connection forwarded to another node is mapped once it proves long (nft),
// or at its handoff's acknowledgement (the kernel data path's BPF map), mapped
// again if its packets still come through the queue a second later (the
// mapping expired, or was in flight), and unmapped when its state goes.
//
// OriginKernelPath: the origin's kernel data path (issue 13; bpf::OriginPath
// behind it, built by the runtime) as the origin sees it. It comes to the
// origin as its FastPath (so every engine composing an origin passes it on
// unchanged): a fast path whose changes are cheap (one bpf() call), which may
// also answer SYNs in the kernel with the origin's SYN cookies, or (rare)
// read the kernel's own handshake for it.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "io/fast_path.h"
#include "net/ipv4_addr.h"
#include "net/tcp_packet.h"
#include "tcp/syn_cookie.h"

namespace hl::engine {

class OriginKernelPath : public io::FastPath {
 public:
  // How the origin answers a SYN: what the kernel's SYN/ACK must say to be its own.
  struct SynAnswer {
    uint16_t max_mss = 0;     // OriginConfig::mss (note_syn's cap)
    uint16_t syn_window = 0;  // OriginConfig::syn_window (HandshakeSender's)
    uint8_t wscale = 0;       // OriginConfig::wscale
  };
  // From now on SYNs to the VIP are answered in the kernel with `cookies`'
  // secret; their handshake ACKs never reach the origin, which builds the
  // connection from the request's ack number. Never called for the kernel's
  // own handshake (rare): forwarding only.
  virtual void answer_syns(const tcp::SynCookies& cookies, const SynAnswer& answer) = 0;
  // Whether add() really forwards (false: the engine forwards every packet itself).
  virtual bool forwards() const = 0;

  // rare: the handshake the node's kernel did, as the program read it from
  // the kernel's socket into the request's mark (its SYN, SYN/ACK and
  // handshake ACK never come to the origin then); the ISNs are the request's
  // seq - 1 and ack - 1. nullopt: `mark` holds none.
  struct KernelHandshake {
    uint16_t mss = 0;         // the client's SYN MSS, as the kernel took it
    uint8_t snd_wscale = 0;   // the client's window shift
    uint8_t rcv_wscale = 0;   // the shift the kernel announced
    bool wscale_ok = false;   // scaling, SACK, timestamps negotiated
    bool sack_ok = false;
    bool tstamp_ok = false;
  };
  virtual std::optional<KernelHandshake> handshake_of(uint32_t /*mark*/) const { return std::nullopt; }

  // A connection a dead origin's program dispatched, found at `node` by a
  // control::Located (its socket expects the client's byte `next_seq` next):
  // the kernel forwards its segments there from now on, as the dead origin's
  // program did (and reads its next requests from next_seq, with kernel
  // moves). `now_ms`: the engine's clock. False: not mapped.
  virtual bool map_located(net::Endpoint /*client*/, net::Ipv4Addr /*node*/, uint32_t /*next_seq*/,
                           uint64_t /*now_ms*/) {
    return false;
  }

  // Kernel moves: a connection this node's origin program handed to the
  // engines (a request it cannot read: a body, a head across segments, several
  // heads in a segment), whose segment came up with `mark`: the node its
  // socket is at (this node: its own address) and the ack of the last request
  // the program read. nullopt: `mark` is not the program's engine mark, or no
  // such entry.
  struct Handed {
    net::Ipv4Addr node;
    uint32_t req_ack = 0;
  };
  virtual std::optional<Handed> handed(uint32_t /*mark*/, net::Endpoint /*client*/) const { return std::nullopt; }

  // The live connections this node's program dispatched to `node` itself
  // (kernel dispatch, kernel moves: no engine knows them), taken from it: their
  // segments come to the origin from now on, which resets their clients when
  // `node` died (Origin::peer_died). `next_seq`: the client's next byte as far
  // as the program read; `last_ack`: the furthest ack the client sent (0: none).
  struct Dispatched {
    net::Endpoint client;
    uint32_t next_seq = 0;
    uint32_t last_ack = 0;
  };
  virtual std::vector<Dispatched> take_dispatched(net::Ipv4Addr /*node*/) { return {}; }

  // rare: a connection whose request the origin released to this node's own
  // kernel, untouched (its socket's ISN `isn`, the kernel's): its later
  // segments go to that socket without user space, as those of the
  // connections the program serves locally itself do. False: not taken
  // (then the rules' conntrack mark must do it).
  virtual bool mark_local(net::Endpoint /*client*/, uint32_t /*isn*/) { return false; }
};

// One connection's part.
struct FastMapping {
  bool mapped = false;          // its pure ACKs and data no longer come to the engine
                                //   (SYN, FIN and RST still do)
  bool acks_only = false;       // mapped, but its segments with payload still come (a
                                //   persistent connection whose requests the origin reads)
  uint64_t mapped_ms = 0;       // when the mapping was last sent
  uint32_t slow_forwarded = 0;  // pure ACKs and data forwarded through the queue while not mapped
};

class FastMapper {
 public:
  // Mapped at the second pure ACK or data forwarded through the queue: a mapping
  // costs an nf_tables transaction to add and one to remove, more than the one
  // or two ACKs of a one-request connection.
  static constexpr uint32_t kAfterPackets = 2;
  // A mapped connection's pure ACK or data reaching the engine is mapped again
  // at most this often (it may be one queued before the mapping took effect).
  static constexpr uint64_t kRemapMs = 1000;

  // `path` null: nothing is ever mapped. `at_handoff`: changes are cheap (one
  // syscall), connections are mapped as their handoff is sent
  // (on_handoff) so that later packets never cross user space. The counters must
  // outlive this.
  FastMapper(io::FastPath* path, uint64_t& adds, uint64_t& removes, bool at_handoff = false)
      : path_(path), adds_(adds), removes_(removes), at_handoff_(at_handoff) {}

  bool enabled() const { return path_ != nullptr; }
  bool at_handoff() const { return path_ != nullptr && at_handoff_; }

  // The handoff of `client`'s connection to `to` is being sent (its hand-in: a
  // first handoff or a move's) or was acknowledged: mapped now if at_handoff(),
  // so that the client's ACKs and FIN reach the serving node's kernel, which may
  // answer the request before the acknowledgement comes back, without crossing
  // user space. `payload`: its segments with payload may take the path too
  // (false: they must still come to the engine, which reads every request).
  void on_handoff(FastMapping& m, net::Endpoint client, net::Ipv4Addr to, uint64_t now, bool payload) {
    if (at_handoff() && !m.mapped) map(m, client, to, now, payload);
  }

  // `pkt` of `client`, in a connection forwarded to `to`, went through the queue
  // (`payload` as for on_handoff).
  void on_forwarded(FastMapping& m, const net::TcpPacket& pkt, net::Endpoint client, net::Ipv4Addr to, uint64_t now,
                    bool payload) {
    using namespace net::tcp_flag;
    if (path_ == nullptr || (pkt.flags() & (SYN | FIN | RST)) != 0) return;
    if (!payload && pkt.payload_len > 0) return;  // it comes here on purpose
    if (m.mapped ? now - m.mapped_ms >= kRemapMs : ++m.slow_forwarded >= kAfterPackets) {
      map(m, client, to, now, payload);
    }
  }

  // The connection's payload may take the path from now on: mapped again if it was mapped acks-only.
  void allow_payload(FastMapping& m, net::Endpoint client, net::Ipv4Addr to, uint64_t now) {
    if (!m.mapped || !m.acks_only) return;
    path_->remove_without_payload(client.addr.value, client.port);  // (nft has two maps)
    map(m, client, to, now, true);
  }

  void unmap(FastMapping& m, net::Endpoint client) {
    if (!m.mapped) return;
    if (m.acks_only) {
      path_->remove_without_payload(client.addr.value, client.port);
    } else {
      path_->remove(client.addr.value, client.port);
    }
    m.mapped = false;
    m.acks_only = false;
    ++removes_;
  }

  // Sends the changes now (they go out at the end of the event-loop pass otherwise).
  void flush() {
    if (path_ != nullptr) (void)path_->flush();
  }

 private:
  void map(FastMapping& m, net::Endpoint client, net::Ipv4Addr to, uint64_t now, bool payload) {
    if (payload) {
      path_->add(client.addr.value, client.port, to.value);
    } else if (!path_->add_without_payload(client.addr.value, client.port, to.value)) {
      return;  // this path cannot leave the payload here: the engine forwards everything
    }
    m.acks_only = !payload;
    m.mapped = true;
    m.mapped_ms = now;
    ++adds_;
  }

  io::FastPath* path_;
  uint64_t& adds_;
  uint64_t& removes_;
  bool at_handoff_;
};

}  // namespace hl::engine
