// libFuzzer target: parse_tcp_options on an arbitrary options region; what parses
// must be self-consistent (offsets inside the region, values equal to the bytes
// they point at), and re-serializing the known options must parse back equal.
#include <cstddef>
#include <cstdint>
#include <span>

#include "net/byte_order.h"
#include "net/tcp_options.h"

using namespace hl::net;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > kMaxTcpOptionsLen) size = kMaxTcpOptionsLen;
  const std::span<const uint8_t> region(data, size);
  auto parsed = parse_tcp_options(region);
  TcpOptions into;
  const auto err = parse_tcp_options_into(region, into);
  if (parsed.ok() != !err.has_value()) __builtin_trap();  // the two entry points agree
  if (!parsed.ok()) {
    (void)to_string(parsed.error());
    return 0;
  }
  const TcpOptions& o = *parsed;
  if (o.timestamps) {
    if (size_t{o.timestamps_offset} + 8 > size) __builtin_trap();
    if (load_be32(data + o.timestamps_offset) != o.timestamps->tsval) __builtin_trap();
    if (load_be32(data + o.timestamps_offset + 4) != o.timestamps->tsecr) __builtin_trap();
  }
  if (o.sack_count > kMaxSackBlocks) __builtin_trap();
  if (o.sack_count > 0) {
    if (size_t{o.sack_offset} + 8 * size_t{o.sack_count} > size) __builtin_trap();
    for (size_t i = 0; i < o.sack_count; ++i) {
      if (load_be32(data + o.sack_offset + 8 * i) != o.sack[i].left) __builtin_trap();
    }
  }
  if (o.unknown_count > o.unknown.size()) __builtin_trap();
  for (size_t i = 0; i < o.unknown_count; ++i) {
    if (size_t{o.unknown[i].offset} + o.unknown[i].length > size) __builtin_trap();
  }
  // Re-serialize the options this parser understands and parse them back.
  TcpOptionWriter w;
  if (o.mss) w.mss(*o.mss);
  if (o.wscale) w.wscale(*o.wscale);
  if (o.sack_permitted) w.sack_permitted();
  if (o.timestamps) w.timestamps(o.timestamps->tsval, o.timestamps->tsecr);
  if (o.sack_count > 0 && w.size() + 2 + 8 * size_t{o.sack_count} <= kMaxTcpOptionsLen) {
    w.sack(std::span<const SackBlock>(o.sack.data(), o.sack_count));
  }
  const auto bytes = w.bytes();
  if (bytes.size() > kMaxTcpOptionsLen) return 0;  // the original was packed tighter
  auto again = parse_tcp_options(bytes);
  if (!again.ok()) __builtin_trap();
  if (again->mss != o.mss || again->wscale != o.wscale || again->sack_permitted != o.sack_permitted ||
      again->timestamps != o.timestamps) {
    __builtin_trap();
  }
  return 0;
}
