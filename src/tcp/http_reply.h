// The segment an engine answers a failed request head with: the whole HTTP error
// response (http::error_response) with ACK|PSH|FIN, from the VIP to the client.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "http/http_error.h"
#include "net/ipv4_addr.h"
#include "net/tcp_options.h"

namespace hl::tcp {

// `seq`: the server's next sequence number (ISN + 1 before any data), `ack`: the
// client's next one; `ts`: the timestamps option to carry, if negotiated.
std::vector<uint8_t> make_http_error_segment(net::Endpoint vip, net::Endpoint client, uint32_t seq, uint32_t ack,
                                             uint16_t window, std::optional<net::Timestamps> ts,
                                             http::HttpError error);

}  // namespace hl::tcp
