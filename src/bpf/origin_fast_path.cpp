// OriginFastPath: io::FastPath over the origin program's map (see origin_fast_path.h).
#include "bpf/origin_fast_path.h"

#include <utility>

namespace hl::bpf {

void OriginFastPath::add(std::uint32_t client_addr, std::uint16_t client_port, std::uint32_t to) {
  io::IoStatus status =
      path_.map_forward({net::Endpoint{net::Ipv4Addr{client_addr}, client_port}, vip_}, net::Ipv4Addr{to});
  if (!status.ok() && pending_.ok()) pending_ = std::move(status);
}

bool OriginFastPath::add_without_payload(std::uint32_t client_addr, std::uint16_t client_port, std::uint32_t to) {
  io::IoStatus status = path_.map_forward({net::Endpoint{net::Ipv4Addr{client_addr}, client_port}, vip_},
                                          net::Ipv4Addr{to}, true);
  if (!status.ok() && pending_.ok()) pending_ = std::move(status);
  return true;
}

void OriginFastPath::remove(std::uint32_t client_addr, std::uint16_t client_port) {
  path_.unmap({net::Endpoint{net::Ipv4Addr{client_addr}, client_port}, vip_});  // none: fine
}

io::IoStatus OriginFastPath::flush() { return std::exchange(pending_, io::io_ok()); }

}  // namespace hl::bpf
