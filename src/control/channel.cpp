#include "control/channel.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <linux/sockios.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <deque>
#include <optional>
#include <system_error>
#include <unordered_map>

#include "control/auth.h"
#include "control/framing.h"

namespace hl::control {
namespace {

constexpr uint64_t kListenTag = 0;
constexpr uint64_t kOutTag = 1ull << 32;
constexpr uint64_t kInTag = 2ull << 32;
constexpr uint64_t kTagMask = 0xffffffffull << 32;
constexpr uint32_t kConnectTimeoutMs = 3000;
constexpr size_t kReadChunk = 64 * 1024;
constexpr int kMaxEvents = 64;

sockaddr_in to_sockaddr(net::Endpoint e) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(e.addr.value);
  sa.sin_port = htons(e.port);
  return sa;
}

[[noreturn]] void throw_errno(const char* what) {
  throw std::system_error(errno, std::generic_category(), what);
}

}  // namespace

struct ControlChannel::Impl {
  // One peer and our outgoing (sending) connection to it.
  struct Out {
    enum class State : uint8_t { kIdle, kConnecting, kConnected };
    ChannelPeer peer;
    State state = State::kIdle;
    int fd = -1;
    std::deque<std::vector<uint8_t>> queue;  // whole frames; the front may be partly written
    size_t front_written = 0;
    size_t sealed = 0;  // frames at the front already in their auth envelope (sealed in queue order)
    size_t queued_bytes = 0;
    bool pending = false;  // queued by send() with cfg.batch, not written yet
    bool want_write = false;
    uint64_t next_attempt_ms = 0;
    uint64_t connect_started_ms = 0;
    uint32_t backoff_ms = 0;
    uint32_t keepalive_seq = 0;
    uint64_t last_keepalive_ms = 0;
    std::optional<uint64_t> last_heard_ms;  // a message from this peer (any connection)
  };
  // One accepted (receiving) connection.
  struct In {
    int fd = -1;
    FrameReader reader;
    net::Ipv4Addr source;
    std::optional<size_t> peer;  // index into outs, once it introduced itself
  };

  ChannelConfig cfg;
  Clock clock;
  ChannelCounters counters;
  int epfd = -1;
  int listen_fd = -1;
  uint16_t port = 0;
  std::vector<Out> outs;
  std::unordered_map<uint64_t, In> ins;
  uint64_t next_in_id = 0;
  bool healthy = true;  // sent in our keepalives
  uint32_t load = 0;    // likewise
  std::vector<uint8_t> read_buf = std::vector<uint8_t>(kReadChunk);
  std::vector<uint8_t> frame;
  RateLimitedLog refusal_log;  // refused (auth) and undecodable frames

  Impl(ChannelConfig c, Clock k) : cfg(std::move(c)), clock(std::move(k)) {
    for (const auto& p : cfg.peers) {
      if (p.name == cfg.node) continue;
      Out o;
      o.peer = p;
      o.backoff_ms = cfg.min_backoff_ms;
      outs.push_back(std::move(o));
    }
    epfd = ::epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) throw_errno("epoll_create1");
    listen_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (listen_fd < 0) {
      ::close(epfd);
      throw_errno("socket");
    }
    try {
      const int one = 1;
      if (::setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) throw_errno("SO_REUSEADDR");
      const sockaddr_in sa = to_sockaddr(cfg.listen);
      if (::bind(listen_fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0) {
        throw_errno("bind of the control channel");
      }
      if (::listen(listen_fd, 64) != 0) throw_errno("listen");
      sockaddr_in bound{};
      socklen_t len = sizeof bound;
      if (::getsockname(listen_fd, reinterpret_cast<sockaddr*>(&bound), &len) != 0) throw_errno("getsockname");
      port = ntohs(bound.sin_port);
      watch(listen_fd, kListenTag, EPOLLIN);
    } catch (...) {
      ::close(listen_fd);
      ::close(epfd);
      throw;
    }
  }

  ~Impl() {
    for (auto& o : outs) {
      if (o.fd >= 0) ::close(o.fd);
    }
    for (auto& [id, in] : ins) ::close(in.fd);
    if (listen_fd >= 0) ::close(listen_fd);
    if (epfd >= 0) ::close(epfd);
  }

