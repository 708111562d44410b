#include "runtime/runtime.h"

#include <signal.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <mutex>
#include <stdexcept>
#include <system_error>
#include <thread>

#include "control/auth.h"
#include "io/event_loop.h"
#include "io/fast_path.h"
#include "io/nfqueue.h"
#include "io/rule_set.h"
#include "io/stats_file.h"
#include "io/sysctl_guard.h"
#include "runtime/roles/role.h"

namespace hl::runtime {
namespace {

uint64_t monotonic_ms() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000u + static_cast<uint64_t>(ts.tv_nsec) / 1000000u;
}

// What the front-end engine holds as its FastPath: the engine is built before
// the rules are installed, the nf_tables fast path after them.
class FastPathProxy final : public io::FastPath {
 public:
  io::FastPath* target = nullptr;  // null: changes are dropped (none come before the rules)
  void add(uint32_t addr, uint16_t port, uint32_t to) override {
    if (target != nullptr) target->add(addr, port, to);
  }
  bool add_without_payload(uint32_t addr, uint16_t port, uint32_t to) override {
    return target != nullptr && target->add_without_payload(addr, port, to);
  }
  void remove(uint32_t addr, uint16_t port) override {
    if (target != nullptr) target->remove(addr, port);
  }
  void remove_without_payload(uint32_t addr, uint16_t port) override {
    if (target != nullptr) target->remove_without_payload(addr, port);
  }
  io::IoStatus flush() override { return target != nullptr ? target->flush() : io::io_ok(); }
};

// The verdicts of a role that takes no packets (spreader): there is no queue.
class NoQueue final : public io::Verdicts {
 public:
  io::IoStatus accept(std::uint32_t) override { return none(); }
  io::IoStatus accept_modified(std::uint32_t, std::span<const std::uint8_t>) override { return none(); }
  io::IoStatus drop(std::uint32_t) override { return none(); }
  void accept_deferred(std::uint32_t) override {}
  io::IoStatus flush() override { return io::io_ok(); }

 private:
  static io::IoStatus none() { return io::io_fail(kNotSupported, "verdict without a queue"); }
};

// Every role but the spreader takes packets from an NFQUEUE.
bool takes_packets(RuntimeRole role) { return role != RuntimeRole::kSpreader; }

}  // namespace

struct NodeRuntime::Impl {
  enum class State : uint8_t { kIdle, kStarted, kRunningHere, kRunningThread };

  explicit Impl(const RuntimeConfig& c) : config(c) {}

  const RuntimeConfig& config;
  std::mutex life;  // guards state and the setup/cleanup transitions
  State state = State::kIdle;
  std::atomic<bool> running{false};

  mutable std::mutex snapshot_mutex;
  Counters snapshot;
  double snapshot_taken_at = 0;  // wall clock, seconds since the epoch, before collect()

  std::vector<std::unique_ptr<io::SysctlGuard>> sysctls;
  std::unique_ptr<io::NfQueue> queue;  // null: the role takes no packets
  NoQueue no_queue;
  std::shared_ptr<control::Authenticator> auth;  // null: control messages unauthenticated
  std::unique_ptr<Role> role;                    // the role's engine and its own I/O (roles/role.h)
  std::unique_ptr<io::RuleSet> rules;
  std::unique_ptr<io::NftFastPath> fast_path;  // frontend, always, rare: created after the rules
                                               //   (a clash fails there first)
  FastPathProxy fast_path_proxy;
  DataPath datapath = DataPath::kNfqueue;  // resolved at setup
  std::unique_ptr<io::EventLoop> loop;
  int wake_fd = -1;

  std::thread thread;
  int status = 0;
  uint64_t started_ms = 0;
  uint64_t last_stats_ms = 0;
  uint64_t stats_write_errors = 0;

  // Verdicts and fast-path changes made while handling events go out together.
  void flush_out() {
    if (queue) (void)queue->flush();
    if (fast_path) (void)fast_path->flush();
    if (role) role->flush();
  }
  // A fatal error of the loop: stop it, exit status 1.
  void fail() {
    status = 1;
    loop->stop();
  }

