// handofflab._core: module definition; each bind_*.cpp adds one core header.
#include <pybind11/pybind11.h>

namespace py = pybind11;

PYBIND11_MODULE(_core, m) {
  m.doc() = "handofflab engine core (packets, TCP translation, HTTP parsing, dispatch)";
  m.attr("__version__") = HANDOFFLAB_VERSION;
}
