// handofflab._core, dispatch part: the content map, policies and the dispatcher.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "bind_common.h"
#include "dispatch/backend_id.h"
#include "dispatch/content_map.h"
#include "dispatch/dispatcher.h"
#include "dispatch/policy.h"

namespace hl::bind {

namespace {

std::vector<dispatch::BackendId> id_list(std::span<const dispatch::BackendId> ids) {
  return {ids.begin(), ids.end()};
}

std::vector<std::string> name_list(const dispatch::ContentMap& map,
                                   std::span<const dispatch::BackendId> ids) {
  std::vector<std::string> names;
  names.reserve(ids.size());
  for (const dispatch::BackendId id : ids) names.push_back(map.backend_name(id));
  return names;
}

void bind_content_map(py::module_& m) {
  using C = dispatch::ContentMap;
  py::class_<C>(m, "ContentMap", "Which back-ends own which document; raises ContentMapError.")
      .def(py::init<>())
      .def_static("parse", &C::parse, py::arg("text"), "Parses content map text into a new map.")
      .def_static("load", &C::load, py::arg("path"), "Reads and parses a content map file.")
      .def("add_backend", &C::add_backend, py::arg("name"), "Registers a back-end name; returns its id.")
      .def("add_text", &C::add_text, py::arg("text"))
      .def(
          "add_document",
          [](C& c, std::string_view path, const std::vector<std::string>& owners) {
            c.add_document(path, owners);
          },
          py::arg("path"), py::arg("owners"))
      .def(
          "set_default", [](C& c, const std::vector<std::string>& owners) { c.set_default(owners); },
          py::arg("owners"))
      .def(
          "owners", [](const C& c, std::string_view path) { return name_list(c, c.owners(path)); },
          py::arg("path"), "Owner names of `path` (the default set for unknown paths).")
      .def(
          "owner_ids", [](const C& c, std::string_view path) { return id_list(c.owners(path)); },
          py::arg("path"), "Owner ids of `path` (the default set for unknown paths).")
      .def(
          "document_owners",
          [](const C& c, std::string_view path) { return name_list(c, c.document_owners(path)); },
          py::arg("path"), "Owner names of `path` only if it is a known document.")
      .def_property_readonly("default_owners",
                             [](const C& c) { return name_list(c, c.default_owners()); })
      .def("contains", &C::contains, py::arg("path"))
      .def("__contains__", &C::contains, py::arg("path"))
      .def("backend_id", &C::backend_id, py::arg("name"))
      .def("backend_name", &C::backend_name, py::arg("id"))
      .def_property_readonly("backend_names", &C::backend_names)
      .def_property_readonly("backend_count", &C::backend_count)
      .def_property_readonly("document_count", &C::document_count)
      .def("__len__", &C::document_count);
}

void bind_dispatcher(py::module_& m) {
  m.def(
      "policy_names",
      [] {
        std::vector<std::string> names;
        for (const std::string_view name : dispatch::policy_names()) names.emplace_back(name);
        return names;
      },
      "The names Dispatcher accepts as a policy.");
  m.def(
      "stable_hash",
      [](const py::bytes& data, uint64_t seed) { return dispatch::stable_hash(byte_span(data), seed); },
      py::arg("data"), py::arg("seed") = 0, "Deterministic 64-bit hash (same on every platform).");

  using Ctx = dispatch::DispatchContext;
  py::class_<Ctx>(m, "DispatchContext", "What a policy may know about the connection and cluster.")
      .def(py::init([](uint32_t client_addr, uint16_t client_port, std::vector<uint32_t> active) {
             Ctx ctx;
             ctx.client_addr = client_addr;
             ctx.client_port = client_port;
             ctx.active = std::move(active);
             return ctx;
           }),
           py::arg("client_addr") = 0, py::arg("client_port") = 0,
           py::arg("active") = std::vector<uint32_t>{})
      .def_readwrite("client_addr", &Ctx::client_addr)
      .def_readwrite("client_port", &Ctx::client_port)
      .def_readwrite("active", &Ctx::active)
      .def_readwrite("down", &Ctx::down);

  py::enum_<dispatch::DispatchStatus>(m, "DispatchStatus")
      .value("Document", dispatch::DispatchStatus::Document)
      .value("Default", dispatch::DispatchStatus::Default)
      .value("NotFound", dispatch::DispatchStatus::NotFound)
      .value("Unavailable", dispatch::DispatchStatus::Unavailable);

  using R = dispatch::DispatchResult;
  py::class_<R>(m, "DispatchResult", "The dispatcher's decision for one request.")
      .def_readonly("status", &R::status)
      .def_readonly("backend", &R::backend)
      .def_readonly("by_cookie", &R::by_cookie)
      .def_property_readonly("found", &R::found)
      .def("__eq__", [](const R& a, const R& b) { return a == b; });

  using D = dispatch::Dispatcher;
  py::class_<D>(m, "Dispatcher", "Request head -> back-end, from a content map and a policy.")
      .def(py::init([](const dispatch::ContentMap& map, std::string_view policy,
                       std::string affinity_cookie) {
             return D(map, policy, dispatch::DispatcherOptions{std::move(affinity_cookie)});
           }),
           py::arg("map"), py::arg("policy") = "first", py::arg("affinity_cookie") = "")
      .def("dispatch", &D::dispatch, py::arg("head"), py::arg("ctx") = Ctx{},
           "Chooses the back-end for the head's path.")
      // A copy: the dispatcher's map is fixed at setup.
      .def_property_readonly("map", [](const D& d) { return d.map(); })
      .def_property_readonly("policy", [](const D& d) { return std::string(d.policy().name()); })
      .def_property_readonly("affinity_cookie", [](const D& d) { return d.options().affinity_cookie; });
}

}  // namespace

void init_dispatch(py::module_& m) {
  bind_content_map(m);
  bind_dispatcher(m);
}

}  // namespace hl::bind
