#include "dispatch/dispatcher.h"

#include <algorithm>
#include <stdexcept>
#include <utility>

namespace hl::dispatch {

std::string_view to_string(DispatchStatus s) {
  switch (s) {
    case DispatchStatus::Document: return "Document";
    case DispatchStatus::Default: return "Default";
    case DispatchStatus::NotFound: return "NotFound";
    case DispatchStatus::Unavailable: return "Unavailable";
  }
  return "NotFound";
}

Dispatcher::Dispatcher(ContentMap map, std::unique_ptr<Policy> policy, DispatcherOptions options)
    : map_(std::move(map)), policy_(std::move(policy)), options_(std::move(options)) {
  if (!policy_) throw std::invalid_argument("Dispatcher: null policy");
}

Dispatcher::Dispatcher(ContentMap map, std::string_view policy_name, DispatcherOptions options)
    : Dispatcher(std::move(map), make_policy(policy_name), std::move(options)) {}

DispatchResult Dispatcher::dispatch(const http::RequestHead& head, const DispatchContext& ctx) {
  DispatchResult result;
  std::span<const BackendId> owners = map_.document_owners(head.path);
  if (!owners.empty()) {
    result.status = DispatchStatus::Document;
  } else {
    owners = map_.default_owners();
    if (owners.empty()) return result;  // NotFound
    result.status = DispatchStatus::Default;
  }
  if (!ctx.down.empty()) {
    // Only live owners are candidates; the policy sees the shorter list (the
    // rendezvous hashes then move only the keys of the dead owner).
    live_.clear();
    for (BackendId id : owners) {
      if (ctx.alive(id)) live_.push_back(id);
    }
    if (live_.empty()) {
      result.status = DispatchStatus::Unavailable;
      return result;
    }
    owners = live_;
  }
  if (!options_.affinity_cookie.empty()) {
    if (const auto name = head.cookie_value(options_.affinity_cookie)) {
      const std::optional<BackendId> id = map_.backend_id(*name);
      if (id && std::find(owners.begin(), owners.end(), *id) != owners.end()) {
        result.backend = *id;
        result.by_cookie = true;
        return result;
      }
    }
  }
  result.backend = policy_->select(head, owners, ctx);
  return result;
}

}  // namespace hl::dispatch
