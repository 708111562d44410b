#include "spread/spreader.h"

#include <utility>
#include <variant>

namespace hl::spread {

Spreader::Spreader(std::vector<net::Ipv4Addr> nodes, uint32_t dead_after_ms, uint64_t now, Apply apply, Log log,
                   Notify notify)
    : nodes_(std::move(nodes)), health_(nodes_.size(), dead_after_ms, now), apply_(std::move(apply)),
      log_(std::move(log)), notify_(std::move(notify)) {}

void Spreader::on_message(net::Ipv4Addr from, const control::Message& message, uint64_t now) {
  const auto* ka = std::get_if<control::Keepalive>(&message);
  if (ka == nullptr) {
    ++counters_.ignored_messages;
    return;
  }
  for (size_t id = 0; id < nodes_.size(); ++id) {
    if (nodes_[id] == from) {
      ++counters_.heartbeats;
      changed(id, health_.on_heartbeat(id, ka->healthy, now), "its web server is down", now);
      return;
    }
  }
  ++counters_.unknown_senders;
}

void Spreader::on_tick(uint64_t now) {
  for (size_t id : health_.expire(now)) changed(id, engine::HealthTracker::Change::kDown, "no heartbeat", now);
  if (apply_at_ && now >= *apply_at_) {
    apply_at_.reset();
    if (apply_) apply_(alive());
  }
}

std::vector<size_t> Spreader::alive() const {
  std::vector<size_t> out;
  for (size_t id = 0; id < nodes_.size(); ++id) {
    if (health_.alive(id)) out.push_back(id);
  }
  return out;
}

void Spreader::changed(size_t id, engine::HealthTracker::Change change, const char* why, uint64_t now) {
  if (change == engine::HealthTracker::Change::kNone) return;
  const bool down = change == engine::HealthTracker::Change::kDown;
  ++(down ? counters_.downs : counters_.ups);
  if (log_) log_("spreader: node " + nodes_[id].to_string() + (down ? std::string(" leaves (") + why + ")" : " is back"));
  if (down && notify_) {
    notify_(nodes_[id]);  // the survivors first, then its buckets (on_tick)
    ++counters_.notices;
    if (!apply_at_) apply_at_ = now + kNoticeMs;
    return;
  }
  if (apply_at_) return;  // a leaving pending: applied with it (alive() then)
  if (apply_) apply_(alive());
}

}  // namespace hl::spread
