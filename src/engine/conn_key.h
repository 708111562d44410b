// ConnKey: a client endpoint as a 64-bit hash-map key (the VIP side is fixed per engine).
#pragma once

#include <cstdint>

#include "net/ipv4_addr.h"

namespace hl::engine {

// (client address << 16) | client port.
inline uint64_t conn_key(net::Endpoint client) {
  return (uint64_t{client.addr.value} << 16) | client.port;
}

}  // namespace hl::engine
