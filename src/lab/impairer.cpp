#include "lab/impairer.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <stdexcept>
#include <string>

#include "io/checked_io.h"
#include "net/ipv4_packet.h"

namespace hl::lab {
namespace {

constexpr uint64_t kUsPerMs = 1000;
constexpr double kUsPerMsF = 1000.0;

void check_probability(double p, const char* what) {
  if (!(p >= 0.0 && p < 1.0)) {  // also refuses NaN
    throw std::invalid_argument(std::string("impairment: ") + what + " must be within [0, 1)");
  }
}

// A uniform double in [0, 1) from 53 random bits (the same on every platform,
// unlike std::uniform_real_distribution).
double uniform01(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

}  // namespace

void validate(const ImpairConfig& c) {
  check_probability(c.loss, "loss");
  check_probability(c.reorder, "reorder");
  check_probability(c.duplicate, "duplicate");
  const uint64_t longest = uint64_t{c.delay_ms} + c.jitter_ms + c.reorder_extra_ms;
  if (longest > ImpairConfig::kMaxDelayMs) {
    throw std::invalid_argument("impairment: delay + jitter + reorder extra must not exceed " +
                                std::to_string(ImpairConfig::kMaxDelayMs) + " ms");
  }
  if (c.max_held == 0) throw std::invalid_argument("impairment: max held packets must be > 0");
}

void ImpairCounters::visit(const CounterVisitor& v) const {
  v("impair_received", received);
  v("impair_released", released);
  v("impair_lost", lost);
  v("impair_overflow", overflow);
  v("impair_reordered", reordered);
  v("impair_out_of_order", out_of_order);
  v("impair_duplicated", duplicated);
  v("impair_dup_skipped", dup_skipped);
  v("impair_io_errors", io_errors);
  v("impair_held", held);
  v("impair_max_held", max_held_seen);
  v("impair_late_us_max", late_us_max);
}

bool complete_checksum(std::vector<uint8_t>& p, bool checksum_partial) {
  const auto parsed = net::parse_ipv4_packet(p);
  if (!parsed) return false;
  p.resize(parsed->bytes.size());  // drop link-layer padding, if any (shrinking: the view stays valid)
  return !checksum_partial || net::fill_l4_checksum(*parsed);
}

struct Impairer::Impl {
  // One packet waiting for its release.
  struct Held {
    uint64_t due_us = 0;
    uint64_t seq = 0;  // arrival order
    uint32_t id = 0;
    std::vector<uint8_t> copy;  // the duplicate to send after it (empty: none)
  };
  // Orders the heap so that its front is the earliest (due, seq).
  static bool later(const Held& a, const Held& b) {
    return a.due_us != b.due_us ? a.due_us > b.due_us : a.seq > b.seq;
  }

  ImpairConfig config;
  io::Verdicts& verdicts_io;
  io::PacketSender& sender_io;
  MicroClock clock;
  ImpairCounters counters;
  io::CheckedVerdicts verdicts{verdicts_io, counters.io_errors};
  io::CheckedSender sender{sender_io, counters.io_errors};
  std::mt19937_64 rng;
  std::vector<Held> heap;
  uint64_t next_seq = 0;
  uint64_t in_order_due_us = 0;  // release time of the latest packet kept in order
  uint64_t released_seq_max = 0; // 1 + the largest arrival seq released so far (0: none)

  Impl(ImpairConfig c, io::Verdicts& v, io::PacketSender& s, MicroClock clk)
      : config(c), verdicts_io(v), sender_io(s), clock(std::move(clk)), rng(c.seed) {}

  void release_front(uint64_t now, bool count_late) {
    std::pop_heap(heap.begin(), heap.end(), later);
    Held h = std::move(heap.back());
    heap.pop_back();
    counters.held = heap.size();
    if (count_late && now > h.due_us) counters.late_us_max = std::max(counters.late_us_max, now - h.due_us);
    if (h.seq + 1 < released_seq_max) ++counters.out_of_order;
    released_seq_max = std::max(released_seq_max, h.seq + 1);
    verdicts.accept(h.id);
    ++counters.released;
    if (!h.copy.empty()) {
      const uint64_t errors = counters.io_errors;
      sender.send(h.copy);
      if (counters.io_errors == errors) ++counters.duplicated;
    }
  }
};

Impairer::Impairer(ImpairConfig config, io::Verdicts& verdicts, io::PacketSender& sender, MicroClock clock)
    : impl_(std::make_unique<Impl>(config, verdicts, sender, std::move(clock))) {
  validate(impl_->config);
}

Impairer::~Impairer() = default;

void Impairer::on_packet(const io::QueuedPacket& packet) {
  Impl& s = *impl_;
  const ImpairConfig& c = s.config;
  ++s.counters.received;
  // Four draws per packet whatever happens to it: the n-th packet's fate
  // depends only on the seed and n.
  const double u_loss = uniform01(s.rng);
  const double u_jitter = uniform01(s.rng);
  const double u_reorder = uniform01(s.rng);
  const double u_duplicate = uniform01(s.rng);
  if (s.heap.size() >= c.max_held) {
    ++s.counters.overflow;
    s.verdicts.drop(packet.id);
    return;
  }
  if (u_loss < c.loss) {
    ++s.counters.lost;
    s.verdicts.drop(packet.id);
    return;
  }
  const uint64_t now = s.clock();
  const double jitter_us = (2.0 * u_jitter - 1.0) * static_cast<double>(c.jitter_ms) * kUsPerMsF;
  const double delay_us = std::max(0.0, static_cast<double>(c.delay_ms) * kUsPerMsF + std::round(jitter_us));
  Impl::Held h;
  h.id = packet.id;
  h.seq = s.next_seq++;
  h.due_us = std::max(now + static_cast<uint64_t>(delay_us), s.in_order_due_us);
  if (u_reorder < c.reorder) {
    ++s.counters.reordered;
    h.due_us += uint64_t{c.reorder_extra_ms} * kUsPerMs;  // out of the order: later ones overtake it
  } else {
    s.in_order_due_us = h.due_us;
  }
  if (u_duplicate < c.duplicate) {
    h.copy.assign(packet.data.begin(), packet.data.end());
    if (packet.is_gso || !complete_checksum(h.copy, packet.checksum_partial)) {
      ++s.counters.dup_skipped;
      h.copy.clear();
    }
  }
  s.heap.push_back(std::move(h));
  std::push_heap(s.heap.begin(), s.heap.end(), Impl::later);
  s.counters.held = s.heap.size();
  s.counters.max_held_seen = std::max<uint64_t>(s.counters.max_held_seen, s.heap.size());
  release_due();
}

void Impairer::release_due() {
  Impl& s = *impl_;
  if (s.heap.empty()) return;
  const uint64_t now = s.clock();
  while (!s.heap.empty() && s.heap.front().due_us <= now) s.release_front(now, true);
}

void Impairer::release_all() {
  Impl& s = *impl_;
  const uint64_t now = s.clock();
  while (!s.heap.empty()) s.release_front(now, false);
}

uint64_t Impairer::next_due_us() const { return impl_->heap.empty() ? 0 : impl_->heap.front().due_us; }

const ImpairCounters& Impairer::counters() const { return impl_->counters; }

const ImpairConfig& Impairer::config() const { return impl_->config; }

}  // namespace hl::lab