  void setup();
  void watch();
  void teardown_resources();
  int cleanup();
  void wake();
  void drain();
  void on_tick();
  Counters collect() const;
  void take_snapshot();
  void write_stats();
};

void NodeRuntime::Impl::setup() {
  const RuntimeConfig& c = config;
  validate(c);
  started_ms = monotonic_ms();

  // What the role dispatches with and the data path (a probe, nothing left
  // installed), then the rules on it: a bad map or role configuration fails
  // here, before anything is installed.
  Dispatch dispatch = load_dispatch(c);
  std::string why_not_kernel;
  datapath = resolve_datapath(c, &why_not_kernel);
  if (c.datapath == "auto" && !why_not_kernel.empty()) {
    log_error("data path nfqueue: " + why_not_kernel);
  }
  const io::RuleSetSpec rule_spec = capture_rules(c, datapath);

  for (const auto& [key, value] : role_sysctls(c, list_interfaces())) {
    sysctls.push_back(std::make_unique<io::SysctlGuard>(key, value));
  }

  // Control-message authentication (control/auth.h): one authenticator, shared
  // by whichever control transport the role uses.
  auth.reset();
  if (!c.key_file.empty()) {
    auth = std::make_shared<control::Authenticator>(
        control::load_key_file(c.key_file), c.node_addr ? parse_addr(*c.node_addr, "node address").value : 0);
  } else if (c.role != RuntimeRole::kMonitor && c.role != RuntimeRole::kImpair) {  // they send no control messages
    log_error("warning: no key file (--key-file): control messages are not authenticated");
  }

  io::NfQueueConfig qc;
  qc.queue_num = c.queue;
  qc.max_len = c.queue_maxlen;
  qc.rcvbuf_bytes = c.rcvbuf;
  qc.gso = c.gso && c.role != RuntimeRole::kImpair;  // impair: per segment, as a wire would
  qc.fail_open = c.fail_open;
  if (takes_packets(c.role)) {
    queue = std::make_unique<io::NfQueue>(qc);  // bound before the rules: no packet meets an empty queue
  }

  io::Verdicts& verdicts = queue ? static_cast<io::Verdicts&>(*queue) : no_queue;
  RoleContext context{c, verdicts, auth, c.fast_path ? &fast_path_proxy : nullptr, datapath, monotonic_ms,
                      std::move(dispatch.dispatcher), std::move(dispatch.nodes),
                      [this](const std::string& key, const std::string& value) {
                        sysctls.push_back(std::make_unique<io::SysctlGuard>(key, value));
                      }};
  role = make_role(context);
  if (queue) queue->set_handler([this](const io::QueuedPacket& p) { role->on_packet(p); });

  watch();

  if (queue) {
    rules = std::make_unique<io::RuleSet>(rule_spec);
    try {
      rules->install();
    } catch (const std::runtime_error& e) {
      throw std::runtime_error(std::string(e.what()) +
                               " (left over from a crashed run? 'handoffd --cleanup' removes HANDOFF- chains)");
    }
  }
  // The kernel data path's origin forwards through its BPF map (roles/kernel_origin.h) instead.
  if (const auto fc = fast_path_config(c); fc && datapath != DataPath::kKernel) {
    fast_path = std::make_unique<io::NftFastPath>(*fc);
    fast_path_proxy.target = fast_path.get();
  }
  take_snapshot();
  last_stats_ms = monotonic_ms();
  write_stats();
}