  void watch(int fd, uint64_t tag, uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = tag;
    if (::epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) throw_errno("epoll_ctl");
  }

  void set_out_events(Out& o, size_t index) {
    const bool want = o.state == Out::State::kConnecting || !o.queue.empty();
    if (want == o.want_write) return;
    o.want_write = want;
    epoll_event ev{};
    ev.events = EPOLLIN | (want ? uint32_t{EPOLLOUT} : 0u);
    ev.data.u64 = kOutTag | index;
    (void)::epoll_ctl(epfd, EPOLL_CTL_MOD, o.fd, &ev);
  }

  // --- outgoing connections ----------------------------------------------

  void start_connect(Out& o, size_t index, uint64_t now) {
    o.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (o.fd < 0) {
      connect_failed(o, now);
      return;
    }
    const int one = 1;
    (void)::setsockopt(o.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    const sockaddr_in sa = to_sockaddr(o.peer.addr);
    const int r = ::connect(o.fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa);
    if (r != 0 && errno != EINPROGRESS) {
      ::close(o.fd);
      o.fd = -1;
      connect_failed(o, now);
      return;
    }
    o.state = Out::State::kConnecting;
    o.connect_started_ms = now;
    o.want_write = true;
    watch(o.fd, kOutTag | index, EPOLLIN | EPOLLOUT);
    if (r == 0) on_connected(o, index, now);
  }

  void connect_failed(Out& o, uint64_t now) {
    ++counters.connect_failures;
    o.state = Out::State::kIdle;
    o.next_attempt_ms = now + o.backoff_ms;
    o.backoff_ms = std::min(o.backoff_ms * 2, cfg.max_backoff_ms);
  }

  // Closes the outgoing connection; queued frames are lost (a partly written
  // frame cannot be continued on a new stream).
  void close_out(Out& o, uint64_t now, bool was_failure) {
    if (o.fd >= 0) {
      (void)::epoll_ctl(epfd, EPOLL_CTL_DEL, o.fd, nullptr);
      ::close(o.fd);
    }
    o.fd = -1;
    o.want_write = false;
    if (o.state == Out::State::kConnected) {
      ++counters.disconnects;
      counters.queue_dropped += o.queue.size();
      o.queue.clear();
      o.queued_bytes = 0;
      o.front_written = 0;
      o.sealed = 0;
      o.state = Out::State::kIdle;
      o.next_attempt_ms = now + cfg.min_backoff_ms;
      o.backoff_ms = cfg.min_backoff_ms;
    } else if (was_failure) {
      connect_failed(o, now);
    }
  }

  void on_connected(Out& o, size_t index, uint64_t now) {
    o.state = Out::State::kConnected;
    o.backoff_ms = cfg.min_backoff_ms;
    ++counters.connects;
    // Introduce ourselves first: the peer maps this connection to our name.
    auto hello = encode(Keepalive{cfg.node, o.keepalive_seq++, healthy, load});
    o.queued_bytes += hello.size();
    o.queue.push_front(std::move(hello));
    ++counters.keepalives_sent;
    o.last_keepalive_ms = now;
    flush(o, index, now);
  }

  // Writes what is queued for `o`, many frames per syscall (sendmsg with one
  // iovec per frame): a busy node sends a few messages per connection, and one
  // send per message cost a syscall and a TCP segment each.
  void flush(Out& o, size_t index, uint64_t now) {
    constexpr size_t kMaxIov = 64;
    while (o.state == Out::State::kConnected && !o.queue.empty()) {
      // Seal in queue order, so sequence numbers go out in order (the
      // introduction is queued in front of older frames, none sealed then).
      while (cfg.auth && o.sealed < o.queue.size() && o.sealed < kMaxIov) {
        auto& next = o.queue[o.sealed];
        auto sealed = cfg.auth->seal(next);
        o.queued_bytes -= next.size();
        if (!sealed.ok()) {
          o.queue.erase(o.queue.begin() + static_cast<std::ptrdiff_t>(o.sealed));
          ++counters.send_dropped;
          continue;
        }
        o.queued_bytes += sealed->size();
        next = std::move(*sealed);
        ++o.sealed;
      }
      if (o.queue.empty()) break;
      iovec iov[kMaxIov];
      const size_t ready = cfg.auth ? o.sealed : o.queue.size();
      size_t count = 0;
      for (; count < std::min(ready, kMaxIov); ++count) {
        auto& f = o.queue[count];
        const size_t skip = count == 0 ? o.front_written : 0;
        iov[count] = iovec{f.data() + skip, f.size() - skip};
      }
      msghdr msg{};
      msg.msg_iov = iov;
      msg.msg_iovlen = count;
      ssize_t n = ::sendmsg(o.fd, &msg, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        if (errno == EINTR) continue;
        close_out(o, now, true);
        return;
      }
      // Whole frames written leave the queue; a partial one stays at the front.
      while (n > 0) {
        const size_t left = o.queue.front().size() - o.front_written;
        if (static_cast<size_t>(n) < left) {
          o.front_written += static_cast<size_t>(n);
          break;
        }
        n -= static_cast<ssize_t>(left);
        o.queued_bytes -= o.queue.front().size();
        o.queue.pop_front();
        o.front_written = 0;
        if (o.sealed > 0) --o.sealed;
      }
    }
    if (o.fd >= 0) set_out_events(o, index);
  }

  void on_out_event(size_t index, uint32_t events, uint64_t now) {
    if (index >= outs.size()) return;
    Out& o = outs[index];
    if (o.fd < 0) return;
    if (o.state == Out::State::kConnecting) {
      if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) == 0) return;
      int err = 0;
      socklen_t len = sizeof err;
      if (::getsockopt(o.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0 ||
          (events & (EPOLLERR | EPOLLHUP)) != 0) {
        close_out(o, now, true);
        return;
      }
      on_connected(o, index, now);
      return;
    }
    if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0) {
      // The peer never sends on our connection: readable means closed (or junk).
      const ssize_t n = ::recv(o.fd, read_buf.data(), read_buf.size(), 0);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) ||
          (events & (EPOLLERR | EPOLLHUP)) != 0) {
        close_out(o, now, true);
        return;
      }
    }
    if ((events & EPOLLOUT) != 0) flush(o, index, now);
  }

  // --- incoming connections -----------------------------------------------

  void accept_all() {
    for (;;) {
      sockaddr_in sa{};
      socklen_t len = sizeof sa;
      const int fd = ::accept4(listen_fd, reinterpret_cast<sockaddr*>(&sa), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;  // EAGAIN, or a transient error: the listen socket stays
      if (ins.size() >= cfg.max_incoming) {
        ::close(fd);
        ++counters.refused;
        continue;
      }
      const uint64_t id = next_in_id++ & 0xffffffffull;
      In in;
      in.fd = fd;
      in.source = net::Ipv4Addr{ntohl(sa.sin_addr.s_addr)};
      try {
        watch(fd, kInTag | id, EPOLLIN);
      } catch (const std::system_error&) {
        ::close(fd);
        continue;
      }
      ins.emplace(id, std::move(in));
      ++counters.accepted;
    }
  }

  // `refused`: closed by us (a frame refused), not by the peer: the peer lives
  // and reconnects, so it is not lost.
  void close_in(uint64_t id, bool refused = false) {
    auto it = ins.find(id);
    if (it == ins.end()) return;
    (void)::epoll_ctl(epfd, EPOLL_CTL_DEL, it->second.fd, nullptr);
    ::close(it->second.fd);
    const std::optional<size_t> peer = it->second.peer;
    ins.erase(it);
    // A restarted peer's new connection may be read before the old one's EOF: lost
    // only when no connection of that peer is left.
    if (refused || !peer || !cfg.peer_lost ||
        std::any_of(ins.begin(), ins.end(), [&](const auto& e) { return e.second.peer == peer; })) {
      return;
    }
    cfg.peer_lost(outs[*peer].peer.addr.addr);
  }

  void on_in_event(uint64_t id, const Handler& handler, uint64_t now) {
    auto it = ins.find(id);
    if (it == ins.end()) return;
    for (;;) {
      const ssize_t n = ::recv(it->second.fd, read_buf.data(), read_buf.size(), 0);
      if (n == 0) {
        // A stream that ends inside a frame (a truncated frame) was not a frame stream either.
        if (it->second.reader.buffered() > 0) ++counters.bad_frames;
        close_in(id);
        return;
      }
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        close_in(id);
        return;
      }
      it->second.reader.feed(std::span<const uint8_t>(read_buf.data(), static_cast<size_t>(n)));
      if (!deliver_frames(id, handler, now)) return;  // closed
      it = ins.find(id);
      if (it == ins.end()) return;
    }
  }

  // Decodes every whole frame of connection `id`; false if it was closed.
  bool deliver_frames(uint64_t id, const Handler& handler, uint64_t now) {
    for (;;) {
      auto it = ins.find(id);
      if (it == ins.end()) return false;
      In& in = it->second;
      const FrameStatus st = in.reader.next(frame);
      if (st == FrameStatus::kNeedMore) return true;
      if (st == FrameStatus::kFrame && cfg.auth) {
        auto inner = cfg.auth->open(frame);
        if (!inner.ok()) {
          ++counters.auth_refused;
          refusal_log.log(now, std::string("control channel: refused a message from ") + in.source.to_string() + ": " +
                                to_string(inner.error()) + "; connection closed");
          close_in(id, true);
          return false;
        }
        frame = std::move(*inner);
      }
      auto msg = st == FrameStatus::kFrame ? decode(frame) : Result<Message, DecodeError>(Err(DecodeError::BadMagic));
      if (!msg.ok()) {
        ++counters.bad_frames;
        refusal_log.log(now, "control channel: an undecodable frame from " + in.source.to_string() + " (" +
                                 describe_undecodable(frame, msg.error()) + "); connection closed");
        close_in(id, true);
        return false;
      }
      if (const auto* ka = std::get_if<Keepalive>(&*msg)) {
        ++counters.keepalives_received;
        if (!in.peer) {
          for (size_t i = 0; i < outs.size(); ++i) {
            if (outs[i].peer.name == ka->node) in.peer = i;
          }
        }
        if (in.peer) {
          outs[*in.peer].last_heard_ms = now;
          if (cfg.deliver_keepalives) handler(outs[*in.peer].peer.addr.addr, *msg);
        }
        continue;
      }
      net::Ipv4Addr from = in.source;
      if (in.peer) {
        outs[*in.peer].last_heard_ms = now;
        from = outs[*in.peer].peer.addr.addr;
      }
      ++counters.received;
      handler(from, *msg);  // may send(): only touches outs
    }
  }

  // --- public ----------------------------------------------------------------

  bool send(net::Ipv4Addr to, const Message& m) {
    for (size_t i = 0; i < outs.size(); ++i) {
      Out& o = outs[i];
      if (o.peer.addr.addr != to) continue;
      auto f = encode(m);
      if (o.queued_bytes + f.size() > cfg.max_queue_bytes) break;
      o.queued_bytes += f.size();
      o.queue.push_back(std::move(f));
      ++counters.sent;
      if (o.state == Out::State::kConnected) {
        if (cfg.batch) {
          o.pending = true;  // flush_pending(), at the end of the event-loop pass
        } else {
          flush(o, i, clock());
        }
      }
      return true;
    }
    ++counters.send_dropped;
    return false;
  }

  void discard(net::Ipv4Addr to) {
    for (Out& o : outs) {
      if (o.peer.addr.addr != to) continue;
      // Bytes the kernel holds unacknowledged (a cut link's backlog: our
      // keepalives at least) would still reach the peer when the link is back:
      // the connection is aborted (RST, unsent bytes discarded) and made again.
      // With none (the peer acknowledges all: a web server found down, the
      // channel sound) it stays: an RST would look to the peer like this
      // engine's death. (A connection still being made carries nothing yet.)
      int unacked = 0;
      const bool abort =
          o.state == Out::State::kConnected && (::ioctl(o.fd, SIOCOUTQ, &unacked) != 0 || unacked > 0);
      // A frame partly written on a connection that stays is finished (the
      // stream would break mid-frame); the rest goes.
      const size_t kept = !abort && o.front_written > 0 && !o.queue.empty() ? 1 : 0;
      counters.discarded += o.queue.size() - kept;
      o.queue.erase(o.queue.begin() + static_cast<std::ptrdiff_t>(kept), o.queue.end());
      o.queued_bytes = kept != 0 ? o.queue.front().size() : 0;
      o.sealed = std::min(o.sealed, kept);
      if (kept == 0) {
        o.front_written = 0;
        o.pending = false;
      }
      if (abort) {
        const linger now_and_discard{1, 0};
        (void)::setsockopt(o.fd, SOL_SOCKET, SO_LINGER, &now_and_discard, sizeof now_and_discard);
        close_out(o, clock(), false);  // idle: reconnects after the minimum backoff
      }
    }
  }

  void poll_once(const Handler& handler) {
    epoll_event events[kMaxEvents];
    const int n = ::epoll_wait(epfd, events, kMaxEvents, 0);
    const uint64_t now = clock();
    for (int i = 0; i < n; ++i) {
      const uint64_t tag = events[i].data.u64;
      const uint32_t ev = events[i].events;
      switch (tag & kTagMask) {
        case kListenTag: accept_all(); break;
        case kOutTag: on_out_event(static_cast<size_t>(tag & 0xffffffffull), ev, now); break;
        case kInTag: on_in_event(tag & 0xffffffffull, handler, now); break;
        default: break;
      }
    }
  }

  void flush_pending() {
    const uint64_t now = clock();
    for (size_t i = 0; i < outs.size(); ++i) {
      Out& o = outs[i];
      if (!o.pending) continue;
      o.pending = false;
      flush(o, i, now);
    }
  }

  void tick() {
    const uint64_t now = clock();
    for (size_t i = 0; i < outs.size(); ++i) {
      Out& o = outs[i];
      switch (o.state) {
        case Out::State::kIdle:
          if (now >= o.next_attempt_ms) start_connect(o, i, now);
          break;
        case Out::State::kConnecting:
          if (now - o.connect_started_ms >= kConnectTimeoutMs) close_out(o, now, true);
          break;
        case Out::State::kConnected:
          if (now - o.last_keepalive_ms >= cfg.keepalive_ms) {
            o.last_keepalive_ms = now;
            auto f = encode(Keepalive{cfg.node, o.keepalive_seq++, healthy, load});
            o.queued_bytes += f.size();
            o.queue.push_back(std::move(f));
            ++counters.keepalives_sent;
            flush(o, i, now);
          }
          break;
      }
    }
  }

  size_t peers_up() const {
    const uint64_t now = clock();
    return static_cast<size_t>(std::count_if(outs.begin(), outs.end(), [&](const Out& o) {
      return o.last_heard_ms && now - *o.last_heard_ms < cfg.peer_timeout_ms;
    }));
  }
};

