// Why a request head was rejected, and the status code the engine answers with.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace hl::http {

// Every way a request head can be rejected. None means "no error".
enum class HttpError : std::uint8_t {
  None,                 // no error (the parser is Incomplete or Complete)
  HeadTooLarge,         // head longer than Limits::max_head_bytes          -> 431
  TooManyHeaders,       // more header lines than Limits::max_headers      -> 431
  TargetTooLong,        // request-target longer than Limits::max_target   -> 414
  NonHttp,              // the first bytes cannot start an HTTP method     -> 400
  BadRequestLine,       // request line not "METHOD SP target SP HTTP/d.d" -> 400
  BadMethod,            // method token longer than kMaxMethodLength        -> 400
  BadVersion,           // well-formed version other than HTTP/1.0 or 1.1  -> 505
  BadTarget,            // target not origin-, absolute- or asterisk-form   -> 400
  BadHeaderLine,        // header line not "name: value", obs-fold, CTLs   -> 400
  DuplicateHost,        // more than one Host header                       -> 400
  MissingHost,          // HTTP/1.1 request without a Host header          -> 400
  BadHost,              // Host (or absolute-form authority) malformed     -> 400
  BadContentLength,     // Content-Length not digits, conflicting, or with
                        // Transfer-Encoding (request smuggling guard)     -> 400
  ServiceUnavailable,   // not a parse error: the head is fine but no live
                        // back-end owns the content (failure handling)    -> 503
};

// A short stable name, e.g. "HeadTooLarge".
std::string_view to_string(HttpError e);

// The HTTP status code the engine should answer with (400, 414, 431, 503 or 505);
// 0 for HttpError::None.
std::uint16_t status_code(HttpError e);

// The whole response the engine sends before closing a connection whose head
// failed: "HTTP/1.1 <code> <reason>" with Content-Length: 0 and Connection: close.
std::string error_response(HttpError e);

}  // namespace hl::http
