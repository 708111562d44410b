// TimeWaitKiller: one SOCK_DESTROY request per call (see time_wait.h).
#include "bpf/time_wait.h"

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

namespace hl::bpf {
namespace {

constexpr unsigned kTcpTimeWait = 6;  // TCP_TIME_WAIT of the kernel's state enum

}  // namespace

TimeWaitKiller::TimeWaitKiller() {
  fd_ = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "socket(NETLINK_SOCK_DIAG)");
  timeval timeout{1, 0};  // the kernel answers at once; never hang the caller
  setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
}

TimeWaitKiller::~TimeWaitKiller() {
  if (fd_ >= 0) close(fd_);
}

namespace {

// One request about the exact socket local <-> remote (host byte order).
struct DiagRequest {
  nlmsghdr header;
  inet_diag_req_v2 req;
};

DiagRequest make_request(uint16_t type, net::Endpoint local, net::Endpoint remote,
                         const uint32_t cookie[2]) {
  DiagRequest msg{};
  msg.header.nlmsg_len = sizeof msg;
  msg.header.nlmsg_type = type;
  msg.header.nlmsg_flags = NLM_F_REQUEST | (type == SOCK_DESTROY ? NLM_F_ACK : 0);
  msg.req.sdiag_family = AF_INET;
  msg.req.sdiag_protocol = IPPROTO_TCP;
  msg.req.idiag_states = 1u << kTcpTimeWait;
  msg.req.id.idiag_sport = htons(local.port);
  msg.req.id.idiag_dport = htons(remote.port);
  msg.req.id.idiag_src[0] = htonl(local.addr.value);
  msg.req.id.idiag_dst[0] = htonl(remote.addr.value);
  msg.req.id.idiag_cookie[0] = cookie[0];
  msg.req.id.idiag_cookie[1] = cookie[1];
  return msg;
}

}  // namespace

Result<bool, io::IoError> TimeWaitKiller::destroy(net::Endpoint local, net::Endpoint remote) {
  // The kernel's exact lookup falls back to the listener and ignores the state
  // mask, and SOCK_DESTROY would kill whatever it finds: ask first, and destroy
  // only a TIME_WAIT socket of exactly this 4-tuple, named by its cookie.
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  alignas(nlmsghdr) char reply[1024];
  auto exchange = [&](const DiagRequest& msg, const char* what) -> Result<ssize_t, io::IoError> {
    if (sendto(fd_, &msg, sizeof msg, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) < 0) {
      return Err(io::IoError{errno, what});
    }
    const ssize_t n = recv(fd_, reply, sizeof reply, 0);
    if (n < static_cast<ssize_t>(sizeof(nlmsghdr))) return Err(io::IoError{n < 0 ? errno : EPROTO, what});
    return n;
  };
  auto error_of = [&]() {
    nlmsgerr error{};
    std::memcpy(&error, reply + NLMSG_HDRLEN, sizeof error);
    return error.error;
  };

  const uint32_t no_cookie[2] = {INET_DIAG_NOCOOKIE, INET_DIAG_NOCOOKIE};
  auto got = exchange(make_request(SOCK_DIAG_BY_FAMILY, local, remote, no_cookie),
                      "SOCK_DIAG_BY_FAMILY");
  if (!got.ok()) return Err(got.error());
  nlmsghdr answer{};
  std::memcpy(&answer, reply, sizeof answer);
  if (answer.nlmsg_type == NLMSG_ERROR) {
    const int err = error_of();
    if (err == -ENOENT) return false;
    return Err(io::IoError{-err, "SOCK_DIAG_BY_FAMILY"});
  }
  if (answer.nlmsg_type != SOCK_DIAG_BY_FAMILY ||
      static_cast<size_t>(got.value()) < NLMSG_HDRLEN + sizeof(inet_diag_msg)) {
    return Err(io::IoError{EPROTO, "SOCK_DIAG_BY_FAMILY reply"});
  }
  inet_diag_msg found{};
  std::memcpy(&found, reply + NLMSG_HDRLEN, sizeof found);
  if (found.idiag_state != kTcpTimeWait || found.id.idiag_dport != htons(remote.port) ||
      found.id.idiag_dst[0] != htonl(remote.addr.value)) {
    return false;  // a live socket or the listener: never ours to destroy
  }

  auto destroyed = exchange(make_request(SOCK_DESTROY, local, remote, found.id.idiag_cookie),
                            "SOCK_DESTROY");
  if (!destroyed.ok()) return Err(destroyed.error());
  std::memcpy(&answer, reply, sizeof answer);
  if (answer.nlmsg_type != NLMSG_ERROR) return Err(io::IoError{EPROTO, "SOCK_DESTROY reply"});
  const int err = error_of();
  if (err == 0) return true;
  if (err == -ENOENT) return false;  // expired meanwhile
  return Err(io::IoError{-err, "SOCK_DESTROY"});
}

}  // namespace hl::bpf
