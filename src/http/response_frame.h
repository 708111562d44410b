// ResponseFrame: where one response lies in a server's stream, and how it is framed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "http/request_head.h"

namespace hl::http {

// Every way a response stream can be rejected. None means "no error". After
// any error the stream's framing is lost: the connection must be closed.
enum class FramingError : std::uint8_t {
  None,                 // no error
  NoRequest,            // response bytes while no request is pending
  HeadTooLarge,         // one head longer than FramerLimits::max_head_bytes
  LineTooLong,          // a head, trailer or chunk-size line longer than max_line_bytes
  TooManyHeaders,       // more header lines in one head than max_headers
  TooManyInterim,       // more 1xx interim responses before a final one than max_interim
  NotHttp,              // the first bytes of a response are not "HTTP/"
  BadStatusLine,        // not "HTTP/d.d SP 3DIGIT [SP reason]", or status < 100
  BadVersion,           // well-formed version other than HTTP/1.0 or 1.1
  BadHeaderLine,        // header or trailer line not "name: value", obs-fold, CTLs
  BadContentLength,     // Content-Length not digits, over 19 digits, or conflicting
  BadTransferEncoding,  // chunked applied twice, or Transfer-Encoding in HTTP/1.0
  BadChunkSize,         // chunk-size line not "HEX [BWS ; ext] CRLF"
  ChunkSizeTooLong,     // more than max_chunk_size_digits hex digits (overflow guard)
  BadChunkEnd,          // chunk data not followed by CRLF
  TrailerTooLarge,      // trailer section longer than max_trailer_bytes
  Truncated,            // the server closed inside a response that is not close-delimited
};

// A short stable name, e.g. "BadChunkSize".
std::string_view to_string(FramingError e);

// What the request a response answers implies for its framing (RFC 9112 §6.3).
enum class RequestKind : std::uint8_t {
  Normal,   // any method but HEAD and CONNECT
  Head,     // HEAD: the response has no body whatever its headers say
  Connect,  // CONNECT: a 2xx response turns the rest of the stream into a tunnel
};

// "Normal", "Head", "Connect".
std::string_view to_string(RequestKind k);

// Maps a method token (case-sensitive) to the kind of response it expects.
RequestKind request_kind_from_token(std::string_view method);

// How a final response's body is delimited.
enum class BodyFraming : std::uint8_t {
  None,           // no body: a response to HEAD, 204 or 304
  ContentLength,  // exactly body_bytes bytes (possibly 0) follow the head
  Chunked,        // chunked transfer coding (final coding), then trailers
  UntilClose,     // the body ends at the server's FIN (no length, or a non-chunked coding)
  Tunnel,         // 101 or a 2xx to CONNECT: the rest of the stream is not HTTP
};

// "None", "ContentLength", "Chunked", "UntilClose", "Tunnel".
std::string_view to_string(BodyFraming f);

// One final response (with the 1xx interim responses before it). Offsets count
// bytes of the server's stream from the first byte fed (0).
struct ResponseFrame {
  std::uint64_t start = 0;       // offset of its first byte (of the first interim head, if any)
  std::uint64_t head_end = 0;    // offset one past the final head's empty line
  std::uint64_t end = 0;         // offset one past its last byte (body and trailers); 0 until
                                 //   complete; == head_end without a body; for Tunnel the
                                 //   offset where the non-HTTP bytes start
  std::uint16_t status = 0;      // final status code (100..999)
  HttpVersion version = HttpVersion::Http11;
  BodyFraming framing = BodyFraming::None;
  RequestKind request = RequestKind::Normal;  // the request it answers
  std::uint64_t body_bytes = 0;  // body payload: Content-Length, or the sum of the chunk sizes
                                 //   (without chunk lines and trailers), or bytes until close
  std::size_t interim = 0;       // 1xx interim responses before the final head
  bool keep_alive = true;        // the server keeps the connection open after it: HTTP/1.1
                                 //   default yes, 1.0 default no, Connection: close/keep-alive
                                 //   decide; false for UntilClose and Tunnel

  bool operator==(const ResponseFrame&) const = default;
};

}  // namespace hl::http