ControlChannel::ControlChannel(ChannelConfig config, Clock clock)
    : impl_(std::make_unique<Impl>(std::move(config), std::move(clock))) {}
ControlChannel::~ControlChannel() = default;

int ControlChannel::fd() const { return impl_->epfd; }
uint16_t ControlChannel::listen_port() const { return impl_->port; }
bool ControlChannel::send(net::Ipv4Addr to, const Message& message) { return impl_->send(to, message); }
void ControlChannel::discard(net::Ipv4Addr to) { impl_->discard(to); }
void ControlChannel::poll_once(const Handler& handler) { impl_->poll_once(handler); }
void ControlChannel::tick() { impl_->tick(); }
void ControlChannel::flush_pending() { impl_->flush_pending(); }
void ControlChannel::set_healthy(bool healthy) { impl_->healthy = healthy; }
void ControlChannel::set_load(uint32_t load) { impl_->load = load; }
size_t ControlChannel::peers_up() const { return impl_->peers_up(); }
bool ControlChannel::peer_up(const std::string& name) const {
  const uint64_t now = impl_->clock();
  for (const auto& o : impl_->outs) {
    if (o.peer.name == name) return o.last_heard_ms && now - *o.last_heard_ms < impl_->cfg.peer_timeout_ms;
  }
  return false;
}
size_t ControlChannel::connected() const {
  return static_cast<size_t>(std::count_if(impl_->outs.begin(), impl_->outs.end(), [](const Impl::Out& o) {
    return o.state == Impl::Out::State::kConnected;
  }));
}
const ChannelCounters& ControlChannel::counters() const { return impl_->counters; }

}  // namespace hl::control
