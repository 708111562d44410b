#include "io/raw_socket.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

namespace hl::io {
namespace {

constexpr std::size_t kIpv4MinHeader = 20;

[[noreturn]] void throw_errno(const char* what) {
  throw std::system_error(errno, std::generic_category(), std::string("raw socket: ") + what);
}

}  // namespace

RawSocket::RawSocket(const RawSocketConfig& config) {
  fd_ = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
  if (fd_ < 0) throw_errno("socket(AF_INET, SOCK_RAW, IPPROTO_RAW)");
  auto fail = [this](const char* what) {
    int saved = errno;
    close(fd_);
    errno = saved;
    throw_errno(what);
  };
  if (config.mark != 0 && setsockopt(fd_, SOL_SOCKET, SO_MARK, &config.mark, sizeof config.mark) < 0) {
    fail("SO_MARK");
  }
  // SO_SNDBUFFORCE passes the wmem_max limit with CAP_NET_ADMIN; fall back to SO_SNDBUF.
  if (setsockopt(fd_, SOL_SOCKET, SO_SNDBUFFORCE, &config.sndbuf_bytes, sizeof config.sndbuf_bytes) < 0 &&
      setsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &config.sndbuf_bytes, sizeof config.sndbuf_bytes) < 0) {
    fail("SO_SNDBUF");
  }
}

RawSocket::~RawSocket() { close(fd_); }

IoStatus RawSocket::send(std::span<const std::uint8_t> ipv4_packet) {
  if (ipv4_packet.size() < kIpv4MinHeader || (ipv4_packet[0] >> 4) != 4) {
    ++counters_.errors;
    return io_fail(EINVAL, "send(raw): not an IPv4 packet");
  }
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  std::memcpy(&dst.sin_addr.s_addr, ipv4_packet.data() + 16, 4);  // already network byte order
  for (;;) {
    ssize_t n = sendto(fd_, ipv4_packet.data(), ipv4_packet.size(), 0,
                       reinterpret_cast<const sockaddr*>(&dst), sizeof dst);
    if (n >= 0) break;
    if (errno == EINTR) continue;
    ++counters_.errors;
    return io_fail(errno, "sendto(raw)");
  }
  ++counters_.sent;
  counters_.sent_bytes += ipv4_packet.size();
  return io_ok();
}

}  // namespace hl::io
