// libFuzzer target: control::decode on arbitrary bytes; whatever decodes must
// re-encode to a frame that decodes to the same message (and, for a canonical
// codec, to the same bytes).
#include <cstddef>
#include <cstdint>
#include <span>

#include "control/message.h"

using namespace hl::control;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto decoded = decode(std::span<const uint8_t>(data, size));
  if (!decoded.ok()) {
    (void)to_string(decoded.error());
    return 0;
  }
  const auto frame = encode(*decoded);
  auto again = decode(frame);
  if (!again.ok()) __builtin_trap();
  if (!(*again == *decoded)) __builtin_trap();
  if (encode(*again) != frame) __builtin_trap();
  return 0;
}
