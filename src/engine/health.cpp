#include "engine/health.h"

#include <charconv>
#include <fstream>
#include <sstream>
#include <string>

namespace hl::engine {
namespace {

constexpr std::string_view kListenState = "0A";  // TCP_LISTEN, in /proc/net/tcp's hex

// The next whitespace-separated field of `line` from `pos`.
std::string_view next_field(std::string_view line, size_t& pos) {
  while (pos < line.size() && line[pos] == ' ') ++pos;
  const size_t start = pos;
  while (pos < line.size() && line[pos] != ' ') ++pos;
  return line.substr(start, pos - start);
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
  for (const char* file : {"/proc/self/net/tcp", "/proc/self/net/tcp6"}) {
    std::ifstream in(file);
    if (!in) continue;
    std::ostringstream text;
    text << in.rdbuf();
    if (proc_net_tcp_listening(text.str(), port)) return true;
  }
  return false;
}

}  // namespace hl::engine
