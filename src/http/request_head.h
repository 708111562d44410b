// RequestHead: what the dispatcher needs from an HTTP/1.x request head.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace hl::http {

// The request method; anything not listed (PATCH, CONNECT, lowercase "get",
// ...) is Other and its text is in RequestHead::method.
enum class Method : std::uint8_t { Get, Head, Post, Put, Delete, Options, Other };

// "GET", ..., "OTHER".
std::string_view to_string(Method m);

// Maps a method token (case-sensitive, RFC 9110 §9.1) to Method.
Method method_from_token(std::string_view token);

// The protocol version; the parser accepts only these two (others: BadVersion).
enum class HttpVersion : std::uint8_t { Http10, Http11 };

// "HTTP/1.0" or "HTTP/1.1".
std::string_view to_string(HttpVersion v);

// A parsed request head. All strings are owned copies; none is percent-decoded.
struct RequestHead {
  std::string method;                        // method token as received, e.g. "GET"
  Method method_kind = Method::Other;        // method as an enum
  std::string target;                        // request-target exactly as received
  std::string path;                          // target up to '?': "/a/b.html"; for absolute-form
                                             //   "http://h/p" it is "/p" ("/" if empty); "*" for
                                             //   asterisk-form (OPTIONS only)
  std::string query;                         // text after the first '?', without it; "" if none
  HttpVersion version = HttpVersion::Http11;  // HTTP/1.0 or HTTP/1.1
  std::string host;                          // lowercased host without port: from the absolute-form
                                             //   authority if present, else the Host header; "" if none
  std::optional<std::uint16_t> port;         // explicit port from that authority, if any
  std::string cookie;                        // raw Cookie header value; several Cookie headers are
                                             //   joined with "; "; "" if none
  bool keep_alive = true;                    // persistent connection after this request: HTTP/1.1
                                             //   default yes, 1.0 default no; "Connection: close"
                                             //   wins over "keep-alive"
  std::optional<std::uint64_t> content_length;  // Content-Length in bytes, if present
  bool transfer_encoding = false;            // a Transfer-Encoding header was present
  std::size_t header_count = 0;              // number of header lines (not the request line)

  bool operator==(const RequestHead&) const = default;

  // The value of cookie `name` in `cookie` (quotes stripped), if present.
  std::optional<std::string_view> cookie_value(std::string_view name) const;
};

// The value of cookie `name` in a Cookie header value ("a=1; b=2"), if present.
// Names match case-sensitively; a double-quoted value is returned without quotes.
// The view points into `cookie_header`.
std::optional<std::string_view> cookie_value(std::string_view cookie_header, std::string_view name);

}  // namespace hl::http
