#include "tcp/exchange_watch.h"

#include <algorithm>
#include <map>
#include <optional>
#include <string_view>
#include <vector>

#include "http/request_stream.h"
#include "http/response_framer.h"
#include "tcp/seq.h"

namespace hl::tcp {

namespace {

// Bytes stored ahead of a stream's contiguous end further than this are not
// believed (a wild sequence number): they are ignored.
constexpr int64_t kMaxAhead = int64_t{1} << 30;

// Client bytes kept unparsed at most (then they are parsed, and every later byte
// as it comes).
constexpr std::size_t kMaxUnparsed = 2048;

// Stands in for body bytes that were skipped (never looked at by the parsers).
constexpr std::size_t kZeroBytes = 4096;
constexpr uint8_t kZeros[kZeroBytes] = {};

// One direction's reassembly: the contiguous end and the segments after it,
// keyed by stream offset (64-bit, so wrap-around never reorders them).
struct Reassembly {
  uint32_t start_seq = 0;
  uint64_t next_off = 0;  // stream offset of the next byte to deliver
  std::map<uint64_t, std::vector<uint8_t>> store;
  std::size_t stored = 0;  // bytes in `store`

  uint32_t next_seq() const { return start_seq + static_cast<uint32_t>(next_off); }
  // The stream offset of `seq`, relative to the contiguous end (may be negative).
  int64_t offset_of(uint32_t seq) const {
    return static_cast<int64_t>(next_off) + seq_diff(SeqNum(seq), SeqNum(next_seq()));
  }
  void clear() {
    store.clear();
    stored = 0;
  }
};

}  // namespace

struct ExchangeWatch::Impl {
  Impl(uint32_t client_next, uint32_t server_next, http::Limits l, std::size_t max_store)
      : limits(l), max_store_bytes(max_store), acked(server_next) {
    client.start_seq = client_next;
    server.start_seq = server_next;
  }

  void reset(uint32_t client_next, uint32_t server_next) {
    requests.reset();
    if (unparsed.capacity() > kMaxUnparsed / 2) std::vector<uint8_t>().swap(unparsed);
    unparsed.clear();
    announced = false;
    responses.reset();
    client.clear();
    server.clear();
    client.start_seq = client_next;
    server.start_seq = server_next;
    client.next_off = server.next_off = 0;
    acked = server_next;
    broken = closing = false;
  }

  // The client's bytes are parsed lazily: most connections carry one request,
  // whose kind (for the framer) its method token tells, and are never moved.
  // They are kept unparsed until a second response starts, a move asks, a gap
  // or kMaxUnparsed bytes come; from then on everything is parsed as it comes.
  http::Limits limits;
  std::optional<http::RequestStream> requests;  // once parsing started
  std::vector<uint8_t> unparsed;                // contiguous client bytes before that
  bool announced = false;                       // the first request's kind went to the framer unparsed
  http::ResponseFramer responses;
  Reassembly client;
  Reassembly server;
  std::size_t max_store_bytes;
  uint32_t acked;
  bool broken = false;
  bool closing = false;  // a request said it is the last

  void fail() {
    broken = true;
    client.clear();
    server.clear();
  }

  // Parses the bytes kept unparsed; parses everything from then on.
  void settle() {
    if (requests) return;
    requests.emplace(limits);
    parse_client(unparsed);
    unparsed.clear();  // (its capacity kept for reuse)
  }

  // Announces the first request's kind to the framer from its method token
  // (after any empty lines), once the token is complete.
  void announce_first() {
    std::size_t i = 0;
    while (i < unparsed.size() && (unparsed[i] == '\r' || unparsed[i] == '\n')) ++i;
    const std::size_t start = i;
    while (i < unparsed.size() && i - start <= http::kMaxMethodLength && unparsed[i] != ' ') ++i;
    if (i == unparsed.size()) return;  // not complete yet
    if (unparsed[i] != ' ' || i == start) {
      settle();  // not a method: the parser says what is wrong
      return;
    }
    const std::string_view token(reinterpret_cast<const char*>(unparsed.data() + start), i - start);
    if (!responses.expect(http::request_kind_from_token(token))) fail();
    announced = true;
  }

  // Contiguous client bytes: kept, or parsed.
  void deliver_client(std::span<const uint8_t> bytes) {
    if (requests) {
      parse_client(bytes);
      return;
    }
    if (unparsed.size() + bytes.size() > kMaxUnparsed) {
      settle();
      parse_client(bytes);
      return;
    }
    unparsed.insert(unparsed.end(), bytes.begin(), bytes.end());
    if (!announced) announce_first();
  }

