// Dispatcher: request head -> back-end, from the content map and a policy.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "dispatch/backend_id.h"
#include "dispatch/content_map.h"
#include "dispatch/policy.h"
#include "http/request_head.h"

namespace hl::dispatch {

// How the back-end was found.
enum class DispatchStatus : std::uint8_t {
  Document,  // the path is a known document; backend is one of its owners
  Default,   // unknown path; backend is from the map's default ("*") owner set
  NotFound,  // unknown path and no default set: no backend. The engine answers
             // 404 without a handoff (front-end design) or lets the local web
             // server answer (always/rare designs: it 404s what it does not own)
  Unavailable,  // owners exist but every one is down (DispatchContext::down):
                // no backend; the engine answers 503 (or serves a local replica)
};

// "Document", "Default", "NotFound", "Unavailable".
std::string_view to_string(DispatchStatus s);

// The dispatcher's decision for one request.
struct DispatchResult {
  DispatchStatus status = DispatchStatus::NotFound;
  BackendId backend = 0;   // valid when found()
  bool by_cookie = false;  // chosen by the affinity cookie, not the policy

  bool found() const { return status == DispatchStatus::Document || status == DispatchStatus::Default; }
  bool operator==(const DispatchResult&) const = default;
};

// Options fixed at setup.
struct DispatcherOptions {
  // Name of a cookie whose value names a back-end (e.g. "HLBACKEND=be2"). If
  // the request carries it and that back-end is among the candidate owners, it
  // is chosen; otherwise the policy decides. Empty: no cookie affinity.
  std::string affinity_cookie;
};

// Owns the content map and the policy; not thread-safe (policies keep state).
class Dispatcher {
 public:
  // Throws std::invalid_argument if `policy` is null.
  Dispatcher(ContentMap map, std::unique_ptr<Policy> policy, DispatcherOptions options = {});
  // Convenience: make_policy(policy_name); throws std::invalid_argument.
  Dispatcher(ContentMap map, std::string_view policy_name, DispatcherOptions options = {});

  // Chooses the back-end for `head` (looked up by head.path) among its live
  // owners (ctx.alive); Unavailable if it has owners but none is alive.
  DispatchResult dispatch(const http::RequestHead& head, const DispatchContext& ctx);

  const ContentMap& map() const { return map_; }
  const Policy& policy() const { return *policy_; }
  const DispatcherOptions& options() const { return options_; }

 private:
  ContentMap map_;
  std::unique_ptr<Policy> policy_;
  DispatcherOptions options_;
  std::vector<BackendId> live_;  // scratch: the live owners of the current request
};

}  // namespace hl::dispatch
