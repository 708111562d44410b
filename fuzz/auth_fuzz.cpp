// libFuzzer target: Authenticator::open on arbitrary bytes (never accepted unless
// sealed with the key), and seal -> open of arbitrary inner bytes round-trips once.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "control/auth.h"

using namespace hl::control;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<uint8_t> kKey(32, 0x42);
  uint64_t now_us = 1'700'000'000'000'000;
  auto clock = [&now_us] { return now_us; };
  Authenticator receiver(kKey, 1, clock);
  const std::span<const uint8_t> bytes(data, size);
  if (receiver.open(bytes).ok()) __builtin_trap();  // a forgery (2^-256)
  Authenticator sender(kKey, 2, clock);
  auto sealed = sender.seal(bytes);
  if (!sealed.ok()) return 0;  // too large
  auto inner = receiver.open(*sealed);
  if (!inner.ok() || *inner != std::vector<uint8_t>(bytes.begin(), bytes.end())) __builtin_trap();
  if (receiver.open(*sealed).ok()) __builtin_trap();  // the replay
  if (!sealed->empty()) {
    (*sealed)[size % sealed->size()] ^= 0x80;
    if (receiver.open(*sealed).ok()) __builtin_trap();  // tampered
  }
  return 0;
}
