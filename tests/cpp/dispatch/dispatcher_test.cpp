#include "dispatch/dispatcher.h"

#include <gtest/gtest.h>

#include <stdexcept>

namespace hl::dispatch {
namespace {

constexpr std::string_view kMap =
    "/one.html be1\n"
    "/two.html be2\n"
    "/both.html be1,be2\n"
    "/three.html be3\n";

http::RequestHead request(std::string path, std::string cookie = "") {
  http::RequestHead h;
  h.method = "GET";
  h.method_kind = http::Method::Get;
  h.path = std::move(path);
  h.cookie = std::move(cookie);
  return h;
}

TEST(Dispatcher, RoutesDocumentsToTheirOwner) {
  Dispatcher d(ContentMap::parse(kMap), "first");
  const DispatchContext ctx;
  EXPECT_EQ(d.dispatch(request("/one.html"), ctx), (DispatchResult{DispatchStatus::Document, 0, false}));
  EXPECT_EQ(d.dispatch(request("/two.html"), ctx), (DispatchResult{DispatchStatus::Document, 1, false}));
  EXPECT_EQ(d.dispatch(request("/three.html"), ctx), (DispatchResult{DispatchStatus::Document, 2, false}));
  EXPECT_EQ(d.map().backend_name(d.dispatch(request("/three.html"), ctx).backend), "be3");
  EXPECT_EQ(d.policy().name(), "first");
}

TEST(Dispatcher, UnknownPathIsNotFoundWithoutDefault) {
  Dispatcher d(ContentMap::parse(kMap), "round-robin");
  const DispatchResult r = d.dispatch(request("/nope.html"), {});
  EXPECT_EQ(r.status, DispatchStatus::NotFound);
  EXPECT_FALSE(r.found());
  EXPECT_EQ(to_string(r.status), "NotFound");
}

TEST(Dispatcher, UnknownPathUsesTheDefaultSet) {
  Dispatcher d(ContentMap::parse(std::string(kMap) + "* be2,be3\n"), "round-robin");
  const DispatchResult a = d.dispatch(request("/nope.html"), {});
  const DispatchResult b = d.dispatch(request("/nope.html"), {});
  EXPECT_EQ(a.status, DispatchStatus::Default);
  EXPECT_TRUE(a.found());
  EXPECT_EQ(a.backend, 1u);
  EXPECT_EQ(b.backend, 2u);
  EXPECT_EQ(d.dispatch(request("/one.html"), {}).status, DispatchStatus::Document);
}

TEST(Dispatcher, ReplicatedDocumentUsesThePolicy) {
  Dispatcher d(ContentMap::parse(kMap), "round-robin");
  EXPECT_EQ(d.dispatch(request("/both.html"), {}).backend, 0u);
  EXPECT_EQ(d.dispatch(request("/both.html"), {}).backend, 1u);
  EXPECT_EQ(d.dispatch(request("/both.html"), {}).backend, 0u);
}

TEST(Dispatcher, AffinityCookieWinsWhenItNamesAnOwner) {
  Dispatcher d(ContentMap::parse(kMap), "first", DispatcherOptions{.affinity_cookie = "HLBACKEND"});
  const DispatchContext ctx;
  EXPECT_EQ(d.dispatch(request("/both.html", "a=1; HLBACKEND=be2"), ctx),
            (DispatchResult{DispatchStatus::Document, 1, true}));
  // Not an owner of the document: the policy decides.
  EXPECT_EQ(d.dispatch(request("/one.html", "HLBACKEND=be2"), ctx),
            (DispatchResult{DispatchStatus::Document, 0, false}));
  // Unknown back-end name, or no cookie: the policy decides.
  EXPECT_EQ(d.dispatch(request("/both.html", "HLBACKEND=be9"), ctx).by_cookie, false);
  EXPECT_EQ(d.dispatch(request("/both.html"), ctx), (DispatchResult{DispatchStatus::Document, 0, false}));
}

TEST(Dispatcher, CookieIgnoredWithoutTheOption) {
  Dispatcher d(ContentMap::parse(kMap), "first");
  EXPECT_EQ(d.dispatch(request("/both.html", "HLBACKEND=be2"), {}).backend, 0u);
}

TEST(Dispatcher, SetupErrors) {
  EXPECT_THROW(Dispatcher(ContentMap{}, "nonsense"), std::invalid_argument);
  EXPECT_THROW(Dispatcher(ContentMap{}, std::unique_ptr<Policy>{}), std::invalid_argument);
}

}  // namespace
}  // namespace hl::dispatch
