#include "http/response_frame.h"

namespace hl::http {

std::string_view to_string(FramingError e) {
  switch (e) {
    case FramingError::None: return "None";
    case FramingError::NoRequest: return "NoRequest";
    case FramingError::HeadTooLarge: return "HeadTooLarge";
    case FramingError::LineTooLong: return "LineTooLong";
    case FramingError::TooManyHeaders: return "TooManyHeaders";
    case FramingError::TooManyInterim: return "TooManyInterim";
    case FramingError::NotHttp: return "NotHttp";
    case FramingError::BadStatusLine: return "BadStatusLine";
    case FramingError::BadVersion: return "BadVersion";
    case FramingError::BadHeaderLine: return "BadHeaderLine";
    case FramingError::BadContentLength: return "BadContentLength";
    case FramingError::BadTransferEncoding: return "BadTransferEncoding";
    case FramingError::BadChunkSize: return "BadChunkSize";
    case FramingError::ChunkSizeTooLong: return "ChunkSizeTooLong";
    case FramingError::BadChunkEnd: return "BadChunkEnd";
    case FramingError::TrailerTooLarge: return "TrailerTooLarge";
    case FramingError::Truncated: return "Truncated";
  }
  return "Unknown";
}

std::string_view to_string(RequestKind k) {
  switch (k) {
    case RequestKind::Normal: return "Normal";
    case RequestKind::Head: return "Head";
    case RequestKind::Connect: return "Connect";
  }
  return "Normal";
}

RequestKind request_kind_from_token(std::string_view method) {
  if (method == "HEAD") return RequestKind::Head;
  if (method == "CONNECT") return RequestKind::Connect;
  return RequestKind::Normal;
}

std::string_view to_string(BodyFraming f) {
  switch (f) {
    case BodyFraming::None: return "None";
    case BodyFraming::ContentLength: return "ContentLength";
    case BodyFraming::Chunked: return "Chunked";
    case BodyFraming::UntilClose: return "UntilClose";
    case BodyFraming::Tunnel: return "Tunnel";
  }
  return "None";
}

}  // namespace hl::http
