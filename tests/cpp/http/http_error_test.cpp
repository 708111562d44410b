#include "http/http_error.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace hl::http {
namespace {

constexpr HttpError kAll[] = {
    HttpError::None,          HttpError::HeadTooLarge,  HttpError::TooManyHeaders,
    HttpError::TargetTooLong, HttpError::NonHttp,       HttpError::BadRequestLine,
    HttpError::BadMethod,     HttpError::BadVersion,    HttpError::BadTarget,
    HttpError::BadHeaderLine, HttpError::DuplicateHost, HttpError::MissingHost,
    HttpError::BadHost,       HttpError::BadContentLength, HttpError::ServiceUnavailable,
};

TEST(HttpError, NamesAreDistinctAndKnown) {
  std::set<std::string> names;
  for (HttpError e : kAll) {
    const std::string name(to_string(e));
    EXPECT_NE(name, "Unknown");
    EXPECT_TRUE(names.insert(name).second) << name;
  }
  EXPECT_EQ(to_string(HttpError::HeadTooLarge), "HeadTooLarge");
}

TEST(HttpError, StatusCodes) {
  struct Case {
    HttpError error;
    std::uint16_t status;
  };
  const Case cases[] = {
      {HttpError::None, 0},
      {HttpError::HeadTooLarge, 431},
      {HttpError::TooManyHeaders, 431},
      {HttpError::TargetTooLong, 414},
      {HttpError::BadVersion, 505},
      {HttpError::NonHttp, 400},
      {HttpError::BadRequestLine, 400},
      {HttpError::BadMethod, 400},
      {HttpError::BadTarget, 400},
      {HttpError::BadHeaderLine, 400},
      {HttpError::DuplicateHost, 400},
      {HttpError::MissingHost, 400},
      {HttpError::BadHost, 400},
      {HttpError::BadContentLength, 400},
      {HttpError::ServiceUnavailable, 503},
  };
  static_assert(std::size(cases) == std::size(kAll));
  for (const Case& c : cases) EXPECT_EQ(status_code(c.error), c.status) << to_string(c.error);
}

TEST(HttpErrorTest, ErrorResponseIsACompleteHttp11Response) {
  EXPECT_EQ(error_response(HttpError::MissingHost),
            "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(error_response(HttpError::HeadTooLarge).rfind("HTTP/1.1 431 Request Header Fields Too Large\r\n", 0), 0u);
  EXPECT_EQ(error_response(HttpError::TargetTooLong).rfind("HTTP/1.1 414 URI Too Long\r\n", 0), 0u);
  EXPECT_EQ(error_response(HttpError::BadVersion).rfind("HTTP/1.1 505 HTTP Version Not Supported\r\n", 0), 0u);
  EXPECT_EQ(error_response(HttpError::ServiceUnavailable).rfind("HTTP/1.1 503 Service Unavailable\r\n", 0), 0u);
}

}  // namespace
}  // namespace hl::http
