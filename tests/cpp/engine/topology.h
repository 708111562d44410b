// The cluster every engine test plays: its addresses (the lab's, see topologies/),
// the names the tests use, and the segments between the client, the VIP and a node.
#pragma once

#include <cstdint>
#include <utility>

#include "net/ipv4_addr.h"
#include "net/packet_builder.h"
#include "net/tcp_packet.h"

namespace hl::engine::testing {

using net::Endpoint;
using net::PacketBuilder;
using net::tcp_flag::ACK;
using net::tcp_flag::FIN;
using net::tcp_flag::PSH;
using net::tcp_flag::RST;
using net::tcp_flag::SYN;

// The virtual service the clients connect to.
inline constexpr Endpoint kVip{net::ipv4(10, 0, 100, 1), 80};
// The dedicated front-end of the frontend design (its own address, not the VIP).
inline constexpr net::Ipv4Addr kFe = net::ipv4(10, 0, 2, 2);
// The back-ends be1 and be2 of the frontend design...
inline constexpr net::Ipv4Addr kBe1 = net::ipv4(10, 0, 2, 11);
inline constexpr net::Ipv4Addr kBe2 = net::ipv4(10, 0, 2, 12);
// ...are the nodes a and b of the always and rare designs; c is a third node.
inline constexpr net::Ipv4Addr kA = kBe1;
inline constexpr net::Ipv4Addr kB = kBe2;
inline constexpr net::Ipv4Addr kC = net::ipv4(10, 0, 2, 13);
// The client (other ports of its address are other clients).
inline constexpr Endpoint kClient{net::ipv4(10, 0, 1, 11), 40000};
// An address that is no node of the cluster (a stray control message's sender).
inline constexpr net::Ipv4Addr kStranger = net::ipv4(10, 9, 9, 9);

// A segment from `client` to the VIP.
inline PacketBuilder from_client(Endpoint client) {
  return std::move(PacketBuilder().ipv4(client.addr, kVip.addr).tcp(client.port, kVip.port));
}
// A segment from port `port` of the client's address to the VIP.
inline PacketBuilder from_client(uint16_t port = kClient.port) { return from_client(Endpoint{kClient.addr, port}); }
// A segment from the web server (port 80) of `node`'s kernel to port `port` of the client's address.
inline PacketBuilder from_kernel(net::Ipv4Addr node, uint16_t port = kClient.port) {
  return std::move(PacketBuilder().ipv4(node, kClient.addr).tcp(80, port));
}

}  // namespace hl::engine::testing
