// BackendId: the small integer naming a back-end inside one ContentMap.
#pragma once

#include <cstdint>

namespace hl::dispatch {

// Index of a back-end in a ContentMap's registry: 0, 1, 2, ... in order of
// registration. Only meaningful together with that map.
using BackendId = std::uint32_t;

}  // namespace hl::dispatch
