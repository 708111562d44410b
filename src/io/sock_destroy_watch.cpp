// SockDestroyWatch: sock_diag destroy notifications and exact lookups (see the header).
#include "io/sock_destroy_watch.h"

#include <arpa/inet.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

namespace hl::io {
namespace {

constexpr unsigned kTcpEstablished = 1;
constexpr unsigned kTcpTimeWait = 6;  // the kernel's TCP state enum
constexpr unsigned kTcpClose = 7;
constexpr unsigned kTcpListen = 10;
constexpr int kGroupRcvbuf = 4 << 20;

int netlink_socket(bool nonblocking) {
  const int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), NETLINK_SOCK_DIAG);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "socket(NETLINK_SOCK_DIAG)");
  return fd;
}

}  // namespace

SockDestroyWatch::SockDestroyWatch(net::Endpoint local, bool subscribe) : local_(local) {
  if (subscribe) {
    group_fd_ = netlink_socket(true);
    sockaddr_nl self{};
    self.nl_family = AF_NETLINK;
    const unsigned group = SKNLGRP_INET_TCP_DESTROY;
    if (bind(group_fd_, reinterpret_cast<sockaddr*>(&self), sizeof self) != 0 ||
        setsockopt(group_fd_, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &group, sizeof group) != 0) {
      const int err = errno;
      close(group_fd_);
      throw std::system_error(err, std::generic_category(), "sock_diag destroy notifications");
    }
    if (setsockopt(group_fd_, SOL_SOCKET, SO_RCVBUFFORCE, &kGroupRcvbuf, sizeof kGroupRcvbuf) != 0) {
      (void)setsockopt(group_fd_, SOL_SOCKET, SO_RCVBUF, &kGroupRcvbuf, sizeof kGroupRcvbuf);
    }
  }
  query_fd_ = netlink_socket(false);
  timeval timeout{1, 0};  // the kernel answers at once; never hang the caller
  setsockopt(query_fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
}

SockDestroyWatch::~SockDestroyWatch() {
  if (group_fd_ >= 0) close(group_fd_);
  if (query_fd_ >= 0) close(query_fd_);
}

bool SockDestroyWatch::drain(std::vector<net::Endpoint>& out) {
  if (group_fd_ < 0) return false;  // lookups only
  alignas(nlmsghdr) char buf[16384];
  bool lost = false;
  for (;;) {
    const ssize_t n = recv(group_fd_, buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == ENOBUFS) {
        lost = true;
        continue;
      }
      break;  // EAGAIN: all read
    }
    size_t at = 0;
    const size_t end = static_cast<size_t>(n);
    while (at + sizeof(nlmsghdr) <= end) {
      nlmsghdr h{};
      std::memcpy(&h, buf + at, sizeof h);
      if (h.nlmsg_len < sizeof(nlmsghdr) || at + h.nlmsg_len > end) break;
      const size_t here = at;
      at += NLMSG_ALIGN(h.nlmsg_len);
      if (h.nlmsg_type != SOCK_DIAG_BY_FAMILY || h.nlmsg_len < NLMSG_LENGTH(sizeof(inet_diag_msg))) continue;
      inet_diag_msg msg{};
      std::memcpy(&msg, buf + here + NLMSG_HDRLEN, sizeof msg);
      ++notifications_;
      if (msg.idiag_family != AF_INET || msg.id.idiag_src[0] != htonl(local_.addr.value) ||
          msg.id.idiag_sport != htons(local_.port)) {
        continue;
      }
      out.push_back({net::Ipv4Addr{ntohl(msg.id.idiag_dst[0])}, ntohs(msg.id.idiag_dport)});
    }
  }
  return lost;
}

Result<SocketLife, IoError> SockDestroyWatch::lookup(net::Endpoint remote) {
  struct {
    nlmsghdr header;
    inet_diag_req_v2 req;
  } msg{};
  msg.header.nlmsg_len = sizeof msg;
  msg.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  msg.header.nlmsg_flags = NLM_F_REQUEST;
  msg.req.sdiag_family = AF_INET;
  msg.req.sdiag_protocol = IPPROTO_TCP;
  msg.req.idiag_states = ~0u;
  msg.req.id.idiag_sport = htons(local_.port);
  msg.req.id.idiag_dport = htons(remote.port);
  msg.req.id.idiag_src[0] = htonl(local_.addr.value);
  msg.req.id.idiag_dst[0] = htonl(remote.addr.value);
  msg.req.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
  msg.req.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (sendto(query_fd_, &msg, sizeof msg, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) < 0) {
    return Err(IoError{errno, "SOCK_DIAG_BY_FAMILY"});
  }
  alignas(nlmsghdr) char reply[1024];
  const ssize_t n = recv(query_fd_, reply, sizeof reply, 0);
  if (n < static_cast<ssize_t>(sizeof(nlmsghdr))) return Err(IoError{n < 0 ? errno : EPROTO, "SOCK_DIAG_BY_FAMILY"});
  nlmsghdr answer{};
  std::memcpy(&answer, reply, sizeof answer);
  if (answer.nlmsg_type == NLMSG_ERROR) {
    nlmsgerr error{};
    std::memcpy(&error, reply + NLMSG_HDRLEN, sizeof error);
    if (error.error == -ENOENT) return SocketLife::kGone;
    return Err(IoError{-error.error, "SOCK_DIAG_BY_FAMILY"});
  }
  if (answer.nlmsg_type != SOCK_DIAG_BY_FAMILY || static_cast<size_t>(n) < NLMSG_HDRLEN + sizeof(inet_diag_msg)) {
    return Err(IoError{EPROTO, "SOCK_DIAG_BY_FAMILY reply"});
  }
  inet_diag_msg found{};
  std::memcpy(&found, reply + NLMSG_HDRLEN, sizeof found);
  // The exact lookup falls back to the listener: only this 4-tuple counts.
  if (found.id.idiag_dport != htons(remote.port) || found.id.idiag_dst[0] != htonl(remote.addr.value)) {
    return SocketLife::kGone;
  }
  // A minisock (timer 3: the TIME_WAIT timer) in substate FIN_WAIT2 still
  // waits for the client's FIN; in TIME_WAIT the connection is over.
  if (found.idiag_state == kTcpTimeWait || found.idiag_state == kTcpClose || found.idiag_state == kTcpListen) {
    return SocketLife::kGone;
  }
  return found.idiag_state == kTcpEstablished ? SocketLife::kOpen : SocketLife::kClosing;
}

}  // namespace hl::io
