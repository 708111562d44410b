// handofflab._core, engine part: class Engine runs one handoffd role
// (hl::runtime::NodeRuntime) on a background thread of this process.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <exception>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include "bind_common.h"
#include "runtime/runtime.h"

namespace hl::bind {

namespace {

using runtime::RuntimeConfig;

template <class T>
T as_uint(const py::handle& value, const std::string& key) {
  const auto v = value.cast<long long>();
  if (v < 0 || static_cast<unsigned long long>(v) > std::numeric_limits<T>::max()) {
    throw std::invalid_argument("Engine: " + key + " = " + std::to_string(v) + " is out of range");
  }
  return static_cast<T>(v);
}

std::optional<std::string> opt_str(const py::handle& value) {
  if (value.is_none()) return std::nullopt;
  return value.cast<std::string>();
}

// RuntimeConfig from a dict of its field names; unknown keys are errors.
runtime::RuntimeConfig config_from(const py::dict& d) {
  runtime::RuntimeConfig c;
  for (const auto& [k, value] : d) {
    const auto key = k.cast<std::string>();
    if (key == "role") {
      const auto name = value.cast<std::string>();
      auto role = runtime::runtime_role_from_string(name);
      if (!role) {
        throw std::invalid_argument("Engine: unknown role '" + name + "' (frontend, backend, always, rare, monitor, impair)");
      }
      c.role = *role;
    } else if (key == "node") {
      c.node = value.cast<std::string>();
    } else if (key == "node_addr") {
      c.node_addr = opt_str(value);
    } else if (key == "vip") {
      c.vip = opt_str(value);
    } else if (key == "port") {
      c.port = as_uint<uint16_t>(value, key);
    } else if (key == "queue") {
      c.queue = as_uint<uint16_t>(value, key);
    } else if (key == "mark") {
      c.mark = as_uint<uint32_t>(value, key);
    } else if (key == "control_port") {
      c.control_port = as_uint<uint16_t>(value, key);
    } else if (key == "peers") {
      c.peers.clear();
      for (const auto& [name, addr] : value.cast<py::dict>()) {
        c.peers.emplace_back(name.cast<std::string>(), addr.cast<std::string>());
      }
    } else if (key == "content_map") {
      c.content_map = py::str(value).cast<std::string>();  // str or os.PathLike
    } else if (key == "policy") {
      c.policy = value.is_none() ? std::string() : value.cast<std::string>();
    } else if (key == "frontend") {
      c.frontend = opt_str(value);
    } else if (key == "stats_file") {
      c.stats_file = value.is_none() ? std::string() : py::str(value).cast<std::string>();
    } else if (key == "key_file") {
      c.key_file = value.is_none() ? std::string() : py::str(value).cast<std::string>();
    } else if (key == "stats_interval_ms") {
      c.stats_interval_ms = as_uint<uint32_t>(value, key);
    } else if (key == "request_timeout_ms") {
      c.request_timeout_ms = as_uint<uint32_t>(value, key);
    } else if (key == "queue_maxlen") {
      c.queue_maxlen = as_uint<uint32_t>(value, key);
    } else if (key == "rcvbuf") {
      c.rcvbuf = as_uint<uint32_t>(value, key);
    } else if (key == "gso") {
      c.gso = value.cast<bool>();
    } else if (key == "fail_open") {
      c.fail_open = value.cast<bool>();
    } else if (key == "queue_bypass") {
      c.queue_bypass = value.cast<bool>();
    } else if (key == "backend_dead_ms") {
      c.backend_dead_ms = as_uint<uint32_t>(value, key);
    } else if (key == "max_half_open") {
      c.max_half_open = as_uint<size_t>(value, key);
    } else if (key == "syn_cookies") {
      c.syn_cookies = value.cast<bool>();
    } else if (key == "fast_path") {
      c.fast_path = value.cast<bool>();
    } else if (key == "sysctls") {
      c.sysctls.clear();
      for (const auto& [name, v] : value.cast<py::dict>()) {
        c.sysctls.emplace_back(name.cast<std::string>(), py::str(v).cast<std::string>());
      }
    } else if (key == "delay_ms") {  // role impair (lab/impairer.h)
      c.impair.delay_ms = as_uint<uint32_t>(value, key);
    } else if (key == "jitter_ms") {
      c.impair.jitter_ms = as_uint<uint32_t>(value, key);
    } else if (key == "reorder_extra_ms") {
      c.impair.reorder_extra_ms = as_uint<uint32_t>(value, key);
    } else if (key == "loss") {
      c.impair.loss = value.cast<double>();
    } else if (key == "reorder") {
      c.impair.reorder = value.cast<double>();
    } else if (key == "duplicate") {
      c.impair.duplicate = value.cast<double>();
    } else if (key == "impair_seed") {
      c.impair.seed = as_uint<uint32_t>(value, key);  // 32 bits are plenty for a seed
    } else if (key == "impair_max_held") {
      c.impair.max_held = as_uint<uint32_t>(value, key);
    } else {
      throw std::invalid_argument("Engine: unknown option '" + key + "'");
    }
  }
  runtime::validate(c);
  return c;
}

class PyEngine {
 public:
  explicit PyEngine(const py::dict& config) : runtime_(std::make_unique<runtime::NodeRuntime>(config_from(config))) {}

