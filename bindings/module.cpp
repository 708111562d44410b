// handofflab._core: module definition; each bind_*.cpp adds one core header area.
// C++ exceptions are translated to Python here and nowhere else.
#include <pybind11/pybind11.h>

#include <exception>
#include <utility>

#include "bind_common.h"
#include "dispatch/content_map.h"

namespace py = pybind11;

namespace {

// Raises `type` with message `what` and the given attributes set on the instance.
template <class... Attrs>
void raise(const py::object& type, const py::str& what, const Attrs&... attrs) {
  py::object instance = type(what);
  (py::setattr(instance, attrs.first, attrs.second), ...);
  PyErr_SetObject(type.ptr(), instance.ptr());
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "handofflab engine core (packets, TCP translation, HTTP parsing, dispatch)";
  m.attr("__version__") = HANDOFFLAB_VERSION;

  hl::bind::init_net(m);
  hl::bind::init_tcp(m);
  hl::bind::init_http(m);
  hl::bind::init_dispatch(m);
  hl::bind::init_engine(m);
  hl::bind::init_capture(m);

  // Python exception types (ValueError subclasses). Static: the translator
  // below outlives this function; the types live as long as the module.
  static py::exception<hl::bind::PacketParseError> packet_error(m, "PacketError", PyExc_ValueError);
  static py::exception<hl::bind::OptionParseError> options_error(m, "TcpOptionsError", PyExc_ValueError);
  static py::exception<hl::dispatch::ContentMapError> map_error(m, "ContentMapError", PyExc_ValueError);

  // std::invalid_argument (bad address, unknown policy) -> ValueError,
  // std::length_error (builder misuse) -> ValueError, std::out_of_range
  // (bad back-end id) -> IndexError: pybind11's defaults.
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const hl::bind::PacketParseError& e) {
      // "BadIhl: <description>": the message starts with the ParseError name.
      const py::object error = py::cast(e.error());
      raise(packet_error, py::str("{}: {}").format(error.attr("name"), e.what()), std::pair{"error", error});
    } catch (const hl::bind::OptionParseError& e) {
      const py::object error = py::cast(e.error());
      raise(options_error, py::str("{}: {}").format(error.attr("name"), e.what()), std::pair{"error", error});
    } catch (const hl::dispatch::ContentMapError& e) {
      raise(map_error, py::str(e.what()), std::pair{"line", py::cast(e.line())},
            std::pair{"message", py::cast(e.message())});
    }
  });
}
