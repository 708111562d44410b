#include "dispatch/content_map.h"

#include <algorithm>
#include <fstream>
#include <limits>
#include <sstream>

namespace hl::dispatch {

namespace {

constexpr std::size_t kMaxBackendNameLength = 64;
constexpr std::string_view kWhitespace = " \t\r";

bool valid_backend_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxBackendNameLength) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

std::string describe_line(std::size_t line, const std::string& message) {
  return line == 0 ? "content map: " + message : "content map line " + std::to_string(line) + ": " + message;
}

// Splits "a,b,c" into names; empty items are kept so they can be reported.
std::vector<std::string> split_owners(std::string_view list) {
  std::vector<std::string> out;
  while (true) {
    const std::size_t comma = list.find(',');
    out.emplace_back(list.substr(0, comma));
    if (comma == std::string_view::npos) break;
    list = list.substr(comma + 1);
  }
  return out;
}

}  // namespace

ContentMapError::ContentMapError(std::size_t line, const std::string& message)
    : std::runtime_error(describe_line(line, message)), line_(line), message_(message) {}

ContentMap ContentMap::parse(std::string_view text) {
  ContentMap map;
  map.add_text(text);
  return map;
}

ContentMap ContentMap::load(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw ContentMapError(0, "cannot open " + file.string());
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw ContentMapError(0, "cannot read " + file.string());
  try {
    return parse(text.str());
  } catch (const ContentMapError& e) {
    throw ContentMapError(e.line(), e.message() + " (in " + file.string() + ")");
  }
}

BackendId ContentMap::add_backend(std::string_view name) {
  if (auto it = ids_.find(name); it != ids_.end()) return it->second;
  if (!valid_backend_name(name)) {
    throw ContentMapError(0, "invalid back-end name '" + std::string(name) +
                                 "' (expected 1-64 of [A-Za-z0-9._-])");
  }
  const auto id = static_cast<BackendId>(names_.size());
  names_.emplace_back(name);
  ids_.emplace(std::string(name), id);
  return id;
}

void ContentMap::add_text(std::string_view text) {
  std::size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    const std::size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);

    line = line.substr(0, line.find('#'));
    std::vector<std::string_view> fields;
    while (true) {
      const std::size_t start = line.find_first_not_of(kWhitespace);
      if (start == std::string_view::npos) break;
      line = line.substr(start);
      const std::size_t end = line.find_first_of(kWhitespace);
      fields.push_back(line.substr(0, end));
      line = end == std::string_view::npos ? std::string_view{} : line.substr(end);
    }
    if (fields.empty()) continue;
    if (fields.size() != 2) {
      throw ContentMapError(line_no, "expected '<path> <owner>[,<owner>...]', got " +
                                         std::to_string(fields.size()) + " field(s)");
    }
    const std::vector<std::string> owners = split_owners(fields[1]);
    if (fields[0] == "*") {
      if (default_.count != 0) throw ContentMapError(line_no, "second default ('*') line");
      default_ = append_owners(owners, line_no);
    } else {
      add_document_at(fields[0], owners, line_no);
    }
  }
}

void ContentMap::add_document(std::string_view path, std::span<const std::string> owners) {
  add_document_at(path, owners, 0);
}

void ContentMap::set_default(std::span<const std::string> owners) {
  default_ = owners.empty() ? OwnerRange{} : append_owners(owners, 0);
}

void ContentMap::add_document_at(std::string_view path, std::span<const std::string> owners,
                                 std::size_t line) {
  if (path.empty() || path.front() != '/') {
    throw ContentMapError(line, "path '" + std::string(path) + "' does not start with '/'");
  }
  if (path.find_first_of(" \t\r\n") != std::string_view::npos) {
    throw ContentMapError(line, "path contains whitespace");
  }
  if (documents_.find(path) != documents_.end()) {
    throw ContentMapError(line, "duplicate path '" + std::string(path) + "'");
  }
  const OwnerRange r = append_owners(owners, line);
  documents_.emplace(std::string(path), r);
}

ContentMap::OwnerRange ContentMap::append_owners(std::span<const std::string> owners, std::size_t line) {
  if (owners.empty()) throw ContentMapError(line, "no owners");
  std::vector<BackendId> ids;
  ids.reserve(owners.size());
  for (const std::string& name : owners) {
    if (!valid_backend_name(name)) {
      throw ContentMapError(line, "invalid back-end name '" + name + "' (expected 1-64 of [A-Za-z0-9._-])");
    }
    const BackendId id = add_backend(name);
    if (std::find(ids.begin(), ids.end(), id) != ids.end()) {
      throw ContentMapError(line, "owner '" + name + "' listed twice");
    }
    ids.push_back(id);
  }
  if (owners_.size() + ids.size() > std::numeric_limits<std::uint32_t>::max()) {
    throw ContentMapError(line, "too many owner entries");
  }
  const OwnerRange r{static_cast<std::uint32_t>(owners_.size()), static_cast<std::uint32_t>(ids.size())};
  owners_.insert(owners_.end(), ids.begin(), ids.end());
  return r;
}

std::span<const BackendId> ContentMap::range(OwnerRange r) const {
  return std::span<const BackendId>(owners_).subspan(r.offset, r.count);
}

std::span<const BackendId> ContentMap::owners(std::string_view path) const {
  const auto it = documents_.find(path);
  return it != documents_.end() ? range(it->second) : range(default_);
}

std::span<const BackendId> ContentMap::document_owners(std::string_view path) const {
  const auto it = documents_.find(path);
  return it != documents_.end() ? range(it->second) : std::span<const BackendId>{};
}

bool ContentMap::contains(std::string_view path) const { return documents_.find(path) != documents_.end(); }

std::span<const BackendId> ContentMap::default_owners() const { return range(default_); }

std::vector<std::string> ContentMap::documents_owned_by(BackendId id) const {
  std::vector<std::string> out;
  for (const auto& [path, owners] : documents_) {
    const std::span<const BackendId> r = range(owners);
    if (std::find(r.begin(), r.end(), id) != r.end()) out.push_back(path);
  }
  return out;
}

std::optional<BackendId> ContentMap::backend_id(std::string_view name) const {
  const auto it = ids_.find(name);
  if (it == ids_.end()) return std::nullopt;
  return it->second;
}

const std::string& ContentMap::backend_name(BackendId id) const { return names_.at(id); }

}  // namespace hl::dispatch