  // A head parsed: its kind goes to the framer (unless announced unparsed).
  bool expect_parsed() {
    if (announced && requests->request().index == 0) return true;
    if (responses.expect(requests->request().kind)) return true;
    fail();
    return false;
  }

  // Feeds contiguous client bytes to the request stream, announcing each head
  // to the framer.
  void parse_client(std::span<const uint8_t> bytes) {
    while (!bytes.empty() && !broken) {
      const http::StreamStatus st = requests->feed(bytes);
      bytes = bytes.subspan(requests->last_consumed());
      switch (st) {
        case http::StreamStatus::NeedMore:
          return;
        case http::StreamStatus::Head:
          expect_parsed();
          break;
        case http::StreamStatus::Closing:
          // Consumes nothing more; its body (if any) is still this request's.
          expect_parsed();
          closing = true;
          return;
        case http::StreamStatus::Unframed:
        case http::StreamStatus::Error:
          fail();
          return;
      }
    }
  }

  void deliver_server(std::span<const uint8_t> bytes) {
    while (!bytes.empty() && !broken) {
      if (!requests && responses.pending() == 0 && responses.at_boundary()) {
        settle();  // a response beyond the announced one: the requests are needed
        if (broken) return;
      }
      const http::FrameStatus st = responses.feed(bytes);
      bytes = bytes.subspan(responses.last_consumed());
      switch (st) {
        case http::FrameStatus::NeedMore:
          return;
        case http::FrameStatus::ResponseComplete:
          break;
        case http::FrameStatus::UntilClose:
        case http::FrameStatus::Tunnel:
        case http::FrameStatus::Closed:
        case http::FrameStatus::Error:
          fail();
          return;
      }
    }
  }

  // Stream offsets before which bytes need not be seen.
  uint64_t client_skip_to() const {
    if (broken || closing || !requests || requests->requests() == 0) return client.next_off;
    const http::StreamRequest& r = requests->request();
    const uint64_t off = requests->offset();
    if (off == client.next_off && off >= r.head_end && off < r.end) return r.end;
    return client.next_off;
  }
  uint64_t server_skip_to() const {
    if (broken || responses.at_boundary()) return server.next_off;
    const http::ResponseFrame& f = responses.frame();
    const uint64_t off = responses.offset();
    if (off == server.next_off && f.framing == http::BodyFraming::ContentLength && f.end == 0 &&
        f.head_end > f.start && off >= f.head_end && off < f.head_end + f.body_bytes) {
      return f.head_end + f.body_bytes;
    }
    return server.next_off;
  }

  template <typename Deliver>
  void skip(Reassembly& r, uint64_t to, Deliver deliver) {
    while (r.next_off < to && !broken) {
      const std::size_t n = static_cast<std::size_t>(std::min<uint64_t>(to - r.next_off, kZeroBytes));
      r.next_off += n;
      (this->*deliver)(std::span<const uint8_t>(kZeros, n));
    }
  }

  template <typename Deliver>
  void on_bytes(Reassembly& r, uint32_t seq, std::span<const uint8_t> payload, Deliver deliver,
                uint64_t skip_to) {
    if (broken || payload.empty()) return;
    int64_t off = r.offset_of(seq);
    const int64_t end = off + static_cast<int64_t>(payload.size());
    const auto next = static_cast<int64_t>(r.next_off);
    if (end <= next) return;  // a repeat
    if (off > next && &r == &client && !requests) {
      settle();  // a gap: is it a body?
      if (broken) return;
      skip_to = client_skip_to();
    }
    if (off > next) {
      if (off > static_cast<int64_t>(skip_to)) {
        store(r, static_cast<uint64_t>(off), payload);
        return;
      }
      skip(r, static_cast<uint64_t>(off), deliver);  // the gap lies in a body
      if (broken) return;
    }
    const auto cut = static_cast<std::size_t>(static_cast<int64_t>(r.next_off) - off);
    r.next_off += payload.size() - cut;
    (this->*deliver)(payload.subspan(cut));
    drain(r, deliver);
  }

  void store(Reassembly& r, uint64_t off, std::span<const uint8_t> payload) {
    if (static_cast<int64_t>(off - r.next_off) > kMaxAhead) return;  // not believed
    auto it = r.store.find(off);
    if (it != r.store.end()) {
      if (it->second.size() >= payload.size()) return;  // already held
      r.stored -= it->second.size();
      r.store.erase(it);
    }
    if (r.stored + payload.size() > max_store_bytes || r.store.size() >= kMaxStoreSegments) {
      fail();
      return;
    }
    r.store.emplace(off, std::vector<uint8_t>(payload.begin(), payload.end()));
    r.stored += payload.size();
  }