  void start() {
    std::string error;
    {
      py::gil_scoped_release release;
      try {
        runtime_->start_thread();
      } catch (const std::exception& e) {
        error = e.what();
      }
    }
    if (!error.empty()) throw std::runtime_error(error);  // RuntimeError, whatever the cause
  }

  void stop() {
    py::gil_scoped_release release;
    runtime_->stop();
  }

  py::dict counters() const {
    py::dict out;
    for (const auto& [name, value] : runtime_->counters()) out[py::str(name)] = value;
    return out;
  }

  bool running() const { return runtime_->running(); }
  std::string role() const { return runtime::to_string(runtime_->config().role); }
  std::string node() const { return runtime_->config().node; }

 private:
  std::unique_ptr<runtime::NodeRuntime> runtime_;
};

}  // namespace

void init_engine(py::module_& m) {
  py::class_<PyEngine>(m, "Engine",
                       "Runs one handoffd role (frontend, backend or monitor) on a background thread of this\n"
                       "process, in its network namespace: NFQUEUE capture rules, sysctls, raw and UDP sockets.\n"
                       "Everything installed is removed by stop(). Options (keywords or one dict): role, node,\n"
                       "node_addr, vip, port, queue, mark, control_port, peers (dict name -> address),\n"
                       "content_map, policy, frontend, stats_file, key_file, stats_interval_ms, request_timeout_ms,\n"
                       "queue_maxlen, rcvbuf, gso, fail_open, queue_bypass, backend_dead_ms, max_half_open, syn_cookies,\n"
                       "fast_path, "
                       "sysctls (dict); role impair: delay_ms, jitter_ms, loss,\n"
                       "reorder, reorder_extra_ms, duplicate, impair_seed, impair_max_held. A bad option raises ValueError.")
      .def(py::init<const py::dict&>(), py::arg("config"))
      .def(py::init([](const py::kwargs& kwargs) { return std::make_unique<PyEngine>(kwargs); }))
      .def("start", &PyEngine::start,
           "Sets up and starts the engine thread; raises RuntimeError (after undoing its setup) on failure.")
      .def("stop", &PyEngine::stop,
           "Stops the engine thread, removes its rules, restores sysctls and writes the final stats. Idempotent.")
      .def("counters", &PyEngine::counters, "A snapshot of every counter (refreshed every 100 ms and at stop).")
      .def_property_readonly("running", &PyEngine::running)
      .def_property_readonly("role", &PyEngine::role)
      .def_property_readonly("node", &PyEngine::node)
      .def("__enter__", [](PyEngine& self) -> PyEngine& {
        self.start();
        return self;
      }, py::return_value_policy::reference)
      .def("__exit__", [](PyEngine& self, const py::args&) { self.stop(); });
}

}  // namespace hl::bind
