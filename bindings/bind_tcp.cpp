// handofflab._core, tcp part: sequence numbers, segment rewrites, the connection translator.
#include <pybind11/operators.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <functional>
#include <string>

#include "bind_common.h"
#include "net/tcp_packet.h"
#include "tcp/seq.h"
#include "tcp/translator.h"

namespace hl::bind {

namespace {

void bind_seq(py::module_& m) {
  py::class_<tcp::SeqOffset>(m, "SeqOffset", "An amount added to sequence numbers modulo 2**32.")
      .def(py::init([](uint32_t delta) { return tcp::SeqOffset{delta}; }), py::arg("delta") = 0)
      .def_readonly("delta", &tcp::SeqOffset::delta)
      .def(-py::self)
      .def(py::self + py::self)
      .def(py::self == py::self)
      .def(py::self != py::self)
      .def("__hash__", [](tcp::SeqOffset o) { return std::hash<uint32_t>{}(o.delta); })
      .def("__repr__", [](tcp::SeqOffset o) { return "SeqOffset(" + std::to_string(o.delta) + ")"; });
  py::implicitly_convertible<py::int_, tcp::SeqOffset>();

  // No < or >: sequence order is only defined within 2**31 (use seq_lt etc.).
  py::class_<tcp::SeqNum>(m, "SeqNum", "A TCP sequence number; arithmetic wraps modulo 2**32.")
      .def(py::init<uint32_t>(), py::arg("value") = 0)
      .def_property_readonly("value", &tcp::SeqNum::value)
      .def("__int__", &tcp::SeqNum::value)
      .def(py::self + tcp::SeqOffset())
      .def(py::self - tcp::SeqOffset())
      .def(py::self + uint32_t())
      .def(py::self + int32_t())
      .def(py::self - uint32_t())
      .def(py::self == py::self)
      .def(py::self != py::self)
      .def("__hash__", [](tcp::SeqNum s) { return std::hash<uint32_t>{}(s.value()); })
      .def("__repr__", [](tcp::SeqNum s) { return "SeqNum(" + std::to_string(s.value()) + ")"; });
  py::implicitly_convertible<py::int_, tcp::SeqNum>();

  m.def("seq_diff", &tcp::seq_diff, py::arg("a"), py::arg("b"), "Signed distance a - b.");
  m.def("seq_lt", &tcp::seq_lt, py::arg("a"), py::arg("b"));
  m.def("seq_le", &tcp::seq_le, py::arg("a"), py::arg("b"));
  m.def("seq_gt", &tcp::seq_gt, py::arg("a"), py::arg("b"));
  m.def("seq_ge", &tcp::seq_ge, py::arg("a"), py::arg("b"));
  m.def("seq_in_window", &tcp::seq_in_window, py::arg("s"), py::arg("lo"), py::arg("hi"),
        "True when lo <= s < hi in sequence space.");
  m.def(
      "offset_between", [](tcp::SeqNum from, tcp::SeqNum to) { return offset_between(from, to); },
      py::arg("from_"), py::arg("to"), "The offset with from_ + offset == to.");
}

void bind_translator(py::module_& m) {
  m.def("rescale_window", &tcp::rescale_window, py::arg("value"), py::arg("from_shift"),
        py::arg("to_shift"), "Converts a window field between window-scale shifts.");

  py::class_<tcp::SegmentRewrite>(m, "SegmentRewrite", "How the segments of one direction are rewritten.")
      .def(py::init<>())
      .def_readwrite("seq", &tcp::SegmentRewrite::seq)
      .def_readwrite("ack", &tcp::SegmentRewrite::ack)
      .def_readwrite("tsval", &tcp::SegmentRewrite::tsval)
      .def_readwrite("tsecr", &tcp::SegmentRewrite::tsecr)
      .def_readwrite("wscale_from", &tcp::SegmentRewrite::wscale_from)
      .def_readwrite("wscale_to", &tcp::SegmentRewrite::wscale_to)
      .def_readwrite("src_addr", &tcp::SegmentRewrite::src_addr)
      .def_readwrite("dst_addr", &tcp::SegmentRewrite::dst_addr)
      .def_readwrite("src_port", &tcp::SegmentRewrite::src_port)
      .def_readwrite("dst_port", &tcp::SegmentRewrite::dst_port)
      .def("inverse", &tcp::SegmentRewrite::inverse, py::arg("original_src"), py::arg("original_dst"));

  m.def(
      "apply_rewrite",
      [](Packet& p, const tcp::SegmentRewrite& rw, net::ChecksumState state) {
        tcp::apply_rewrite(p.view(), rw, state);
      },
      py::arg("packet"), py::arg("rewrite"), py::arg("state") = net::ChecksumState::Full,
      "Rewrites the packet in place.");

  py::class_<tcp::ConnectionParams>(m, "ConnectionParams", "What the engine knows about a handed-off connection.")
      .def(py::init<>())
      .def_readwrite("client_isn", &tcp::ConnectionParams::client_isn)
      .def_readwrite("frontend_isn", &tcp::ConnectionParams::frontend_isn)
      .def_readwrite("backend_isn", &tcp::ConnectionParams::backend_isn)
      .def_readwrite("timestamps", &tcp::ConnectionParams::timestamps)
      .def_readwrite("frontend_ts_base", &tcp::ConnectionParams::frontend_ts_base)
      .def_readwrite("backend_ts_base", &tcp::ConnectionParams::backend_ts_base)
      .def_readwrite("client_wscale", &tcp::ConnectionParams::client_wscale)
      .def_readwrite("client_wscale_at_backend", &tcp::ConnectionParams::client_wscale_at_backend)
      .def_readwrite("frontend_wscale", &tcp::ConnectionParams::frontend_wscale)
      .def_readwrite("backend_wscale", &tcp::ConnectionParams::backend_wscale)
      .def_readwrite("vip", &tcp::ConnectionParams::vip)
      .def_readwrite("backend", &tcp::ConnectionParams::backend);

  py::class_<tcp::Translator>(m, "Translator", "Both directions of one connection's translation.")
      .def(py::init<const tcp::ConnectionParams&>(), py::arg("params"))
      .def(
          "to_client",
          [](const tcp::Translator& t, Packet& p, net::ChecksumState state) { t.to_client(p.view(), state); },
          py::arg("packet"), py::arg("state") = net::ChecksumState::Full,
          "Rewrites a back-end -> client packet in place.")
      .def(
          "to_backend",
          [](const tcp::Translator& t, Packet& p, net::ChecksumState state) { t.to_backend(p.view(), state); },
          py::arg("packet"), py::arg("state") = net::ChecksumState::Full,
          "Rewrites a client -> back-end packet in place.")
      // Copies: the translator's rewrites are not to be edited in place.
      .def_property_readonly("client_bound", [](const tcp::Translator& t) { return t.client_bound(); })
      .def_property_readonly("backend_bound", [](const tcp::Translator& t) { return t.backend_bound(); })
      .def_property_readonly("seq_offset", &tcp::Translator::seq_offset)
      .def_property_readonly("ts_offset", &tcp::Translator::ts_offset);
}

}  // namespace

void init_tcp(py::module_& m) {
  bind_seq(m);
  bind_translator(m);
}

}  // namespace hl::bind
