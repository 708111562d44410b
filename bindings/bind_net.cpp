// handofflab._core, net part: addresses, checksums, TCP options, packets, the builder.
#include <pybind11/operators.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "bind_common.h"
#include "net/checksum.h"
#include "net/ipv4_addr.h"
#include "net/packet_builder.h"
#include "net/tcp_options.h"
#include "net/tcp_packet.h"

namespace hl::bind {

namespace {

net::Ipv4Addr addr_from_string(const std::string& text) {
  const auto addr = net::Ipv4Addr::from_string(text);
  if (!addr) throw std::invalid_argument("not a dotted-quad IPv4 address: '" + text + "'");
  return *addr;
}

void bind_addresses(py::module_& m) {
  py::class_<net::Ipv4Addr>(m, "Ipv4Addr", "An IPv4 address; int() is its host-order value.")
      .def(py::init(&addr_from_string), py::arg("text"))
      .def(py::init([](uint32_t value) { return net::Ipv4Addr{value}; }), py::arg("value"))
      .def_readonly("value", &net::Ipv4Addr::value)
      .def("__str__", &net::Ipv4Addr::to_string)
      .def("__repr__", [](const net::Ipv4Addr& a) { return "Ipv4Addr('" + a.to_string() + "')"; })
      .def("__int__", [](const net::Ipv4Addr& a) { return a.value; })
      .def("__hash__", [](const net::Ipv4Addr& a) { return std::hash<uint32_t>{}(a.value); })
      .def(py::self == py::self)
      .def(py::self != py::self)
      .def(py::self < py::self)
      .def(py::self <= py::self)
      .def(py::self > py::self)
      .def(py::self >= py::self);
  py::implicitly_convertible<py::str, net::Ipv4Addr>();

  py::class_<net::Endpoint>(m, "Endpoint", "An IPv4 address and TCP port.")
      .def(py::init([](net::Ipv4Addr addr, uint16_t port) { return net::Endpoint{addr, port}; }),
           py::arg("addr"), py::arg("port"))
      .def_readwrite("addr", &net::Endpoint::addr)
      .def_readwrite("port", &net::Endpoint::port)
      .def("__repr__",
           [](const net::Endpoint& e) {
             return "Endpoint('" + e.addr.to_string() + "', " + std::to_string(e.port) + ")";
           })
      .def(py::self == py::self)
      .def(py::self != py::self);
}

void bind_checksums(py::module_& m) {
  m.def(
      "internet_checksum",
      [](const py::bytes& data) { return net::internet_checksum(byte_span(data)); },
      py::arg("data"), "RFC 1071 checksum of the bytes (complemented, ready to store).");
  m.def(
      "ipv4_header_checksum",
      [](const py::bytes& header) { return net::ipv4_header_checksum(byte_span(header)); },
      py::arg("header"), "Checksum for an IPv4 header; its checksum field counts as zero.");
  m.def(
      "tcp_checksum",
      [](net::Ipv4Addr src, net::Ipv4Addr dst, const py::bytes& segment) {
        return net::tcp_checksum(src, dst, byte_span(segment));
      },
      py::arg("src"), py::arg("dst"), py::arg("segment"),
      "Checksum for a TCP segment (header + payload); its checksum field counts as zero.");
  m.def("checksum_update16", &net::checksum_update16, py::arg("checksum"), py::arg("old_word"),
        py::arg("new_word"), "RFC 1624 eqn. 3 update for one changed 16-bit word.");
  m.def("checksum_update32", &net::checksum_update32, py::arg("checksum"), py::arg("old_value"),
        py::arg("new_value"), "RFC 1624 update for one changed aligned 32-bit field.");
}

void bind_options(py::module_& m) {
  py::enum_<net::OptionError>(m, "OptionError")
      .value("Truncated", net::OptionError::Truncated)
      .value("BadLength", net::OptionError::BadLength)
      .value("Duplicate", net::OptionError::Duplicate);

  py::class_<net::SackBlock>(m, "SackBlock", "A SACK block [left, right).")
      .def(py::init([](uint32_t left, uint32_t right) { return net::SackBlock{left, right}; }),
           py::arg("left"), py::arg("right"))
      .def_readwrite("left", &net::SackBlock::left)
      .def_readwrite("right", &net::SackBlock::right)
      .def("__repr__",
           [](const net::SackBlock& b) {
             return "SackBlock(" + std::to_string(b.left) + ", " + std::to_string(b.right) + ")";
           })
      .def(py::self == py::self)
      .def(py::self != py::self);

  py::class_<net::Timestamps>(m, "Timestamps", "The TCP timestamps option values.")
      .def(py::init([](uint32_t tsval, uint32_t tsecr) { return net::Timestamps{tsval, tsecr}; }),
           py::arg("tsval"), py::arg("tsecr"))
      .def_readwrite("tsval", &net::Timestamps::tsval)
      .def_readwrite("tsecr", &net::Timestamps::tsecr)
      .def("__repr__",
           [](const net::Timestamps& t) {
             return "Timestamps(" + std::to_string(t.tsval) + ", " + std::to_string(t.tsecr) + ")";
           })
      .def(py::self == py::self)
      .def(py::self != py::self);

  py::class_<net::RawOption>(m, "RawOption", "An option kind the parser does not interpret.")
      .def_readonly("kind", &net::RawOption::kind)
      .def_readonly("offset", &net::RawOption::offset)
      .def_readonly("length", &net::RawOption::length);

  py::class_<net::TcpOptions>(m, "TcpOptions", "Parsed TCP options (offsets from the options region).")
      .def_readonly("mss", &net::TcpOptions::mss)
      .def_readonly("wscale", &net::TcpOptions::wscale)
      .def_readonly("sack_permitted", &net::TcpOptions::sack_permitted)
      .def_readonly("timestamps", &net::TcpOptions::timestamps)
      .def_readonly("timestamps_offset", &net::TcpOptions::timestamps_offset)
      .def_property_readonly("sack",
                             [](const net::TcpOptions& o) {
                               return std::vector<net::SackBlock>(o.sack.begin(),
                                                                  o.sack.begin() + o.sack_count);
                             })
      .def_readonly("sack_offset", &net::TcpOptions::sack_offset)
      .def_property_readonly("unknown", [](const net::TcpOptions& o) {
        return std::vector<net::RawOption>(o.unknown.begin(), o.unknown.begin() + o.unknown_count);
      });

  m.def(
      "parse_tcp_options",
      [](const py::bytes& region) {
        auto parsed = net::parse_tcp_options(byte_span(region));
        if (!parsed) throw OptionParseError(parsed.error());
        return std::move(parsed).value();
      },
      py::arg("region"), "Parses a TCP options region; raises TcpOptionsError.");
}

void bind_packet(py::module_& m) {
  py::enum_<net::ParseError>(m, "ParseError")
      .value("TooShortForIpv4", net::ParseError::TooShortForIpv4)
      .value("NotIpv4", net::ParseError::NotIpv4)
      .value("BadIhl", net::ParseError::BadIhl)
      .value("BadTotalLength", net::ParseError::BadTotalLength)
      .value("Fragment", net::ParseError::Fragment)
      .value("NotTcp", net::ParseError::NotTcp)
      .value("TooShortForTcp", net::ParseError::TooShortForTcp)
      .value("BadDataOffset", net::ParseError::BadDataOffset)
      .value("BadOptions", net::ParseError::BadOptions);

  py::enum_<net::ChecksumState>(m, "ChecksumState")
      .value("Full", net::ChecksumState::Full)
      .value("Partial", net::ChecksumState::Partial);

  const auto view = [](auto getter) {
    return [getter](const Packet& p) { return (p.view().*getter)(); };
  };

  py::class_<Packet>(m, "Packet", "An IPv4/TCP packet owning a copy of its bytes.")
      .def(py::init([](const py::bytes& data) { return std::make_unique<Packet>(byte_vector(data)); }),
           py::arg("data"))
      .def("__copy__", [](const Packet& p) { return std::make_unique<Packet>(p); })
      .def_property_readonly("bytes", [](const Packet& p) { return to_bytes(p.view().bytes); })
      .def("__len__", [](const Packet& p) { return p.view().bytes.size(); })
      .def_property_readonly("src", view(&net::TcpPacket::src_addr))
      .def_property_readonly("dst", view(&net::TcpPacket::dst_addr))
      .def_property_readonly("ttl", view(&net::TcpPacket::ttl))
      .def_property_readonly("sport", view(&net::TcpPacket::src_port))
      .def_property_readonly("dport", view(&net::TcpPacket::dst_port))
      .def_property_readonly("seq", view(&net::TcpPacket::seq))
      .def_property_readonly("ack", view(&net::TcpPacket::ack))
      .def_property_readonly("flags", view(&net::TcpPacket::flags))
      .def_property_readonly("window", view(&net::TcpPacket::window))
      .def_property_readonly("urgent_pointer", view(&net::TcpPacket::urgent_pointer))
      .def_property_readonly("ip_checksum", view(&net::TcpPacket::ip_checksum))
      .def_property_readonly("tcp_checksum", view(&net::TcpPacket::tcp_checksum_field))
      .def_property_readonly("ip_header_len", [](const Packet& p) { return p.view().ip_header_len; })
      .def_property_readonly("tcp_header_len", [](const Packet& p) { return p.view().tcp_header_len; })
      .def_property_readonly("payload", [](const Packet& p) { return to_bytes(p.view().payload()); })
      .def_property_readonly("segment", [](const Packet& p) { return to_bytes(p.view().segment()); })
      .def_property_readonly("options", [](const Packet& p) { return p.view().options; })
      .def("has_flags", [](const Packet& p, uint8_t mask) { return p.view().has_flags(mask); },
           py::arg("mask"))
      .def("tcp_checksum_ok", view(&net::TcpPacket::tcp_checksum_ok))
      .def("ip_checksum_ok", view(&net::TcpPacket::ip_checksum_ok))
      .def("set_src", [](Packet& p, net::Ipv4Addr a) { p.view().set_src_addr(a); }, py::arg("addr"))
      .def("set_dst", [](Packet& p, net::Ipv4Addr a) { p.view().set_dst_addr(a); }, py::arg("addr"))
      .def("set_ttl", [](Packet& p, uint8_t v) { p.view().set_ttl(v); }, py::arg("ttl"))
      .def("set_sport", [](Packet& p, uint16_t v) { p.view().set_src_port(v); }, py::arg("port"))
      .def("set_dport", [](Packet& p, uint16_t v) { p.view().set_dst_port(v); }, py::arg("port"))
      .def("set_seq", [](Packet& p, uint32_t v) { p.view().set_seq(v); }, py::arg("seq"))
      .def("set_ack", [](Packet& p, uint32_t v) { p.view().set_ack(v); }, py::arg("ack"))
      .def("set_window", [](Packet& p, uint16_t v) { p.view().set_window(v); }, py::arg("window"))
      .def("set_tsval", [](Packet& p, uint32_t v) { p.view().set_tsval(v); }, py::arg("tsval"))
      .def("set_tsecr", [](Packet& p, uint32_t v) { p.view().set_tsecr(v); }, py::arg("tsecr"))
      .def(
          "set_sack_block",
          [](Packet& p, size_t i, net::SackBlock b) { p.view().set_sack_block(i, b); },
          py::arg("index"), py::arg("block"))
      .def("tcp_checksum_full", [](Packet& p) { p.view().tcp_checksum_full(); })
      .def("tcp_checksum_finalize", [](Packet& p) { p.view().tcp_checksum_finalize(); })
      .def("ip_checksum_full", [](Packet& p) { p.view().ip_checksum_full(); })
      .def("__repr__", [](const Packet& p) {
        const net::TcpPacket& v = p.view();
        return "Packet(" + v.src_addr().to_string() + ":" + std::to_string(v.src_port()) + " -> " +
               v.dst_addr().to_string() + ":" + std::to_string(v.dst_port()) +
               ", seq=" + std::to_string(v.seq()) + ", ack=" + std::to_string(v.ack()) +
               ", flags=" + std::to_string(v.flags()) + ", len=" + std::to_string(v.bytes.size()) + ")";
      });

  m.def(
      "parse_packet", [](const py::bytes& data) { return std::make_unique<Packet>(byte_vector(data)); },
      py::arg("data"), "Parses an IPv4/TCP packet (copying the bytes); raises PacketError.");
}

void bind_builder(py::module_& m) {
  m.attr("FIN") = net::tcp_flag::FIN;
  m.attr("SYN") = net::tcp_flag::SYN;
  m.attr("RST") = net::tcp_flag::RST;
  m.attr("PSH") = net::tcp_flag::PSH;
  m.attr("ACK") = net::tcp_flag::ACK;
  m.attr("URG") = net::tcp_flag::URG;
  m.attr("ECE") = net::tcp_flag::ECE;
  m.attr("CWR") = net::tcp_flag::CWR;

  py::class_<net::SynOptions>(m, "SynOptions", "Handshake options of a SYN or SYN/ACK.")
      .def(py::init([](std::optional<uint16_t> mss, std::optional<uint8_t> wscale, bool sack_permitted,
                       std::optional<net::Timestamps> timestamps) {
             return net::SynOptions{mss, wscale, sack_permitted, timestamps};
           }),
           py::arg("mss") = py::none(), py::arg("wscale") = py::none(),
           py::arg("sack_permitted") = false, py::arg("timestamps") = py::none())
      .def_readwrite("mss", &net::SynOptions::mss)
      .def_readwrite("wscale", &net::SynOptions::wscale)
      .def_readwrite("sack_permitted", &net::SynOptions::sack_permitted)
      .def_readwrite("timestamps", &net::SynOptions::timestamps);

  using B = net::PacketBuilder;
  constexpr auto self = py::return_value_policy::reference_internal;
  py::class_<B>(m, "PacketBuilder", "Fluent IPv4/TCP packet construction; build() returns bytes.")
      .def(py::init<>())
      .def("ipv4", &B::ipv4, py::arg("src"), py::arg("dst"), self)
      .def("ttl", &B::ttl, py::arg("value"), self)
      .def("ip_id", &B::ip_id, py::arg("value"), self)
      .def("tos", &B::tos, py::arg("value"), self)
      .def("dont_fragment", &B::dont_fragment, py::arg("value"), self)
      .def("tcp", &B::tcp, py::arg("src_port"), py::arg("dst_port"), self)
      .def("seq", &B::seq, py::arg("value"), self)
      .def("ack", &B::ack, py::arg("value"), self)
      .def("flags", &B::flags, py::arg("value"), self)
      .def("window", &B::window, py::arg("value"), self)
      .def("urgent", &B::urgent, py::arg("value"), self)
      .def("mss", &B::mss, py::arg("value"), self)
      .def("wscale", &B::wscale, py::arg("shift"), self)
      .def("sack_permitted", &B::sack_permitted, self)
      .def("timestamps", &B::timestamps, py::arg("tsval"), py::arg("tsecr"), self)
      .def(
          "sack",
          [](B& b, const std::vector<net::SackBlock>& blocks) -> B& { return b.sack(std::span(blocks)); },
          py::arg("blocks"), self)
      .def("syn_options", &B::syn_options, py::arg("options"), self)
      .def(
          "raw_option",
          [](B& b, uint8_t kind, const py::bytes& data) -> B& { return b.raw_option(kind, byte_span(data)); },
          py::arg("kind"), py::arg("data"), self)
      .def(
          "payload", [](B& b, const py::bytes& data) -> B& { return b.payload(byte_span(data)); },
          py::arg("data"), self)
      .def("checksum_state", &B::checksum_state, py::arg("state"), self)
      .def("build", [](const B& b) { return to_bytes(b.build()); });

  m.def(
      "make_rst",
      [](net::Endpoint from, net::Endpoint to, uint32_t seq, std::optional<uint32_t> ack) {
        return to_bytes(net::make_rst(from, to, seq, ack));
      },
      py::arg("src"), py::arg("dst"), py::arg("seq"), py::arg("ack") = py::none());
  m.def(
      "make_ack",
      [](net::Endpoint from, net::Endpoint to, uint32_t seq, uint32_t ack, uint16_t window,
         std::optional<net::Timestamps> timestamps, const py::bytes& payload) {
        return to_bytes(net::make_ack(from, to, seq, ack, window, timestamps, byte_span(payload)));
      },
      py::arg("src"), py::arg("dst"), py::arg("seq"), py::arg("ack"), py::arg("window"),
      py::arg("timestamps") = py::none(), py::arg("payload") = py::bytes());
  m.def(
      "make_synack",
      [](net::Endpoint from, net::Endpoint to, uint32_t isn, uint32_t ack, uint16_t window,
         const net::SynOptions& options) {
        return to_bytes(net::make_synack(from, to, isn, ack, window, options));
      },
      py::arg("src"), py::arg("dst"), py::arg("isn"), py::arg("ack"), py::arg("window"),
      py::arg("options") = net::SynOptions{});
}

}  // namespace

void init_net(py::module_& m) {
  bind_addresses(m);
  bind_checksums(m);
  bind_options(m);
  bind_packet(m);
  bind_builder(m);
}

}  // namespace hl::bind