// The event loop: the wake-up eventfd, the queue, the role's control transport
// (every message goes to the role, whose engine routes it) and own descriptors,
// the housekeeping timer.
void NodeRuntime::Impl::watch() {
  loop = std::make_unique<io::EventLoop>();
  wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
  loop->add_fd(wake_fd, [this] {
    uint64_t n = 0;
    (void)::read(wake_fd, &n, sizeof n);
    loop->stop();
  });
  if (queue) {
    loop->add_fd(queue->fd(), [this] {
      auto n = queue->poll_once();
      if (!n.ok()) {
        log_error(std::string(n.error().what) + " failed, errno " + std::to_string(n.error().err_no));
        fail();
      }
      flush_out();
      if (!role->after_packets()) fail();
    });
  }
  for (auto& source : role->sources()) {
    loop->add_fd(source.fd, [this, ready = std::move(source.on_ready)] {
      if (!ready()) fail();
      flush_out();
    });
  }
  if (ControlTransport* control = role->control()) {
    loop->add_fd(control->fd(), [this, control] {
      control->poll([this](net::Ipv4Addr from, const control::Message& m) { role->on_message(from, m); });
      flush_out();
    });
  }
  loop->add_timer(std::chrono::milliseconds(RuntimeConfig::kTimerMs), [this] { on_tick(); });
}

void NodeRuntime::Impl::on_tick() {
  role->on_tick(monotonic_ms());
  flush_out();
  take_snapshot();
  const uint64_t now = monotonic_ms();
  if (now - last_stats_ms >= config.stats_interval_ms) {
    last_stats_ms = now;
    write_stats();
  }
}

void NodeRuntime::Impl::drain() {
  if (!queue) return;
  (void)queue->poll_once();
  if (role) role->drain();
  flush_out();
}

NodeRuntime::Counters NodeRuntime::Impl::collect() const {
  Counters out;
  auto add = [&out](const char* name, uint64_t value) { out.emplace_back(name, value); };
  add("pid", static_cast<uint64_t>(::getpid()));
  add("uptime_ms", monotonic_ms() - started_ms);
  add("datapath_kernel", datapath == DataPath::kKernel ? 1 : 0);
  if (role) role->visit_counters(add);
  if (fast_path) {
    add("fast_path_batches", fast_path->counters().batches);
    add("fast_path_errors", fast_path->counters().errors);
  }
  if (queue) {
    const auto& q = queue->counters();
    out.insert(out.end(), {{"nfq_received", q.received},
                           {"nfq_accepted", q.accepted},
                           {"nfq_dropped", q.dropped},
                           {"nfq_modified", q.modified},
                           {"nfq_batches", q.batches},
                           {"nfq_enobufs", q.enobufs},
                           {"nfq_errors", q.errors},
                           {"nfq_held", queue->held()},
                           {"nfq_rcvbuf_bytes", queue->rcvbuf_bytes()}});
    if (auto k = io::read_kernel_queue_stats(config.queue)) {
      add("kernel_queue_dropped", k->queue_dropped);
      add("kernel_user_dropped", k->user_dropped);
    }
  }
  if (auth) {  // shows the key is in use: sealed and opened grow with control traffic
    const auto& a = auth->counters();
    out.insert(out.end(), {{"auth_sealed", a.sealed},
                           {"auth_opened", a.opened},
                           {"auth_unauthenticated", a.unauthenticated},
                           {"auth_replayed", a.replayed}});
  }
  add("stats_write_errors", stats_write_errors);
  return out;
}

void NodeRuntime::Impl::take_snapshot() {
  const double at = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  Counters fresh = collect();
  std::lock_guard lock(snapshot_mutex);
  snapshot = std::move(fresh);
  snapshot_taken_at = at;
}

void NodeRuntime::Impl::write_stats() {
  if (config.stats_file.empty()) return;
  io::StatsDoc doc;
  doc.strings = {{"role", to_string(config.role)}, {"node", config.node}};
  {
    std::lock_guard lock(snapshot_mutex);
    doc.counters = snapshot;
  }
  if (!io::write_stats_file(config.stats_file, doc)) ++stats_write_errors;
}

void NodeRuntime::Impl::wake() {
  if (wake_fd < 0) return;
  const uint64_t one = 1;
  (void)::write(wake_fd, &one, sizeof one);
}

// Releases everything in reverse order of setup; destructors undo what is left
// (RuleSet uninstalls, SysctlGuard restores).
void NodeRuntime::Impl::teardown_resources() {
  loop.reset();
  if (wake_fd >= 0) ::close(wake_fd);
  wake_fd = -1;
  rules.reset();
  fast_path_proxy.target = nullptr;
  fast_path.reset();
  while (!sysctls.empty()) sysctls.pop_back();  // before the role: some are its TUN device's
  role.reset();
  queue.reset();
}

