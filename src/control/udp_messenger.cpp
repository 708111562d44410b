#include "control/udp_messenger.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <string>
#include <system_error>

namespace hl::control {
namespace {

sockaddr_in make_sockaddr(net::Ipv4Addr addr, uint16_t port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(addr.value);
  sa.sin_port = htons(port);
  return sa;
}

uint64_t monotonic_ms() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1'000'000;
}

// Room for the largest frame the codec accepts, and one byte more to see truncation.
constexpr size_t kBufferBytes = control::kHeaderLen + control::kMaxBodyLen + 1;

}  // namespace

UdpMessenger::UdpMessenger(net::Ipv4Addr bind_addr, uint16_t bind_port, uint16_t peer_port)
    : peer_port_(peer_port), buffer_(kBufferBytes) {
  fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "control socket");
  const int one = 1;
  const int buf = kDefaultBufBytes;
  // Best effort: the kernel caps the sizes at rmem_max / wmem_max.
  (void)::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  (void)::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
  (void)::setsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
  const sockaddr_in sa = make_sockaddr(bind_addr, bind_port);
  if (::bind(fd_, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0) {
    const int err = errno;
    ::close(fd_);
    fd_ = -1;
    throw std::system_error(err, std::generic_category(),
                            "control socket: bind " + bind_addr.to_string() + ":" + std::to_string(bind_port));
  }
}

UdpMessenger::~UdpMessenger() {
  if (fd_ >= 0) ::close(fd_);
}

uint16_t UdpMessenger::local_port() const {
  sockaddr_in sa{};
  socklen_t len = sizeof sa;
  if (::getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &len) != 0) return 0;
  return ntohs(sa.sin_port);
}

bool UdpMessenger::send(net::Ipv4Addr to, const control::Message& message) {
  std::vector<uint8_t> frame = control::encode(message);
  if (auth_) {
    auto sealed = auth_->seal(frame);
    if (!sealed.ok()) {
      ++counters_.send_errors;
      return false;
    }
    frame = std::move(*sealed);
  }
  const sockaddr_in sa = make_sockaddr(to, peer_port_);
  const ssize_t n = ::sendto(fd_, frame.data(), frame.size(), MSG_DONTWAIT, reinterpret_cast<const sockaddr*>(&sa),
                             sizeof sa);
  if (n < 0 || static_cast<size_t>(n) != frame.size()) {
    ++counters_.send_errors;
    return false;
  }
  ++counters_.sent;
  return true;
}

size_t UdpMessenger::poll_once(const Handler& handler) {
  size_t delivered = 0;
  for (;;) {
    sockaddr_in from{};
    socklen_t from_len = sizeof from;
    const ssize_t n = ::recvfrom(fd_, buffer_.data(), buffer_.size(), MSG_DONTWAIT | MSG_TRUNC,
                                 reinterpret_cast<sockaddr*>(&from), &from_len);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) ++counters_.recv_errors;
      return delivered;
    }
    const auto len = static_cast<size_t>(n);
    if (len > buffer_.size() || from_len < sizeof from || from.sin_family != AF_INET) {
      ++counters_.decode_errors;  // truncated (larger than any valid frame) or not IPv4
      continue;
    }
    std::span<const uint8_t> datagram(buffer_.data(), len);
    std::vector<uint8_t> inner;
    if (auth_) {
      auto opened = auth_->open(datagram);
      if (!opened.ok()) {
        ++counters_.auth_refused;
        refusal_log_.log(monotonic_ms(), "control message from " + net::Ipv4Addr{ntohl(from.sin_addr.s_addr)}.to_string() +
                                          " refused: " + control::to_string(opened.error()));
        continue;
      }
      inner = std::move(*opened);
      datagram = inner;
    }
    auto decoded = control::decode(datagram);
    if (!decoded.ok()) {
      ++counters_.decode_errors;
      refusal_log_.log(monotonic_ms(), "an undecodable control message from " +
                                           net::Ipv4Addr{ntohl(from.sin_addr.s_addr)}.to_string() + " (" +
                                           control::describe_undecodable(datagram, decoded.error()) + "); dropped");
      continue;
    }
    ++counters_.received;
    ++delivered;
    handler(net::Ipv4Addr{ntohl(from.sin_addr.s_addr)}, *decoded);
  }
}

}  // namespace hl::control
