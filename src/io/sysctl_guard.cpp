#include "io/sysctl_guard.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>

namespace hl::io {

std::string sysctl_path(const std::string& key, const std::string& root) {
  if (key.empty() || key.find("..") != std::string::npos || key.front() == '.' || key.front() == '/') {
    throw std::runtime_error("bad sysctl name '" + key + "'");
  }
  std::string path = root + "/";
  for (char ch : key) path += (ch == '.') ? '/' : ch;
  return path;
}

std::string read_sysctl(const std::string& key, const std::string& root) {
  std::string path = sysctl_path(key, root);
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path + ": " + std::strerror(errno));
  std::stringstream text;
  text << in.rdbuf();
  std::string v = text.str();
  while (!v.empty() && (v.back() == '\n' || v.back() == ' ')) v.pop_back();
  return v;
}

void write_sysctl(const std::string& key, const std::string& value, const std::string& root) {
  std::string path = sysctl_path(key, root);
  std::ofstream out(path);
  out << value << '\n';
  out.flush();
  if (!out) throw std::runtime_error("cannot write '" + value + "' to " + path + ": " + std::strerror(errno));
}

SysctlGuard::SysctlGuard(std::string key, const std::string& value, std::string root)
    : key_(std::move(key)), root_(std::move(root)), old_(read_sysctl(key_, root_)) {
  write_sysctl(key_, value, root_);
}

SysctlGuard::~SysctlGuard() { restore(); }

bool SysctlGuard::restore() {
  if (!active_) return true;
  active_ = false;
  try {
    write_sysctl(key_, old_, root_);
    return true;
  } catch (const std::exception& e) {
    std::cerr << "handoff: restoring sysctl " << key_ << ": " << e.what() << '\n';
    return false;
  }
}

}  // namespace hl::io