int NodeRuntime::Impl::cleanup() {
  int result = status;
  // Stop new packets first, then give the packets still queued their verdicts.
  if (rules && rules->uninstall() != 0) result = 1;
  drain();
  if (fast_path && !fast_path->uninstall()) result = 1;
  take_snapshot();
  write_stats();
  if (stats_write_errors != 0 && !config.stats_file.empty()) {
    log_error("cannot write stats file " + config.stats_file);
  }
  for (auto it = sysctls.rbegin(); it != sysctls.rend(); ++it) {
    if (!(*it)->restore()) result = 1;
  }
  teardown_resources();
  running = false;
  return result;
}

// ---------------------------------------------------------------------------

NodeRuntime::NodeRuntime(RuntimeConfig config) : config_(std::move(config)), impl_(std::make_unique<Impl>(config_)) {}

NodeRuntime::~NodeRuntime() {
  try {
    stop();
  } catch (const std::exception& e) {
    log_error(std::string("cleanup: ") + e.what());
  }
}

void NodeRuntime::start() {
  std::lock_guard lock(impl_->life);
  start_locked();
}

void NodeRuntime::start_locked() {
  if (impl_->state != Impl::State::kIdle) throw std::logic_error("NodeRuntime::start: already started");
  impl_->status = 0;
  impl_->stats_write_errors = 0;
  try {
    impl_->setup();
  } catch (...) {
    impl_->teardown_resources();
    throw;
  }
  impl_->state = Impl::State::kStarted;
  impl_->running = true;
}

void NodeRuntime::stop_on_signals(std::initializer_list<int> signals) {
  std::lock_guard lock(impl_->life);
  if (impl_->state != Impl::State::kStarted) throw std::logic_error("NodeRuntime::stop_on_signals: call after start()");
  impl_->loop->add_signals(signals, [this](int) { impl_->loop->stop(); });
}

int NodeRuntime::run() {
  {
    std::lock_guard lock(impl_->life);
    if (impl_->state != Impl::State::kStarted) throw std::logic_error("NodeRuntime::run: call after start()");
    impl_->state = Impl::State::kRunningHere;
  }
  impl_->loop->run();
  std::lock_guard lock(impl_->life);
  const int result = impl_->cleanup();
  impl_->state = Impl::State::kIdle;
  return result;
}

void NodeRuntime::start_thread() {
  std::lock_guard lock(impl_->life);  // one critical section: a concurrent stop() sees kIdle or kRunningThread
  start_locked();
  try {
    impl_->thread = std::thread([this] { impl_->loop->run(); });
  } catch (const std::system_error& e) {
    (void)impl_->cleanup();
    impl_->state = Impl::State::kIdle;
    throw std::runtime_error(std::string("cannot start the engine thread: ") + e.what());
  }
  impl_->state = Impl::State::kRunningThread;
}

void NodeRuntime::stop() {
  std::lock_guard lock(impl_->life);
  switch (impl_->state) {
    case Impl::State::kIdle:
      return;
    case Impl::State::kStarted:
      (void)impl_->cleanup();
      impl_->state = Impl::State::kIdle;
      return;
    case Impl::State::kRunningHere:
      impl_->wake();  // run() cleans up on its own thread
      return;
    case Impl::State::kRunningThread:
      impl_->wake();
      if (impl_->thread.joinable()) impl_->thread.join();
      (void)impl_->cleanup();
      impl_->state = Impl::State::kIdle;
      return;
  }
}

bool NodeRuntime::running() const { return impl_->running; }

NodeRuntime::Counters NodeRuntime::counters() const {
  std::lock_guard lock(impl_->snapshot_mutex);
  return impl_->snapshot;
}

NodeRuntime::TimedCounters NodeRuntime::timed_counters() const {
  std::lock_guard lock(impl_->snapshot_mutex);
  return {impl_->snapshot_taken_at, impl_->snapshot};
}

}  // namespace hl::runtime
