#include "io/stats_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>

namespace hl::io {

std::string json_quote(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) {
    auto u = static_cast<unsigned char>(ch);
    switch (ch) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (u < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", u);
          out += buf;
        } else {
          out += ch;
        }
    }
  }
  return out + "\"";
}

std::string format_stats_json(const StatsDoc& doc) {
  std::string out = "{";
  bool first = true;
  auto sep = [&] {
    if (!first) out += ", ";
    first = false;
  };
  for (const auto& [key, value] : doc.strings) {
    sep();
    out += json_quote(key) + ": " + json_quote(value);
  }
  for (const auto& [key, value] : doc.counters) {
    sep();
    out += json_quote(key) + ": " + std::to_string(value);
  }
  return out + "}\n";
}

bool write_stats_file(const std::string& path, const StatsDoc& doc) {
  std::string tmp = path + ".tmp";
  std::string text = format_stats_json(doc);
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  std::size_t done = 0;
  while (done < text.size()) {
    ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n < 0) {
      close(fd);
      unlink(tmp.c_str());
      return false;
    }
    done += static_cast<std::size_t>(n);
  }
  if (close(fd) < 0) {
    unlink(tmp.c_str());
    return false;
  }
  return std::rename(tmp.c_str(), path.c_str()) == 0;
}

}  // namespace hl::io
