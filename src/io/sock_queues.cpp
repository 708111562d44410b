// SockQueueQuery: exact sock_diag lookups of one socket's queues (see the header).
#include "io/sock_queues.h"

#include <arpa/inet.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <system_error>

namespace hl::io {
namespace {

constexpr unsigned kTcpTimeWait = 6;  // the kernel's TCP states
constexpr unsigned kTcpListen = 10;
constexpr size_t kAttrHeader = (sizeof(nlattr) + 3u) & ~size_t{3};  // NLA_HDRLEN

}  // namespace

SockQueueQuery::SockQueueQuery(net::Endpoint local) : local_(local) {
  fd_ = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "socket(NETLINK_SOCK_DIAG)");
  timeval timeout{1, 0};  // the kernel answers at once; never hang the caller
  setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
}

SockQueueQuery::~SockQueueQuery() {
  if (fd_ >= 0) close(fd_);
}

Result<std::optional<SockQueues>, IoError> SockQueueQuery::lookup(net::Endpoint remote) {
  struct {
    nlmsghdr header;
    inet_diag_req_v2 req;
  } msg{};
  msg.header.nlmsg_len = sizeof msg;
  msg.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  msg.header.nlmsg_flags = NLM_F_REQUEST;
  msg.req.sdiag_family = AF_INET;
  msg.req.sdiag_protocol = IPPROTO_TCP;
  msg.req.idiag_ext = 1u << (INET_DIAG_INFO - 1);
  msg.req.idiag_states = ~0u;
  msg.req.id.idiag_sport = htons(local_.port);
  msg.req.id.idiag_dport = htons(remote.port);
  msg.req.id.idiag_src[0] = htonl(local_.addr.value);
  msg.req.id.idiag_dst[0] = htonl(remote.addr.value);
  msg.req.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
  msg.req.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (sendto(fd_, &msg, sizeof msg, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) < 0) {
    return Err(IoError{errno, "SOCK_DIAG_BY_FAMILY"});
  }
  alignas(nlmsghdr) char reply[4096];
  const ssize_t n = recv(fd_, reply, sizeof reply, 0);
  if (n < static_cast<ssize_t>(sizeof(nlmsghdr))) return Err(IoError{n < 0 ? errno : EPROTO, "SOCK_DIAG_BY_FAMILY"});
  nlmsghdr answer{};
  std::memcpy(&answer, reply, sizeof answer);
  if (answer.nlmsg_type == NLMSG_ERROR) {
    nlmsgerr error{};
    std::memcpy(&error, reply + NLMSG_HDRLEN, sizeof error);
    if (error.error == -ENOENT) return std::optional<SockQueues>{};
    return Err(IoError{-error.error, "SOCK_DIAG_BY_FAMILY"});
  }
  const size_t len = std::min<size_t>(static_cast<size_t>(n), answer.nlmsg_len);
  if (answer.nlmsg_type != SOCK_DIAG_BY_FAMILY || len < NLMSG_HDRLEN + sizeof(inet_diag_msg)) {
    return Err(IoError{EPROTO, "SOCK_DIAG_BY_FAMILY reply"});
  }
  inet_diag_msg found{};
  std::memcpy(&found, reply + NLMSG_HDRLEN, sizeof found);
  // The exact lookup falls back to the listener: only this 4-tuple counts.
  if (found.id.idiag_dport != htons(remote.port) || found.id.idiag_dst[0] != htonl(remote.addr.value) ||
      found.idiag_state == kTcpListen || found.idiag_state == kTcpTimeWait) {
    return std::optional<SockQueues>{};
  }
  SockQueues q;
  q.state = found.idiag_state;
  q.unread = found.idiag_rqueue;
  q.unacked = found.idiag_wqueue;
  // The attributes after the message: INET_DIAG_INFO carries struct tcp_info.
  size_t at = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(inet_diag_msg));
  while (at + sizeof(nlattr) <= len) {
    nlattr attr{};
    std::memcpy(&attr, reply + at, sizeof attr);
    if (attr.nla_len < kAttrHeader || at + attr.nla_len > len) break;
    if (attr.nla_type == INET_DIAG_INFO) {
      tcp_info info{};
      // Older kernels send a shorter struct: what is missing stays 0.
      q.has_info = attr.nla_len - kAttrHeader >= offsetof(tcp_info, tcpi_bytes_received) + sizeof info.tcpi_bytes_received;
      std::memcpy(&info, reply + at + kAttrHeader, std::min<size_t>(sizeof info, attr.nla_len - kAttrHeader));
      q.unacked_segments = info.tcpi_unacked;
      q.bytes_received = info.tcpi_bytes_received;
      q.bytes_acked = info.tcpi_bytes_acked;
    }
    at += (attr.nla_len + 3u) & ~size_t{3};  // NLA_ALIGN
  }
  return std::optional<SockQueues>{q};
}

}  // namespace hl::io
