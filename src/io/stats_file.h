// Stats file: counters as one flat JSON object, written atomically (tmp + rename).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace hl::io {

// One flat JSON object: string fields first, then integer counters, in order.
struct StatsDoc {
  std::vector<std::pair<std::string, std::string>> strings;
  std::vector<std::pair<std::string, std::uint64_t>> counters;
};

// `s` as a JSON string literal (quotes included; control characters escaped).
std::string json_quote(const std::string& s);

// The JSON text of `doc`, e.g. {"role": "monitor", "packets_in": 3}, newline-terminated.
std::string format_stats_json(const StatsDoc& doc);

// Writes format_stats_json(doc) to `path` + ".tmp" then renames it over
// `path`, so readers see the old or the new file, never half of one. Returns
// false on failure (errno set); never throws on I/O errors.
bool write_stats_file(const std::string& path, const StatsDoc& doc);

}  // namespace hl::io
