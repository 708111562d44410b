// ContentMap: which back-ends own which document (the cluster's partition map).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "dispatch/backend_id.h"

namespace hl::dispatch {

// A content map text that cannot be loaded; what() names the line.
class ContentMapError : public std::runtime_error {
 public:
  ContentMapError(std::size_t line, const std::string& message);
  // 1-based line number of the offending line (0 when not about one line).
  std::size_t line() const { return line_; }
  // The message without the "content map line N: " prefix.
  const std::string& message() const { return message_; }

 private:
  std::size_t line_;
  std::string message_;
};

// Maps document paths to their owners (back-end ids), with a registry of
// back-end names. Text format, one entry per line:
//
//   # comment (also after an entry)          blank lines are ignored
//   /index.html     be1                      a document owned by one back-end
//   /img/logo.png   be1,be2                  a replicated document (owner order kept)
//   *               be1,be2,be3              the default owner set for unknown paths
//
// Paths start with '/' (or are exactly "*") and contain no whitespace; they
// match a request path exactly (case-sensitive, no decoding or normalisation).
// Back-end names are [A-Za-z0-9._-]{1,64}; a name gets an id on first use.
// Without a "*" line an unknown path has no owners (the dispatcher reports
// NotFound). Loading is setup code: it throws ContentMapError.
class ContentMap {
 public:
  // Parses `text` (the format above) into a new map.
  static ContentMap parse(std::string_view text);
  // Reads and parses a file; ContentMapError if unreadable or malformed.
  static ContentMap load(const std::filesystem::path& file);

  // Registers a back-end name (or returns its existing id). Call before
  // parsing or adding to fix the id order (e.g. be1 -> 0, be2 -> 1, ...).
  // Throws ContentMapError on an invalid name.
  BackendId add_backend(std::string_view name);
  // Adds the entries of `text` to this map (same rules as parse()).
  void add_text(std::string_view text);
  // Adds one document with its owner names; throws ContentMapError on a bad or
  // duplicate path, an empty owner list or a repeated owner.
  void add_document(std::string_view path, std::span<const std::string> owners);
  // Sets the default owner set for unknown paths (empty: none).
  void set_default(std::span<const std::string> owners);

  // Owners of `path` in file order: the document's if known, else the default
  // set, else empty. The span is valid until the map is next modified.
  std::span<const BackendId> owners(std::string_view path) const;
  // Owners of `path` only if it is a known document (no default).
  std::span<const BackendId> document_owners(std::string_view path) const;
  // True if `path` is a known document.
  bool contains(std::string_view path) const;
  // The known documents `id` owns (one of their owners), in no order; the
  // default owner set does not count.
  std::vector<std::string> documents_owned_by(BackendId id) const;
  // The default owner set (empty if none).
  std::span<const BackendId> default_owners() const;

  // Id of a registered back-end name.
  std::optional<BackendId> backend_id(std::string_view name) const;
  // Name of a registered back-end; throws std::out_of_range on a bad id.
  const std::string& backend_name(BackendId id) const;
  // All registered names, indexed by BackendId.
  const std::vector<std::string>& backend_names() const { return names_; }
  std::size_t backend_count() const { return names_.size(); }
  std::size_t document_count() const { return documents_.size(); }

 private:
  // A slice of owners_ (offset, count).
  struct OwnerRange {
    std::uint32_t offset = 0;
    std::uint32_t count = 0;
  };
  // Transparent hash so lookups by string_view do not allocate.
  struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };

  OwnerRange append_owners(std::span<const std::string> owners, std::size_t line);
  void add_document_at(std::string_view path, std::span<const std::string> owners, std::size_t line);
  std::span<const BackendId> range(OwnerRange r) const;

  std::vector<std::string> names_;  // BackendId -> name
  std::unordered_map<std::string, BackendId, StringHash, std::equal_to<>> ids_;
  std::unordered_map<std::string, OwnerRange, StringHash, std::equal_to<>> documents_;
  std::vector<BackendId> owners_;  // all owner lists, back to back
  OwnerRange default_;
};

}  // namespace hl::dispatch
