#include "io/tun_device.h"

#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

namespace hl::io {
namespace {

constexpr std::size_t kIpv4MinHeader = 20;

[[noreturn]] void throw_errno(int err, const std::string& what) {
  throw std::system_error(err, std::generic_category(), "tun device: " + what);
}

}  // namespace

TunDevice::TunDevice(const std::string& name) : name_(name) {
  if (name.empty() || name.size() >= IFNAMSIZ) throw_errno(EINVAL, "bad interface name '" + name + "'");
  fd_ = ::open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
  if (fd_ < 0) throw_errno(errno, "open /dev/net/tun");
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, name.data(), name.size());
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  int err = 0;
  std::string what;
  if (::ioctl(fd_, TUNSETIFF, &ifr) < 0) {
    err = errno;
    what = "TUNSETIFF " + name;
  } else {
    const int sock = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0 || ::ioctl(sock, SIOCGIFFLAGS, &ifr) < 0) {
      err = errno;
      what = "SIOCGIFFLAGS " + name;
    } else {
      ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
      if (::ioctl(sock, SIOCSIFFLAGS, &ifr) < 0) {
        err = errno;
        what = "bring " + name + " up";
      }
    }
    if (sock >= 0) ::close(sock);
  }
  if (err != 0) {
    ::close(fd_);
    throw_errno(err, what);
  }
}

TunDevice::~TunDevice() { ::close(fd_); }

IoStatus TunDevice::send(std::span<const std::uint8_t> ipv4_packet) {
  if (ipv4_packet.size() < kIpv4MinHeader || (ipv4_packet[0] >> 4) != 4) {
    ++counters_.errors;
    return io_fail(EINVAL, "write(tun): not an IPv4 packet");
  }
  for (;;) {
    ssize_t n = ::write(fd_, ipv4_packet.data(), ipv4_packet.size());
    if (n >= 0) break;
    if (errno == EINTR) continue;
    ++counters_.errors;
    return io_fail(errno, "write(tun)");
  }
  ++counters_.sent;
  counters_.sent_bytes += ipv4_packet.size();
  return io_ok();
}

}  // namespace hl::io
