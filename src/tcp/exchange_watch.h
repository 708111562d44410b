// ExchangeWatch: one carried connection's two byte streams as its serving node
// sees them, in the client's sequence numbers: the requests its server received
// and the responses it sent. It finds the quiet point of a move (control::Release):
// every request answered completely and all of it acknowledged by the client.
// Requests are delimited by http::RequestStream (their kinds feed the framer),
// responses by http::ResponseFramer. Bytes may come in any order, repeated or
// overlapping (retransmissions, GSO super-packets, copies from BPF): each
// stream is reassembled in a bounded out-of-order store.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>

#include "http/request_parser.h"

namespace hl::tcp {

class ExchangeWatch {
 public:
  // Bytes each stream's out-of-order store holds at most (beyond: broken()).
  static constexpr std::size_t kDefaultMaxStoreBytes = 256 * 1024;
  // Segments each store holds at most (beyond: broken()).
  static constexpr std::size_t kMaxStoreSegments = 256;

  // The client's stream starts at `client_next` (the hand-in's first request
  // byte), the server's at `server_next` (its first response byte).
  ExchangeWatch(uint32_t client_next, uint32_t server_next, http::Limits limits = {},
                std::size_t max_store_bytes = kDefaultMaxStoreBytes);
  ~ExchangeWatch();
  // A moved-from watch may only be assigned to or destroyed.
  ExchangeWatch(ExchangeWatch&&) noexcept;
  ExchangeWatch& operator=(ExchangeWatch&&) noexcept;

  // Starts over, as if just constructed with these arguments (the same limits),
  // keeping the memory it holds: a carrier may reuse watches of freed connections.
  void reset(uint32_t client_next, uint32_t server_next);

  // Client bytes at `seq` / server bytes at `seq` (client's view). Bytes before
  // the contiguous end are ignored (repeats); bytes after it wait in the store,
  // except that a gap lying wholly in a body (see *_needed_from) is skipped.
  void on_client(uint32_t seq, std::span<const uint8_t> payload);
  void on_server(uint32_t seq, std::span<const uint8_t> payload);
  // The client acknowledged the server's bytes up to `ack`.
  void on_client_ack(uint32_t ack);

  // Request heads received (in order) and final responses completed so far.
  uint64_t requests() const;
  uint64_t answered() const;
  // The end of the contiguous server bytes seen (client's view).
  uint32_t server_next() const;
  // The end of the contiguous client bytes seen.
  uint32_t client_next() const;
  // The latest client ack seen (starts at the server stream's start).
  uint32_t acked() const;
  // Quiet for a move: at least `requests` requests received, every received
  // request answered completely, no request or response byte outstanding, and
  // every server byte acknowledged (by an ack seen or `client_ack`). Never
  // when broken() or when a request said it is the last (Connection: close).
  bool quiet(uint32_t requests, uint32_t client_ack) const;
  // Where the client's next request begins: the contiguous end of its bytes,
  // when it lies between two requests (every request received is whole, nothing
  // stored beyond it). nullopt inside a request, after a last request
  // (Connection: close), or when broken(). A new origin reads on from there (a
  // takeover, control::TakeoverStream).
  std::optional<uint32_t> next_request() const;
  // Framing is lost (not HTTP, a limit exceeded, a tunnel, the store
  // overflowed): no quiet point can be found any more.
  bool broken() const;
  // Bytes before these positions need not be seen (a body skipped by its
  // length): a copier may leave them out. The client's bytes are parsed lazily
  // (most connections carry one request and never move: its method token is
  // enough): until a second response starts, a gap shows, 2 KiB are kept, or
  // requests(), broken() or quiet() is called, client_needed_from() is the
  // contiguous end.
  uint32_t client_needed_from() const;
  uint32_t server_needed_from() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hl::tcp
