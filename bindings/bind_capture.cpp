// handofflab._core.PcapCapture: the engine's libpcap capture (io/pcap_capture.h)
// for packet traces of a node (handofflab.capture): an interface, a BPF
// filter, a snap length and a size cap per file.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <memory>
#include <string>

#include "bind_common.h"
#include "io/pcap_capture.h"

namespace hl::bind {

void init_capture(py::module_& m) {
  py::class_<io::PcapCapture>(m, "PcapCapture",
                              "A running libpcap capture of one interface into a pcap file (Wireshark-readable), "
                              "on its own thread: packets past max_bytes (the file's size cap; 0: none) are "
                              "counted in over_cap, not written. RuntimeError with libpcap's message if the "
                              "interface, the filter or the file cannot be opened.")
      .def(py::init([](const std::string& interface, const std::string& output_path, const std::string& filter,
                       int snaplen, std::uint64_t max_bytes) {
             return std::make_unique<io::PcapCapture>(io::PcapConfig{interface, filter, output_path, snaplen, max_bytes});
           }),
           py::arg("interface"), py::arg("output_path"), py::arg("filter") = "", py::arg("snaplen") = 262144,
           py::arg("max_bytes") = 0)
      .def("stop", &io::PcapCapture::stop, py::call_guard<py::gil_scoped_release>(),
           "Stops the capture and closes the file (idempotent).")
      .def_property_readonly("packets", &io::PcapCapture::packets, "packets written")
      .def_property_readonly("bytes", &io::PcapCapture::bytes, "bytes written (the file's size)")
      .def_property_readonly("over_cap", &io::PcapCapture::over_cap, "packets not written: the file was full")
      .def_property_readonly("kernel_dropped", &io::PcapCapture::kernel_dropped,
                             "packets the kernel dropped before libpcap read them (known after stop())");
}

}  // namespace hl::bind
