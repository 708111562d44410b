// OriginPath: loads, attaches, pins and feeds origin.bpf.c (see origin_path.h).
#include "bpf/origin_path.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <bit>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <type_traits>

#include "bpf/origin_abi.h"
#include "io/iptables_rules.h"
#include "bpf/percpu_counters.h"
// Generated into the build tree (src/bpf/CMakeLists.txt); after origin_abi.h,
// whose types it names.
#include "origin.skel.h"

static_assert(HL_ENGINE_MARK == hl::io::kEngineMark, "the capture rules queue the program's engine mark");

namespace hl::bpf {
namespace {

using tc::errno_text;

hl_origin_key to_wire(const OriginKey& key) {
  hl_origin_key wire{};
  wire.client_addr = htonl(key.client.addr.value);
  wire.vip_addr = htonl(key.vip.addr.value);
  wire.client_port = htons(key.client.port);
  wire.vip_port = htons(key.vip.port);
  return wire;
}

void write_attachment(bpf_map* map, const tc::Attachment& at) {
  const hl_origin_attachment value{static_cast<uint32_t>(at.ifindex), at.handle, at.priority,
                                   at.created_qdisc ? 1u : 0u};
  uint32_t zero = 0;
  bpf_map__update_elem(map, &zero, sizeof zero, &value, sizeof value, BPF_ANY);
}

io::IoStatus write_settings(bpf_map* map, const hl_origin_settings& value) {
  uint32_t zero = 0;
  const int err = bpf_map__update_elem(map, &zero, sizeof zero, &value, sizeof value, BPF_ANY);
  if (err != 0) return io::io_fail(-err, "bpf_map_update_elem(settings)");
  return io::io_ok();
}

}  // namespace

std::vector<std::pair<std::string, uint64_t>> named_counters(const OriginCounters& c) {
  return {
      {"bpf_origin_syn_answered", c.syn_answered},
      {"bpf_origin_syn_no_key", c.syn_no_key},
      {"bpf_origin_syn_passed", c.syn_passed},
      {"bpf_origin_ack_dropped", c.ack_dropped},
      {"bpf_origin_to_user", c.to_user},
      {"bpf_origin_forwarded", c.forwarded},
      {"bpf_origin_end_to_user", c.end_to_user},
      {"bpf_origin_malformed", c.malformed},
      {"bpf_origin_error", c.error},
      {"bpf_origin_data_to_user", c.data_to_user},
      {"bpf_origin_handshake_passed", c.handshake_passed},
      {"bpf_origin_handshake_read", c.handshake_read},
      {"bpf_origin_local_passed", c.local_passed},
      {"bpf_origin_local_served", c.local_served},
      {"bpf_origin_dispatched", c.dispatched},
      {"bpf_origin_expired_ended", c.expired_ended},
      {"bpf_origin_expired_idle", c.expired_idle},
      {"bpf_origin_replaced", c.replaced},
      {"bpf_origin_move_sent", c.move_sent},
      {"bpf_origin_move_resent", c.move_resent},
      {"bpf_origin_kept", c.kept},
      {"bpf_origin_gap_dropped", c.gap_dropped},
      {"bpf_origin_held_back", c.held_back},
      {"bpf_origin_to_engine", c.to_engine},
      {"bpf_origin_engine_passed", c.engine_passed},
      {"bpf_origin_move_ack_to_old", c.move_ack_to_old},
      {"bpf_origin_sent_out", c.sent_out},
      {"bpf_origin_handshake_ack_dropped", c.handshake_ack_dropped},
      {"bpf_origin_assign_failed", c.assign_failed},
      {"bpf_origin_local_followed", c.local_followed},
  };
}

OriginCounters& operator+=(OriginCounters& sum, const OriginCounters& c) {
  // Every field is a uint64_t counter: added as an array.
  constexpr size_t kFields = sizeof(OriginCounters) / sizeof(uint64_t);
  static_assert(sizeof(OriginCounters) == kFields * sizeof(uint64_t) && std::is_trivially_copyable_v<OriginCounters>);
  auto a = std::bit_cast<std::array<uint64_t, kFields>>(sum);
  const auto b = std::bit_cast<std::array<uint64_t, kFields>>(c);
  for (size_t i = 0; i < kFields; ++i) a[i] += b[i];
  sum = std::bit_cast<OriginCounters>(a);
  return sum;
}

bool is_handshake_mark(uint32_t mark) { return (mark & HL_HANDSHAKE_MARK_TAG_MASK) == HL_HANDSHAKE_MARK_TAG; }

std::optional<HandshakeMark> decode_handshake_mark(uint32_t mark) {
  if (!is_handshake_mark(mark)) return std::nullopt;
  HandshakeMark m;
  m.mss = static_cast<uint16_t>(mark & HL_HANDSHAKE_MSS_MASK);
  m.snd_wscale = static_cast<uint8_t>((mark >> HL_HANDSHAKE_SND_WSCALE_SHIFT) & 0xf);
  m.rcv_wscale = static_cast<uint8_t>((mark >> HL_HANDSHAKE_RCV_WSCALE_SHIFT) & 0xf);
  m.wscale_ok = (mark & HL_HANDSHAKE_WSCALE_OK) != 0;
  m.sack_ok = (mark & HL_HANDSHAKE_SACK_OK) != 0;
  m.tstamp_ok = (mark & HL_HANDSHAKE_TSTAMP_OK) != 0;
  return m;
}

OriginPath::OriginPath(const OriginPathConfig& config) : config_(config) {
  skel_ = hl_origin_bpf__open();
  if (skel_ == nullptr) {
    throw std::runtime_error("cannot open the origin BPF object: " + errno_text(errno));
  }
  skel_->rodata->cfg_vip_addr = htonl(config.vip.value);
  skel_->rodata->cfg_vip_port = htons(config.vip_port);
  skel_->rodata->cfg_forward_ends = config.forward_ends ? 1 : 0;
  if (config.kernel_handshake) {
    if (config.bypass_mark == 0 || is_handshake_mark(config.bypass_mark)) {
      hl_origin_bpf__destroy(skel_);
      skel_ = nullptr;
      throw std::runtime_error("origin program: the kernel handshake needs a non-zero bypass mark that is not a handshake mark");
    }
    skel_->rodata->cfg_kernel_handshake = 1;
  }
  skel_->rodata->cfg_bypass_mark = config.bypass_mark;
  if (config.local_mark != 0) {
    if (!config.kernel_handshake || config.local_mark == config.bypass_mark || is_handshake_mark(config.local_mark)) {
      hl_origin_bpf__destroy(skel_);
      skel_ = nullptr;
      throw std::runtime_error("origin program: local content needs the kernel handshake and a local mark that is neither the bypass mark nor a handshake mark");
    }
    skel_->rodata->cfg_local_mark = config.local_mark;
    skel_->rodata->cfg_local_any_request = config.local_any_request ? 1 : 0;
  }
  if (config.local_by_socket) {
    if (!config.kernel_handshake) {
      hl_origin_bpf__destroy(skel_);
      skel_ = nullptr;
      throw std::runtime_error("origin program: following local connections by their socket needs the kernel handshake");
    }
    skel_->rodata->cfg_local_by_socket = 1;
  }
  if (config.kernel_dispatch) {
    if (config.dispatch_mark == 0 || config.dispatch_mark == config.bypass_mark ||
        config.dispatch_mark == config.local_mark || is_handshake_mark(config.dispatch_mark)) {
      hl_origin_bpf__destroy(skel_);
      skel_ = nullptr;
      throw std::runtime_error("origin program: kernel dispatch needs a dispatch mark that is neither 0, the bypass mark, the local mark nor a handshake mark");
    }
    skel_->rodata->cfg_kernel_dispatch = 1;
    skel_->rodata->cfg_dispatch_mark = config.dispatch_mark;
    skel_->rodata->cfg_dispatch_any_request = config.dispatch_any_request ? 1 : 0;
    skel_->rodata->cfg_linger_ms = config.linger_ms;
    skel_->rodata->cfg_idle_ms = config.idle_ms;
    skel_->rodata->cfg_replicated_first = config.replicated_first ? 1 : 0;
  }
  if (config.kernel_moves) {
    if (!config.kernel_dispatch || config.dispatch_any_request) {
      hl_origin_bpf__destroy(skel_);
      skel_ = nullptr;
      throw std::runtime_error("origin program: kernel moves need kernel dispatch of last requests only");
    }
    skel_->rodata->cfg_kernel_moves = 1;
    skel_->rodata->cfg_self_addr = htonl(config.self.value);
  }
  if (int err = hl_origin_bpf__load(skel_); err != 0) {
    hl_origin_bpf__destroy(skel_);
    skel_ = nullptr;
    throw std::runtime_error("cannot load the origin BPF program (needs root, bpf_loop: Linux 5.17+): " +
                             errno_text(err));
  }
  if (config.pin) {
    try {
      pin_all();
    } catch (...) {
      unpin_all();
      hl_origin_bpf__destroy(skel_);
      skel_ = nullptr;
      throw;
    }
  }
}

OriginPath::~OriginPath() {
  detach();
  unpin_all();
  hl_origin_bpf__destroy(skel_);
}

std::string OriginPath::pin_dir(const std::string& name) { return "/sys/fs/bpf/handoff_" + name; }

void OriginPath::pin_all() {
  tc::ensure_bpffs();
  const std::string dir = pin_dir(config_.name);
  if (mkdir(dir.c_str(), 0700) != 0) {
    throw std::runtime_error("cannot create " + dir + ": " + errno_text(errno) +
                             (errno == EEXIST ? " (another handoffd, or leftovers: --cleanup)" : ""));
  }
  pinned_ = true;  // from here on, unpin_all() removes whatever got pinned
  auto check = [&](int err, const char* what) {
    if (err != 0) throw std::runtime_error("cannot pin " + dir + "/" + what + ": " + errno_text(err));
  };
  check(bpf_map__pin(skel_->maps.settings, (dir + "/settings").c_str()), "settings");
  check(bpf_map__pin(skel_->maps.forwards, (dir + "/forwards").c_str()), "forwards");
  check(bpf_map__pin(skel_->maps.counters, (dir + "/counters").c_str()), "counters");
  check(bpf_map__pin(skel_->maps.attachment, (dir + "/attachment").c_str()), "attachment");
  check(bpf_map__pin(skel_->maps.local_paths, (dir + "/local_paths").c_str()), "local_paths");
  check(bpf_map__pin(skel_->maps.path_nodes, (dir + "/path_nodes").c_str()), "path_nodes");
  check(bpf_program__pin(skel_->progs.origin, (dir + "/origin").c_str()), "origin");
}

void OriginPath::unpin_all() noexcept {
  if (!pinned_) return;
  pinned_ = false;
  cleanup(config_.name);  // detached already: this removes the pins and the directory
}

void OriginPath::attach(const std::string& ifname) {
  if (attached_.ifindex != 0) throw std::runtime_error("the origin program is attached already");
  attached_ = tc::attach_ingress(ifname, program_fd(), "origin");
  write_attachment(skel_->maps.attachment, attached_);
}

void OriginPath::detach() {
  if (attached_.ifindex == 0) return;
  tc::detach_ingress(attached_);
  attached_ = tc::Attachment{};
  write_attachment(skel_->maps.attachment, attached_);
}

io::IoStatus OriginPath::set_cookie_key(const CookieSecret& secret, const SynAnswer& answer) {
  return write_settings(skel_->maps.settings, to_settings(secret, answer));
}

io::IoStatus OriginPath::clear_cookie_key() { return write_settings(skel_->maps.settings, {}); }

io::IoStatus OriginPath::map_forward(const OriginKey& key, net::Ipv4Addr node, bool acks_only) {
  const hl_origin_key wire_key = to_wire(key);
  hl_origin_forward value{};
  value.node_addr = htonl(node.value);
  value.acks_only = acks_only ? 1 : 0;
  const int err = bpf_map__update_elem(skel_->maps.forwards, &wire_key, sizeof wire_key, &value,
                                       sizeof value, BPF_ANY);
  if (err != 0) return io::io_fail(-err, "bpf_map_update_elem(forwards)");
  return io::io_ok();
}

io::IoStatus OriginPath::map_located(const OriginKey& key, net::Ipv4Addr node, uint32_t next_seq, uint64_t now_ms) {
  const hl_origin_key wire_key = to_wire(key);
  hl_origin_forward value{};
  value.node_addr = htonl(node.value);
  value.dispatched = 1;
  value.tracked = config_.kernel_moves ? 1 : 0;
  value.seen_ms = static_cast<uint32_t>(now_ms);
  value.gen = next_seq;  // which connection on the tuple, for expire_probe: any value of its own
  value.next_seq = next_seq;
  const int err = bpf_map__update_elem(skel_->maps.forwards, &wire_key, sizeof wire_key, &value,
                                       sizeof value, BPF_ANY);
  if (err != 0) return io::io_fail(-err, "bpf_map_update_elem(forwards)");
  return io::io_ok();
}

io::IoStatus OriginPath::mark_local(const OriginKey& key, uint32_t isn) {
  const hl_origin_key wire_key = to_wire(key);
  const int err =
      bpf_map__update_elem(skel_->maps.local_conns, &wire_key, sizeof wire_key, &isn, sizeof isn, BPF_ANY);
  if (err != 0) return io::io_fail(-err, "bpf_map_update_elem(local_conns)");
  return io::io_ok();
}

bool OriginPath::unmap(const OriginKey& key) {
  const hl_origin_key wire_key = to_wire(key);
  return bpf_map__delete_elem(skel_->maps.forwards, &wire_key, sizeof wire_key, 0) == 0;
}

std::optional<net::Ipv4Addr> OriginPath::forward_of(const OriginKey& key) const {
  const hl_origin_key wire_key = to_wire(key);
  hl_origin_forward value{};
  if (bpf_map__lookup_elem(skel_->maps.forwards, &wire_key, sizeof wire_key, &value, sizeof value,
                           0) != 0) {
    return std::nullopt;
  }
  return net::Ipv4Addr{ntohl(value.node_addr)};
}

std::optional<OriginPath::ForwardState> OriginPath::forward_state(const OriginKey& key) const {
  const hl_origin_key wire_key = to_wire(key);
  hl_origin_forward value{};
  if (bpf_map__lookup_elem(skel_->maps.forwards, &wire_key, sizeof wire_key, &value, sizeof value,
                           0) != 0) {
    return std::nullopt;
  }
  return ForwardState{net::Ipv4Addr{ntohl(value.node_addr)}, value.acks_only != 0, value.dispatched != 0,
                      value.ended != 0, value.gen, value.engine != 0, value.req_ack, value.moving != 0};
}

bool OriginPath::add_local_path(std::string_view path) {
  if (path.size() > HL_LOCAL_PATH_MAX) return false;
  hl_local_path key{};
  key.len = static_cast<uint32_t>(path.size());
  std::memcpy(key.path, path.data(), path.size());
  const uint8_t one = 1;
  return bpf_map__update_elem(skel_->maps.local_paths, &key, sizeof key, &one, sizeof one, BPF_ANY) == 0;
}

bool OriginPath::set_path_owners(std::string_view path, std::span<const net::Ipv4Addr> owners) {
  if (path.size() > HL_LOCAL_PATH_MAX || owners.empty() || owners.size() > HL_PATH_OWNERS_MAX) return false;
  hl_local_path key{};
  key.len = static_cast<uint32_t>(path.size());
  std::memcpy(key.path, path.data(), path.size());
  hl_path_owners value{};
  for (size_t i = 0; i < owners.size(); ++i) value.node[i] = htonl(owners[i].value);
  return bpf_map__update_elem(skel_->maps.path_nodes, &key, sizeof key, &value, sizeof value, BPF_ANY) == 0;
}

void OriginPath::clear_path_nodes() {
  hl_local_path key{};
  hl_local_path next{};
  // Delete the first key until none is left (get_next_key of a deleted key restarts anyway).
  while (bpf_map__get_next_key(skel_->maps.path_nodes, nullptr, &next, sizeof next) == 0) {
    key = next;
    if (bpf_map__delete_elem(skel_->maps.path_nodes, &key, sizeof key, 0) != 0) break;
  }
}

namespace {

// Every entry of `map` (hl_origin_key -> hl_origin_forward), by batches.
template <class Visit>
void for_each_forward(const bpf_map* map, Visit visit) {
  const int fd = bpf_map__fd(map);
  constexpr uint32_t kBatch = 4096;
  std::vector<hl_origin_key> keys(kBatch);
  std::vector<hl_origin_forward> values(kBatch);
  uint64_t in_batch = 0;
  uint64_t out_batch = 0;
  bool first = true;
  for (;;) {
    uint32_t count = kBatch;
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    const int err = bpf_map_lookup_batch(fd, first ? nullptr : &in_batch, &out_batch, keys.data(), values.data(),
                                         &count, &opts);
    for (uint32_t i = 0; i < count; ++i) visit(keys[i], values[i]);
    if (err != 0) break;  // ENOENT: the last batch; anything else: the rest next time
    in_batch = out_batch;
    first = false;
  }
}

}  // namespace

OriginPath::ExpireResult OriginPath::expire_dispatched(uint64_t now_ms) {
  std::vector<hl_origin_expire> candidates;
  ExpireResult r;
  const auto now = static_cast<uint32_t>(now_ms);
  for_each_forward(skel_->maps.forwards, [&](const hl_origin_key& key, const hl_origin_forward& v) {
    if (v.dispatched == 0) return;
    const uint32_t quiet = now - v.seen_ms;  // modulo 2^32, as the program counts
    const uint32_t limit = v.ended != 0 ? config_.linger_ms : config_.idle_ms;
    if (quiet < (1u << 31) && quiet >= limit) {
      candidates.push_back(hl_origin_expire{key, v.gen});
    } else {
      ++r.live;
    }
  });
  for (const hl_origin_expire& c : candidates) {
    if (run_expire(c)) {
      ++r.expired;
    } else {
      ++r.live;  // a new connection on the tuple, or not done after all
    }
  }
  return r;
}

bool OriginPath::run_expire(const hl_origin_expire& c) const {
  std::array<uint8_t, 14 + sizeof(hl_origin_expire)> frame{};
  frame[12] = 0x88;  // the local experimental ethertype 0x88b5: no IPv4 header for the test run to check
  frame[13] = 0xb5;
  std::memcpy(frame.data() + 14, &c, sizeof c);
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_size_in = static_cast<uint32_t>(frame.size()),
              .repeat = 1);
  return bpf_prog_test_run_opts(bpf_program__fd(skel_->progs.expire_probe), &opts) == 0 && opts.retval == 1;
}

