#include "http/request_head.h"

#include <gtest/gtest.h>

#include <optional>
#include <string_view>

namespace hl::http {
namespace {

TEST(Method, FromToken) {
  EXPECT_EQ(method_from_token("GET"), Method::Get);
  EXPECT_EQ(method_from_token("HEAD"), Method::Head);
  EXPECT_EQ(method_from_token("POST"), Method::Post);
  EXPECT_EQ(method_from_token("PUT"), Method::Put);
  EXPECT_EQ(method_from_token("DELETE"), Method::Delete);
  EXPECT_EQ(method_from_token("OPTIONS"), Method::Options);
  EXPECT_EQ(method_from_token("get"), Method::Other);  // methods are case-sensitive
  EXPECT_EQ(method_from_token("PATCH"), Method::Other);
  EXPECT_EQ(method_from_token(""), Method::Other);
  EXPECT_EQ(to_string(Method::Delete), "DELETE");
  EXPECT_EQ(to_string(HttpVersion::Http10), "HTTP/1.0");
}

TEST(CookieValue, Table) {
  struct Case {
    const char* description;
    std::string_view header;
    std::string_view name;
    std::optional<std::string_view> expected;
  };
  const Case cases[] = {
      {"single", "a=1", "a", "1"},
      {"middle of three", "a=1; b=2; c=3", "b", "2"},
      {"last", "a=1; b=2; c=3", "c", "3"},
      {"absent", "a=1; b=2", "c", std::nullopt},
      {"empty header", "", "a", std::nullopt},
      {"prefix of a name does not match", "backend=be1", "back", std::nullopt},
      {"suffix of a name does not match", "xbackend=be1", "backend", std::nullopt},
      {"case-sensitive", "Backend=be1", "backend", std::nullopt},
      {"quoted value", "hl=\"be2\"", "hl", "be2"},
      {"empty value", "a=; b=2", "a", ""},
      {"no spaces", "a=1;b=2", "b", "2"},
      {"extra spaces", "  a = 1 ;  b=2  ", "a", "1"},
      {"value with '='", "tok=ab==; x=1", "tok", "ab=="},
      {"first occurrence wins", "a=1; a=2", "a", "1"},
      {"pair without '=' skipped", "junk; a=1", "a", "1"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(cookie_value(c.header, c.name), c.expected) << c.description;
  }
}

TEST(CookieValue, Member) {
  RequestHead head;
  head.cookie = "sid=42; HLBACKEND=be3";
  EXPECT_EQ(head.cookie_value("HLBACKEND"), std::optional<std::string_view>("be3"));
  EXPECT_EQ(head.cookie_value("nope"), std::nullopt);
}

}  // namespace
}  // namespace hl::http
