// handofflab._core, http part: the incremental request-head parser and its results.
#include <pybind11/operators.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "bind_common.h"
#include "http/http_error.h"
#include "http/request_head.h"
#include "http/request_parser.h"

namespace hl::bind {

namespace {

void bind_enums(py::module_& m) {
  py::enum_<http::Method>(m, "Method")
      .value("Get", http::Method::Get)
      .value("Head", http::Method::Head)
      .value("Post", http::Method::Post)
      .value("Put", http::Method::Put)
      .value("Delete", http::Method::Delete)
      .value("Options", http::Method::Options)
      .value("Other", http::Method::Other);

  py::enum_<http::HttpVersion>(m, "HttpVersion")
      .value("Http10", http::HttpVersion::Http10)
      .value("Http11", http::HttpVersion::Http11);

  py::enum_<http::ParseStatus>(m, "ParseStatus")
      .value("Incomplete", http::ParseStatus::Incomplete)
      .value("Complete", http::ParseStatus::Complete)
      .value("Error", http::ParseStatus::Error);

  py::enum_<http::HttpError>(m, "HttpError")
      .value("None_", http::HttpError::None)
      .value("HeadTooLarge", http::HttpError::HeadTooLarge)
      .value("TooManyHeaders", http::HttpError::TooManyHeaders)
      .value("TargetTooLong", http::HttpError::TargetTooLong)
      .value("NonHttp", http::HttpError::NonHttp)
      .value("BadRequestLine", http::HttpError::BadRequestLine)
      .value("BadMethod", http::HttpError::BadMethod)
      .value("BadVersion", http::HttpError::BadVersion)
      .value("BadTarget", http::HttpError::BadTarget)
      .value("BadHeaderLine", http::HttpError::BadHeaderLine)
      .value("DuplicateHost", http::HttpError::DuplicateHost)
      .value("MissingHost", http::HttpError::MissingHost)
      .value("BadHost", http::HttpError::BadHost)
      .value("BadContentLength", http::HttpError::BadContentLength)
      .value("ServiceUnavailable", http::HttpError::ServiceUnavailable);

  m.def("status_code", &http::status_code, py::arg("error"),
        "The status code to answer with (400, 414, 431 or 505); 0 for HttpError.None_.");
}

void bind_head(py::module_& m) {
  using H = http::RequestHead;
  py::class_<H>(m, "RequestHead", "A parsed HTTP/1.x request head (read-only).")
      .def_readonly("method", &H::method)
      .def_readonly("method_kind", &H::method_kind)
      .def_readonly("target", &H::target)
      .def_readonly("path", &H::path)
      .def_readonly("query", &H::query)
      .def_readonly("version", &H::version)
      .def_readonly("host", &H::host)
      .def_readonly("port", &H::port)
      .def_readonly("cookie", &H::cookie)
      .def_readonly("keep_alive", &H::keep_alive)
      .def_readonly("content_length", &H::content_length)
      .def_readonly("transfer_encoding", &H::transfer_encoding)
      .def_readonly("header_count", &H::header_count)
      .def(
          "cookie_value",
          [](const H& h, std::string_view name) -> std::optional<std::string> {
            const auto value = h.cookie_value(name);
            if (!value) return std::nullopt;
            return std::string(*value);
          },
          py::arg("name"), "The value of cookie `name`, or None.")
      .def(py::self == py::self)
      .def(py::self != py::self)
      .def("__repr__", [](const H& h) {
        return "RequestHead(" + h.method + " " + h.target + ", host='" + h.host + "')";
      });
}

void bind_parser(py::module_& m) {
  using L = http::Limits;
  py::class_<L>(m, "Limits", "Request-head size limits.")
      .def(py::init([](std::size_t max_head_bytes, std::size_t max_headers, std::size_t max_target) {
             return L{max_head_bytes, max_headers, max_target};
           }),
           py::arg("max_head_bytes") = L::kDefaultMaxHeadBytes,
           py::arg("max_headers") = L::kDefaultMaxHeaders, py::arg("max_target") = L::kDefaultMaxTarget)
      .def_readwrite("max_head_bytes", &L::max_head_bytes)
      .def_readwrite("max_headers", &L::max_headers)
      .def_readwrite("max_target", &L::max_target);

  using P = http::RequestHeadParser;
  py::class_<P>(m, "RequestHeadParser", "Incremental HTTP/1.x request-head parser.")
      .def(py::init<L>(), py::arg("limits") = L{})
      .def(
          "feed", [](P& p, const py::bytes& data) { return p.feed(byte_span(data)); }, py::arg("data"),
          "Consumes bytes up to the end of the head (or the error); returns the status.")
      .def_property_readonly("status", &P::status)
      // A copy, so that it survives reset().
      .def_property_readonly("head", [](const P& p) { return p.head(); })
      .def_property_readonly("error", &P::error)
      .def_property_readonly("head_length", &P::head_length)
      .def_property_readonly("last_consumed", &P::last_consumed)
      .def_property_readonly("limits", [](const P& p) { return p.limits(); })
      .def("reset", &P::reset);
}

}  // namespace

void init_http(py::module_& m) {
  bind_enums(m);
  bind_head(m);
  bind_parser(m);
}

}  // namespace hl::bind
