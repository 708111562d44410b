// An endpoint as the sockets API takes it, for live tests.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>

#include "net/ipv4_addr.h"

namespace hl::io::testing {

inline sockaddr_in to_sockaddr(net::Endpoint e) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(e.addr.value);
  a.sin_port = htons(e.port);
  return a;
}

}  // namespace hl::io::testing