bool OriginPath::expire_one(const OriginKey& key, uint32_t gen) { return run_expire(hl_origin_expire{to_wire(key), gen}); }

size_t OriginPath::dispatched_entries() const {
  size_t live = 0;
  for_each_forward(skel_->maps.forwards,
                   [&](const hl_origin_key&, const hl_origin_forward& v) { live += v.dispatched != 0 ? 1u : 0u; });
  return live;
}

std::vector<OriginPath::Dispatched> OriginPath::take_dispatched(net::Ipv4Addr node) {
  std::vector<hl_origin_key> keys;
  std::vector<Dispatched> out;
  const uint32_t wire_node = htonl(node.value);
  for_each_forward(skel_->maps.forwards, [&](const hl_origin_key& key, const hl_origin_forward& v) {
    if (v.dispatched == 0 || v.ended != 0 || v.engine != 0 || v.node_addr != wire_node) return;
    keys.push_back(key);
    out.push_back(Dispatched{net::Endpoint{net::Ipv4Addr{ntohl(key.client_addr)}, ntohs(key.client_port)},
                             v.next_seq, v.last_ack});
  });
  size_t kept = 0;
  for (size_t i = 0; i < keys.size(); ++i) {  // one the program ended or expired meanwhile is not taken
    if (bpf_map__delete_elem(skel_->maps.forwards, &keys[i], sizeof keys[i], 0) == 0) out[kept++] = out[i];
  }
  out.resize(kept);
  return out;
}

