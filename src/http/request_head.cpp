#include "http/request_head.h"

namespace hl::http {

std::string_view to_string(Method m) {
  switch (m) {
    case Method::Get: return "GET";
    case Method::Head: return "HEAD";
    case Method::Post: return "POST";
    case Method::Put: return "PUT";
    case Method::Delete: return "DELETE";
    case Method::Options: return "OPTIONS";
    case Method::Other: return "OTHER";
  }
  return "OTHER";
}

Method method_from_token(std::string_view token) {
  if (token == "GET") return Method::Get;
  if (token == "HEAD") return Method::Head;
  if (token == "POST") return Method::Post;
  if (token == "PUT") return Method::Put;
  if (token == "DELETE") return Method::Delete;
  if (token == "OPTIONS") return Method::Options;
  return Method::Other;
}

std::string_view to_string(HttpVersion v) {
  switch (v) {
    case HttpVersion::Http10: return "HTTP/1.0";
    case HttpVersion::Http11: return "HTTP/1.1";
  }
  return "HTTP/1.1";
}

namespace {

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

std::optional<std::string_view> cookie_value(std::string_view cookie_header, std::string_view name) {
  while (!cookie_header.empty()) {
    const std::size_t semi = cookie_header.find(';');
    std::string_view pair = cookie_header.substr(0, semi);
    cookie_header = semi == std::string_view::npos ? std::string_view{} : cookie_header.substr(semi + 1);
    pair = trim_ows(pair);
    const std::size_t eq = pair.find('=');
    if (eq == std::string_view::npos) continue;
    if (trim_ows(pair.substr(0, eq)) != name) continue;
    std::string_view value = trim_ows(pair.substr(eq + 1));
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
      value = value.substr(1, value.size() - 2);
    }
    return value;
  }
  return std::nullopt;
}

std::optional<std::string_view> RequestHead::cookie_value(std::string_view name) const {
  return http::cookie_value(cookie, name);
}

}  // namespace hl::http
