// handofflab._core, engine part: class Engine runs one handoffd role
// (hl::runtime::NodeRuntime) on a background thread of this process.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "bind_common.h"
#include "runtime/options.h"
#include "runtime/runtime.h"

namespace hl::bind {

namespace {

using runtime::OptionSpec;
using runtime::OptionType;
using runtime::RuntimeConfig;

// What Python passes for an option of `type`, for messages: "an int", "a dict of str".
const char* python_type(OptionType type) {
  switch (type) {
    case OptionType::kRole:
    case OptionType::kText:
    case OptionType::kAddress: return "a str";
    case OptionType::kPath: return "a str or os.PathLike";
    case OptionType::kUint: return "an int";
    case OptionType::kBool: return "a bool";
    case OptionType::kReal: return "a float";
    case OptionType::kPeers: return "a dict of name -> IPv4 address";
    case OptionType::kSysctls: return "a dict of key -> value";
  }
  return "?";
}

bool has_default_none(const OptionSpec& spec) {
  static const RuntimeConfig defaults;
  return std::holds_alternative<std::monostate>(spec.load(defaults));
}

[[noreturn]] void wrong_type(const OptionSpec& spec, const py::handle& value) {
  throw py::type_error(std::string("Engine: ") + spec.key + " must be " + python_type(spec.type) + ", not " +
                       py::str(py::type::of(value).attr("__name__")).cast<std::string>());
}

// The texts runtime::parse_option reads for a Python value (as a command line
// would give them), or nullopt for None (the default). Throws TypeError.
std::optional<std::vector<std::string>> option_texts(const OptionSpec& spec, const py::handle& value) {
  if (value.is_none()) {
    if (has_default_none(spec)) return std::nullopt;
    wrong_type(spec, value);
  }
  switch (spec.type) {
    case OptionType::kRole:
    case OptionType::kText:
    case OptionType::kAddress:
      if (!py::isinstance<py::str>(value)) wrong_type(spec, value);
      return std::vector{value.cast<std::string>()};
    case OptionType::kPath: {
      if (!py::isinstance<py::str>(value) && !py::hasattr(value, "__fspath__")) wrong_type(spec, value);
      const py::object path = py::module_::import("os").attr("fspath")(value);
      if (!py::isinstance<py::str>(path)) wrong_type(spec, value);
      return std::vector{path.cast<std::string>()};
    }
    case OptionType::kUint:  // bool is an int, as in Python
      if (!py::isinstance<py::int_>(value)) wrong_type(spec, value);
      return std::vector{py::str(py::int_(py::reinterpret_borrow<py::object>(value))).cast<std::string>()};
    case OptionType::kBool:
      if (!py::isinstance<py::bool_>(value) && !py::isinstance<py::int_>(value)) wrong_type(spec, value);
      return std::vector<std::string>{py::cast<bool>(py::bool_(py::reinterpret_borrow<py::object>(value))) ? "on" : "off"};
    case OptionType::kReal:
      if (!py::isinstance<py::float_>(value) && !py::isinstance<py::int_>(value)) wrong_type(spec, value);
      return std::vector{py::repr(py::float_(py::reinterpret_borrow<py::object>(value))).cast<std::string>()};
    case OptionType::kPeers:
    case OptionType::kSysctls: {
      if (!py::isinstance<py::dict>(value)) wrong_type(spec, value);
      std::vector<std::string> items;
      for (const auto& [name, item] : value.cast<py::dict>()) {
        if (!py::isinstance<py::str>(name)) wrong_type(spec, value);
        if (spec.type == OptionType::kPeers && !py::isinstance<py::str>(item)) wrong_type(spec, value);
        items.push_back(name.cast<std::string>() + "=" + py::str(item).cast<std::string>());
      }
      return items;
    }
  }
  wrong_type(spec, value);
}

// RuntimeConfig from a dict of option keys (runtime/options.h); unknown keys are errors.
RuntimeConfig config_from(const py::dict& d) {
  RuntimeConfig c;
  for (const auto& [k, value] : d) {
    const auto key = k.cast<std::string>();
    const OptionSpec* spec = runtime::find_option_by_key(key);
    if (spec == nullptr) throw std::invalid_argument("Engine: unknown option '" + key + "'");
    try {
      const auto texts = option_texts(*spec, value);
      runtime::set_option(c, *spec, texts ? runtime::parse_option(*spec, *texts, key) : runtime::OptionValue{}, key);
    } catch (const runtime::OptionError& e) {
      throw std::invalid_argument(std::string("Engine: ") + e.what());
    }
  }
  runtime::validate(c);
  return c;
}

py::object to_python(const runtime::OptionValue& value) {
  struct Convert {
    py::object operator()(std::monostate) const { return py::none(); }
    py::object operator()(runtime::RuntimeRole role) const { return py::str(runtime::to_string(role)); }
    py::object operator()(const std::string& s) const { return py::str(s); }
    py::object operator()(uint64_t n) const { return py::int_(n); }
    py::object operator()(bool b) const { return py::bool_(b); }
    py::object operator()(double d) const { return py::float_(d); }
    py::object operator()(const runtime::StringPairs& pairs) const {
      py::dict out;
      for (const auto& [k, v] : pairs) out[py::str(k)] = v;
      return out;
    }
  };
  return std::visit(Convert{}, value);
}

// _core.engine_options(): the option table, one dict per option.
py::list engine_options() {
  static const RuntimeConfig defaults;
  py::list out;
  for (const auto& spec : runtime::option_table()) {
    py::list roles;
    for (const auto role : runtime::all_roles()) {
      if (spec.applies_to(role)) roles.append(runtime::to_string(role));
    }
    py::dict d;
    d["name"] = spec.name;
    d["key"] = spec.key;
    d["type"] = runtime::to_string(spec.type);
    d["default"] = to_python(spec.load(defaults));
    d["roles"] = roles;
    d["value_name"] = spec.value_name;
    d["help"] = spec.help;
    out.append(d);
  }
  return out;
}

// The Engine class docstring: what it does, then its options from the table.
std::string engine_doc() {
  std::string doc =
      "Runs one handoffd role (frontend, backend, always, rare, monitor, impair) on a background thread of\n"
      "this process, in its network namespace: NFQUEUE capture rules, sysctls, raw and control sockets.\n"
      "Everything installed is removed by stop(). Options (keywords or one dict; the keys of\n"
      "engine_options(), handoffd's options under Python names). A bad value raises ValueError, a value of\n"
      "the wrong type TypeError. Keys:";
  std::size_t line = doc.size() - doc.rfind('\n');
  const char* separator = " ";
  for (const auto& spec : runtime::option_table()) {
    const std::size_t width = std::string_view(separator).size() + std::string_view(spec.key).size();
    if (line + width > 100) {
      doc += ",\n";
      separator = "";
      line = 0;
    }
    doc += separator;
    doc += spec.key;
    line += std::string_view(separator).size() + std::string_view(spec.key).size();
    separator = ", ";
  }
  return doc + ".";
}

py::dict to_dict(const runtime::NodeRuntime::Counters& counters) {
  py::dict out;
  for (const auto& [name, value] : counters) out[py::str(name)] = value;
  return out;
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

  py::dict counters() const { return to_dict(runtime_->counters()); }

  py::tuple counters_at() const {
    const auto timed = runtime_->timed_counters();
    return py::make_tuple(timed.taken_at, to_dict(timed.counters));
  }

  // Every option's value in this engine's config, by key (None: none).
  py::dict options() const {
    py::dict out;
    for (const auto& spec : runtime::option_table()) out[py::str(spec.key)] = to_python(spec.load(runtime_->config()));
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
  m.def("engine_options", &engine_options,
        "handoffd's options, one dict each: name (command line, without dashes), key (Engine config),\n"
        "type, default (None: none), roles, value_name, help. From the table in src/runtime/options.cpp.");
  static const std::string doc = engine_doc();
  py::class_<PyEngine>(m, "Engine", doc.c_str())
      .def(py::init<const py::dict&>(), py::arg("config"))
      .def(py::init([](const py::kwargs& kwargs) { return std::make_unique<PyEngine>(kwargs); }))
      .def("start", &PyEngine::start,
           "Sets up and starts the engine thread; raises RuntimeError (after undoing its setup) on failure.")
      .def("stop", &PyEngine::stop,
           "Stops the engine thread, removes its rules, restores sysctls and writes the final stats. Idempotent.")
      .def("counters", &PyEngine::counters, "A snapshot of every counter (refreshed every 100 ms and at stop).")
      .def("counters_at", &PyEngine::counters_at,
           "(time, counters): the snapshot and the wall-clock time its reading began (time.time() units;\n"
           "0.0 before the first). Every count made before that time is in it.")
      .def_property_readonly("options", &PyEngine::options,
                             "Every option's value in this engine's config, by key (None: none).")
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