  // Delivers the stored segments that the contiguous end has reached.
  template <typename Deliver>
  void drain(Reassembly& r, Deliver deliver) {
    while (!broken && !r.store.empty()) {
      auto it = r.store.begin();
      if (it->first > r.next_off) return;
      std::vector<uint8_t> bytes = std::move(it->second);
      const uint64_t off = it->first;
      r.stored -= bytes.size();
      r.store.erase(it);
      if (off + bytes.size() <= r.next_off) continue;
      const auto cut = static_cast<std::size_t>(r.next_off - off);
      r.next_off += bytes.size() - cut;
      (this->*deliver)(std::span<const uint8_t>(bytes).subspan(cut));
    }
  }
};

ExchangeWatch::ExchangeWatch(uint32_t client_next, uint32_t server_next, http::Limits limits,
                             std::size_t max_store_bytes)
    : impl_(std::make_unique<Impl>(client_next, server_next, limits, max_store_bytes)) {}
ExchangeWatch::~ExchangeWatch() = default;
ExchangeWatch::ExchangeWatch(ExchangeWatch&&) noexcept = default;
ExchangeWatch& ExchangeWatch::operator=(ExchangeWatch&&) noexcept = default;

void ExchangeWatch::reset(uint32_t client_next, uint32_t server_next) { impl_->reset(client_next, server_next); }

// The common case first: the next bytes in order, nothing stored.
void ExchangeWatch::on_client(uint32_t seq, std::span<const uint8_t> payload) {
  Impl& w = *impl_;
  if (w.broken) return;
  if (seq == w.client.next_seq() && w.client.store.empty()) {
    w.client.next_off += payload.size();
    w.deliver_client(payload);
    return;
  }
  w.on_bytes(w.client, seq, payload, &Impl::deliver_client, w.client_skip_to());
}

void ExchangeWatch::on_server(uint32_t seq, std::span<const uint8_t> payload) {
  Impl& w = *impl_;
  if (w.broken) return;
  if (seq == w.server.next_seq() && w.server.store.empty()) {
    w.server.next_off += payload.size();
    w.deliver_server(payload);
    return;
  }
  w.on_bytes(w.server, seq, payload, &Impl::deliver_server, w.server_skip_to());
}

void ExchangeWatch::on_client_ack(uint32_t ack) {
  if (seq_gt(SeqNum(ack), SeqNum(impl_->acked))) impl_->acked = ack;
}

uint64_t ExchangeWatch::requests() const {
  impl_->settle();
  return impl_->requests->requests();
}
uint64_t ExchangeWatch::answered() const { return impl_->responses.responses(); }
uint32_t ExchangeWatch::server_next() const { return impl_->server.next_seq(); }
uint32_t ExchangeWatch::client_next() const { return impl_->client.next_seq(); }
uint32_t ExchangeWatch::acked() const { return impl_->acked; }
bool ExchangeWatch::broken() const {
  impl_->settle();
  return impl_->broken;
}

bool ExchangeWatch::quiet(uint32_t requests, uint32_t client_ack) const {
  impl_->settle();
  const Impl& w = *impl_;
  if (w.broken || w.closing) return false;
  const uint64_t received = w.requests->requests();
  if (received < requests) return false;
  if (!w.requests->at_boundary() || !w.client.store.empty()) return false;
  if (w.responses.responses() < received || !w.responses.at_boundary() || !w.server.store.empty()) {
    return false;
  }
  const SeqNum end(w.server.next_seq());
  return seq_ge(SeqNum(w.acked), end) || seq_ge(SeqNum(client_ack), end);
}

std::optional<uint32_t> ExchangeWatch::next_request() const {
  impl_->settle();
  const Impl& w = *impl_;
  if (w.broken || w.closing || !w.requests->at_boundary() || !w.client.store.empty()) return std::nullopt;
  return w.client.next_seq();
}

uint32_t ExchangeWatch::client_needed_from() const {
  return impl_->client.start_seq + static_cast<uint32_t>(impl_->client_skip_to());
}

uint32_t ExchangeWatch::server_needed_from() const {
  return impl_->server.start_seq + static_cast<uint32_t>(impl_->server_skip_to());
}

}  // namespace hl::tcp
