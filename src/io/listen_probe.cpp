#include "io/listen_probe.h"

#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

namespace hl::io {
namespace {

constexpr std::string_view kListenState = "0A";  // TCP_LISTEN, in /proc/net/tcp's hex

// The next whitespace-separated field of `line` from `pos`.
std::string_view next_field(std::string_view line, size_t& pos) {
  while (pos < line.size() && line[pos] == ' ') ++pos;
  const size_t start = pos;
  while (pos < line.size() && line[pos] != ' ') ++pos;
  return line.substr(start, pos - start);
}

constexpr uint32_t kTcpListen = 10;  // TCP_LISTEN in the kernel's state numbering

// Asks the kernel (NETLINK_SOCK_DIAG, what `ss -lt` uses) for the TCP listeners of
// `family` and whether one is on `port`. Only the listening hash is walked: cheap
// however many connections (TIME_WAIT included) the node holds, unlike
// /proc/net/tcp, whose every line the kernel formats. nullopt: the query failed.
std::optional<bool> diag_listening(uint8_t family, uint16_t port) {
  const int fd = ::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (fd < 0) return std::nullopt;
  struct Request {
    nlmsghdr header;
    inet_diag_req_v2 body;
  } request{};
  request.header.nlmsg_len = sizeof(request);
  request.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  request.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  request.body.sdiag_family = family;
  request.body.sdiag_protocol = IPPROTO_TCP;
  request.body.idiag_states = 1u << kTcpListen;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (::sendto(fd, &request, sizeof(request), 0, reinterpret_cast<const sockaddr*>(&kernel), sizeof(kernel)) < 0) {
    ::close(fd);
    return std::nullopt;
  }
  std::array<uint8_t, 32768> buf;
  std::optional<bool> result;
  bool found = false;
  while (!result) {
    const ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // error or end without NLMSG_DONE: failed
    size_t at = 0;
    const size_t len = static_cast<size_t>(n);
    while (!result && at + sizeof(nlmsghdr) <= len) {
      nlmsghdr header;
      std::memcpy(&header, buf.data() + at, sizeof(header));
      if (header.nlmsg_len < sizeof(nlmsghdr) || at + header.nlmsg_len > len) break;
      if (header.nlmsg_type == NLMSG_DONE) {
        result = found;
      } else if (header.nlmsg_type == NLMSG_ERROR) {
        break;
      } else if (header.nlmsg_len >= NLMSG_LENGTH(sizeof(inet_diag_msg))) {
        inet_diag_msg msg;
        std::memcpy(&msg, buf.data() + at + NLMSG_LENGTH(0), sizeof(msg));
        if (ntohs(msg.id.idiag_sport) == port) found = true;
      }
      at += NLMSG_ALIGN(header.nlmsg_len);
    }
    if (!result && at < len) break;  // malformed or an error message
  }
  ::close(fd);
  return result;
}

}  // namespace

bool proc_net_tcp_listening(std::string_view text, uint16_t port) {
  // Lines: "  sl  local_address rem_address   st ..."; local "ADDR:PORT" in hex.
  size_t line_start = 0;
  while (line_start < text.size()) {
    size_t end = text.find('\n', line_start);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(line_start, end - line_start);
    line_start = end + 1;
    size_t pos = 0;
    (void)next_field(line, pos);  // "sl" ("0:")
    const std::string_view local = next_field(line, pos);
    (void)next_field(line, pos);  // remote address
    const std::string_view state = next_field(line, pos);
    if (state != kListenState) continue;
    const size_t colon = local.rfind(':');
    if (colon == std::string_view::npos) continue;
    unsigned value = 0;
    const std::string_view hex = local.substr(colon + 1);
    const auto [ptr, ec] = std::from_chars(hex.data(), hex.data() + hex.size(), value, 16);
    if (ec == std::errc() && ptr == hex.data() + hex.size() && value == static_cast<unsigned>(port)) return true;
  }
  return false;
}

bool local_server_listening(uint16_t port) {
  const std::optional<bool> v4 = diag_listening(AF_INET, port);
  if (v4 && *v4) return true;
  const std::optional<bool> v6 = diag_listening(AF_INET6, port);
  if (v4 && v6) return *v6;
  // No sock_diag here (a kernel without inet_diag): the text interface.
  for (const char* file : {"/proc/self/net/tcp", "/proc/self/net/tcp6"}) {
    std::ifstream in(file);
    if (!in) continue;
    std::ostringstream text;
    text << in.rdbuf();
    if (proc_net_tcp_listening(text.str(), port)) return true;
  }
  return false;
}

}  // namespace hl::io
