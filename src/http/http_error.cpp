#include "http/http_error.h"

namespace hl::http {

std::string_view to_string(HttpError e) {
  switch (e) {
    case HttpError::None: return "None";
    case HttpError::HeadTooLarge: return "HeadTooLarge";
    case HttpError::TooManyHeaders: return "TooManyHeaders";
    case HttpError::TargetTooLong: return "TargetTooLong";
    case HttpError::NonHttp: return "NonHttp";
    case HttpError::BadRequestLine: return "BadRequestLine";
    case HttpError::BadMethod: return "BadMethod";
    case HttpError::BadVersion: return "BadVersion";
    case HttpError::BadTarget: return "BadTarget";
    case HttpError::BadHeaderLine: return "BadHeaderLine";
    case HttpError::DuplicateHost: return "DuplicateHost";
    case HttpError::MissingHost: return "MissingHost";
    case HttpError::BadHost: return "BadHost";
    case HttpError::BadContentLength: return "BadContentLength";
    case HttpError::ServiceUnavailable: return "ServiceUnavailable";
  }
  return "Unknown";
}

std::string error_response(HttpError e) {
  const std::uint16_t code = status_code(e) != 0 ? status_code(e) : 400;
  const char* reason = "Bad Request";
  switch (code) {
    case 414: reason = "URI Too Long"; break;
    case 431: reason = "Request Header Fields Too Large"; break;
    case 503: reason = "Service Unavailable"; break;
    case 505: reason = "HTTP Version Not Supported"; break;
    default: break;
  }
  return "HTTP/1.1 " + std::to_string(code) + " " + reason +
         "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
}

std::uint16_t status_code(HttpError e) {
  switch (e) {
    case HttpError::None: return 0;
    case HttpError::HeadTooLarge:
    case HttpError::TooManyHeaders: return 431;
    case HttpError::TargetTooLong: return 414;
    case HttpError::BadVersion: return 505;
    case HttpError::ServiceUnavailable: return 503;
    case HttpError::NonHttp:
    case HttpError::BadRequestLine:
    case HttpError::BadMethod:
    case HttpError::BadTarget:
    case HttpError::BadHeaderLine:
    case HttpError::DuplicateHost:
    case HttpError::MissingHost:
    case HttpError::BadHost:
    case HttpError::BadContentLength: return 400;
  }
  return 400;
}

}  // namespace hl::http