std::optional<bool> OriginPath::probe_request(std::span<const uint8_t> packet) const {
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = packet.data(), .data_size_in = static_cast<uint32_t>(packet.size()),
              .repeat = 1);
  if (bpf_prog_test_run_opts(bpf_program__fd(skel_->progs.request_probe), &opts) != 0) return std::nullopt;
  return opts.retval == 1;
}

OriginCounters OriginPath::counters() const {
  const PerCpuCounters read(skel_->maps.counters);
  OriginCounters c;
  c.syn_answered = read(HL_ORIGIN_SYN_ANSWERED);
  c.syn_no_key = read(HL_ORIGIN_SYN_NO_KEY);
  c.syn_passed = read(HL_ORIGIN_SYN_PASSED);
  c.ack_dropped = read(HL_ORIGIN_ACK_DROPPED);
  c.to_user = read(HL_ORIGIN_TO_USER);
  c.forwarded = read(HL_ORIGIN_FORWARDED);
  c.end_to_user = read(HL_ORIGIN_END_TO_USER);
  c.data_to_user = read(HL_ORIGIN_DATA_TO_USER);
  c.handshake_passed = read(HL_ORIGIN_HANDSHAKE_PASSED);
  c.handshake_read = read(HL_ORIGIN_HANDSHAKE_READ);
  c.local_passed = read(HL_ORIGIN_LOCAL_PASSED);
  c.local_served = read(HL_ORIGIN_LOCAL_SERVED);
  c.dispatched = read(HL_ORIGIN_DISPATCHED);
  c.expired_ended = read(HL_ORIGIN_EXPIRED_ENDED);
  c.expired_idle = read(HL_ORIGIN_EXPIRED_IDLE);
  c.replaced = read(HL_ORIGIN_REPLACED);
  c.move_sent = read(HL_ORIGIN_MOVE_SENT);
  c.move_resent = read(HL_ORIGIN_MOVE_RESENT);
  c.kept = read(HL_ORIGIN_KEPT);
  c.gap_dropped = read(HL_ORIGIN_GAP_DROPPED);
  c.held_back = read(HL_ORIGIN_HELD_BACK);
  c.to_engine = read(HL_ORIGIN_TO_ENGINE);
  c.engine_passed = read(HL_ORIGIN_ENGINE_PASSED);
  c.move_ack_to_old = read(HL_ORIGIN_MOVE_ACK_TO_OLD);
  c.sent_out = read(HL_ORIGIN_SENT_OUT);
  c.local_followed = read(HL_ORIGIN_LOCAL_FOLLOWED);
  c.handshake_ack_dropped = read(HL_ORIGIN_HANDSHAKE_ACK_DROPPED);
  c.assign_failed = read(HL_ORIGIN_ASSIGN_FAILED);
  c.malformed = read(HL_ORIGIN_MALFORMED);
  c.error = read(HL_ORIGIN_ERROR);
  return c;
}

int OriginPath::program_fd() const { return bpf_program__fd(skel_->progs.origin); }

std::string OriginPath::cleanup(const std::string& name) { return tc::remove_pins(pin_dir(name)); }

std::string kernel_supports_origin() {
  if (geteuid() != 0) return "loading BPF programs needs root";
  hl_origin_bpf* probe = hl_origin_bpf__open_and_load();
  if (probe == nullptr) return "the origin program does not load: " + errno_text(errno);
  hl_origin_bpf__destroy(probe);
  return "";
}

}  // namespace hl::bpf
