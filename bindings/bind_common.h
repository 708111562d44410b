// Shared by the bind_*.cpp files: the init_<name> entry points module.cpp calls,
// the binding-level exceptions module.cpp translates, and bytes <-> span adapters.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "net/tcp_options.h"
#include "net/tcp_packet.h"

namespace hl::bind {

namespace py = pybind11;

void init_net(py::module_& m);
void init_tcp(py::module_& m);
void init_http(py::module_& m);
void init_dispatch(py::module_& m);
void init_engine(py::module_& m);
void init_capture(py::module_& m);

// A buffer that is not an IPv4/TCP packet; module.cpp turns it into PacketError.
class PacketParseError : public std::invalid_argument {
 public:
  explicit PacketParseError(net::ParseError error)
      : std::invalid_argument(net::to_string(error)), error_(error) {}
  net::ParseError error() const { return error_; }

 private:
  net::ParseError error_;
};

// A malformed TCP options region; module.cpp turns it into TcpOptionsError.
class OptionParseError : public std::invalid_argument {
 public:
  explicit OptionParseError(net::OptionError error)
      : std::invalid_argument(net::to_string(error)), error_(error) {}
  net::OptionError error() const { return error_; }

 private:
  net::OptionError error_;
};

// The bytes of a Python bytes object (valid while the object lives).
inline std::span<const uint8_t> byte_span(const py::bytes& data) {
  const std::string_view view = data;
  return {reinterpret_cast<const uint8_t*>(view.data()), view.size()};
}

inline std::vector<uint8_t> byte_vector(const py::bytes& data) {
  const std::span<const uint8_t> view = byte_span(data);
  return {view.begin(), view.end()};
}

inline py::bytes to_bytes(std::span<const uint8_t> data) {
  return {reinterpret_cast<const char*>(data.data()), data.size()};
}

// The Python Packet: net::TcpPacket is a view, so this owns the bytes it views.
// Setters never change the length, so the view stays valid after mutations.
class Packet {
 public:
  explicit Packet(std::vector<uint8_t> bytes) : buffer_(std::move(bytes)), view_(parse(buffer_)) {}
  // A copy views its own buffer, not the original's.
  Packet(const Packet& other) : Packet(other.buffer_) {}
  Packet& operator=(const Packet&) = delete;

  net::TcpPacket& view() { return view_; }
  const net::TcpPacket& view() const { return view_; }

 private:
  static net::TcpPacket parse(std::vector<uint8_t>& buffer) {
    auto parsed = net::parse_tcp_packet(buffer);
    if (!parsed) throw PacketParseError(parsed.error());
    return std::move(parsed).value();
  }

  std::vector<uint8_t> buffer_;
  net::TcpPacket view_;
};

}  // namespace hl::bind
