#include "net/tcp_options.h"

#include <stdexcept>

#include "net/byte_order.h"

namespace hl::net {

const char* to_string(OptionError error) {
  switch (error) {
    case OptionError::Truncated: return "option truncated";
    case OptionError::BadLength: return "option length invalid";
    case OptionError::Duplicate: return "option duplicated";
  }
  return "unknown option error";
}

namespace {
// Expected total length of a fixed-size known option, 0 when variable or unknown.
uint8_t fixed_length(uint8_t kind) {
  switch (kind) {
    case tcp_option_kind::kMss: return 4;
    case tcp_option_kind::kWindowScale: return 3;
    case tcp_option_kind::kSackPermitted: return 2;
    case tcp_option_kind::kTimestamps: return 10;
    default: return 0;
  }
}
}  // namespace

Result<TcpOptions, OptionError> parse_tcp_options(std::span<const uint8_t> region) {
  TcpOptions out;
  if (auto error = parse_tcp_options_into(region, out)) return Err(*error);
  return out;
}

std::optional<OptionError> parse_tcp_options_into(std::span<const uint8_t> region,
                                                  TcpOptions& out) {
  if (region.size() > 255) return OptionError::Truncated;
  const uint8_t* p = region.data();
  const size_t n = region.size();
  size_t i = 0;
  // Linux puts NOP NOP TS first on every segment of a timestamped connection:
  // taken in one step, with the outcome of the loop below on those 12 bytes.
  if (n >= 12 && load_be32(p) == 0x0101080au) {
    out.timestamps = Timestamps{load_be32(p + 4), load_be32(p + 8)};
    out.timestamps_offset = 4;
    i = 12;
  }
  while (i < n) {
    const uint8_t kind = p[i];
    if (kind == tcp_option_kind::kEol) break;
    if (kind == tcp_option_kind::kNop) {
      ++i;
      continue;
    }
    if (i + 1 >= n) return OptionError::Truncated;
    const uint8_t len = p[i + 1];
    if (len < 2) return OptionError::BadLength;
    if (i + len > n) return OptionError::Truncated;
    const uint8_t want = fixed_length(kind);
    if (want != 0 && len != want) return OptionError::BadLength;
    const uint8_t* body = p + i + 2;
    switch (kind) {
      case tcp_option_kind::kMss:
        if (out.mss) return OptionError::Duplicate;
        out.mss = load_be16(body);
        break;
      case tcp_option_kind::kWindowScale:
        if (out.wscale) return OptionError::Duplicate;
        out.wscale = body[0];
        break;
      case tcp_option_kind::kSackPermitted:
        if (out.sack_permitted) return OptionError::Duplicate;
        out.sack_permitted = true;
        break;
      case tcp_option_kind::kTimestamps:
        if (out.timestamps) return OptionError::Duplicate;
        out.timestamps = Timestamps{load_be32(body), load_be32(body + 4)};
        out.timestamps_offset = static_cast<uint8_t>(i + 2);
        break;
      case tcp_option_kind::kSack: {
        const size_t blocks = (len - 2u) / 8u;
        if ((len - 2u) % 8u != 0 || blocks == 0 || blocks > kMaxSackBlocks) {
          return OptionError::BadLength;
        }
        if (out.sack_count != 0) return OptionError::Duplicate;
        for (size_t b = 0; b < blocks; ++b) {
          out.sack[b] = SackBlock{load_be32(body + 8 * b), load_be32(body + 8 * b + 4)};
        }
        out.sack_count = static_cast<uint8_t>(blocks);
        out.sack_offset = static_cast<uint8_t>(i + 2);
        break;
      }
      default:
        // At most n / 2 options of length >= 2 fit, so the array cannot overflow.
        out.unknown[out.unknown_count++] =
            RawOption{kind, static_cast<uint8_t>(i), len};
        break;
    }
    i += len;
  }
  return std::nullopt;
}

TcpOptionWriter& TcpOptionWriter::nop() {
  bytes_.push_back(tcp_option_kind::kNop);
  return *this;
}

TcpOptionWriter& TcpOptionWriter::mss(uint16_t value) {
  bytes_.insert(bytes_.end(), {tcp_option_kind::kMss, 4, static_cast<uint8_t>(value >> 8),
                               static_cast<uint8_t>(value)});
  return *this;
}

TcpOptionWriter& TcpOptionWriter::wscale(uint8_t shift) {
  bytes_.insert(bytes_.end(), {tcp_option_kind::kWindowScale, 3, shift});
  return *this;
}

TcpOptionWriter& TcpOptionWriter::sack_permitted() {
  bytes_.insert(bytes_.end(), {tcp_option_kind::kSackPermitted, 2});
  return *this;
}

TcpOptionWriter& TcpOptionWriter::timestamps(uint32_t tsval, uint32_t tsecr) {
  const size_t at = bytes_.size();
  bytes_.resize(at + 10);
  bytes_[at] = tcp_option_kind::kTimestamps;
  bytes_[at + 1] = 10;
  store_be32(&bytes_[at + 2], tsval);
  store_be32(&bytes_[at + 6], tsecr);
  return *this;
}

TcpOptionWriter& TcpOptionWriter::sack(std::span<const SackBlock> blocks) {
  if (blocks.empty() || blocks.size() > kMaxSackBlocks) {
    throw std::length_error("TcpOptionWriter::sack: 1 to 4 blocks");
  }
  const size_t at = bytes_.size();
  bytes_.resize(at + 2 + 8 * blocks.size());
  bytes_[at] = tcp_option_kind::kSack;
  bytes_[at + 1] = static_cast<uint8_t>(2 + 8 * blocks.size());
  for (size_t b = 0; b < blocks.size(); ++b) {
    store_be32(&bytes_[at + 2 + 8 * b], blocks[b].left);
    store_be32(&bytes_[at + 6 + 8 * b], blocks[b].right);
  }
  return *this;
}

TcpOptionWriter& TcpOptionWriter::raw(uint8_t kind, std::span<const uint8_t> data) {
  if (data.size() > kMaxTcpOptionsLen - 2) throw std::length_error("TcpOptionWriter::raw: too long");
  bytes_.push_back(kind);
  bytes_.push_back(static_cast<uint8_t>(2 + data.size()));
  bytes_.insert(bytes_.end(), data.begin(), data.end());
  return *this;
}

std::vector<uint8_t> TcpOptionWriter::bytes() const {
  std::vector<uint8_t> out = bytes_;
  while (out.size() % 4 != 0) out.push_back(tcp_option_kind::kNop);
  return out;
}

}  // namespace hl::net
