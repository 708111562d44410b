#include "dispatch/content_map.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

namespace hl::dispatch {
namespace {

std::vector<BackendId> ids(std::span<const BackendId> s) { return {s.begin(), s.end()}; }

constexpr std::string_view kMap =
    "# documents of the default experiment\n"
    "/index.html   be1\n"
    "/img/logo.png be2,be1   # replicated; be2 listed first\n"
    "\n"
    "   \t\n"
    "/big.bin\tbe3\r\n"
    "/a/b.html be2\n";

TEST(ContentMap, ParsesDocumentsAndRegistersNamesInOrderOfFirstUse) {
  const ContentMap map = ContentMap::parse(kMap);
  EXPECT_EQ(map.document_count(), 4u);
  ASSERT_EQ(map.backend_count(), 3u);
  EXPECT_EQ(map.backend_names(), (std::vector<std::string>{"be1", "be2", "be3"}));
  EXPECT_EQ(map.backend_id("be2"), std::optional<BackendId>(1));
  EXPECT_EQ(map.backend_id("be9"), std::nullopt);
  EXPECT_EQ(map.backend_name(2), "be3");
  EXPECT_THROW((void)map.backend_name(3), std::out_of_range);

  EXPECT_EQ(ids(map.owners("/index.html")), (std::vector<BackendId>{0}));
  EXPECT_EQ(ids(map.owners("/img/logo.png")), (std::vector<BackendId>{1, 0}));
  EXPECT_EQ(ids(map.owners("/big.bin")), (std::vector<BackendId>{2}));  // CRLF line ending
  EXPECT_EQ(ids(map.owners("/a/b.html")), (std::vector<BackendId>{1}));
  EXPECT_TRUE(map.contains("/index.html"));
  EXPECT_FALSE(map.contains("/missing"));
}

TEST(ContentMap, ExactMatchOnly) {
  const ContentMap map = ContentMap::parse(kMap);
  for (std::string_view path : {"/index.htm", "/index.html/", "/INDEX.HTML", "index.html", "/", "",
                                "/img/logo.png?x", "/a/./b.html"}) {
    EXPECT_TRUE(map.owners(path).empty()) << path;
  }
}

TEST(ContentMap, DefaultOwnerSet) {
  ContentMap map = ContentMap::parse("/x be1\n* be2,be3\n");
  EXPECT_EQ(ids(map.owners("/unknown")), (std::vector<BackendId>{1, 2}));
  EXPECT_EQ(ids(map.default_owners()), (std::vector<BackendId>{1, 2}));
  EXPECT_TRUE(map.document_owners("/unknown").empty());
  EXPECT_EQ(ids(map.owners("/x")), (std::vector<BackendId>{0}));  // a document beats the default
  map.set_default({});
  EXPECT_TRUE(map.owners("/unknown").empty());
}

TEST(ContentMap, PreRegisteredBackendsFixTheIds) {
  ContentMap map;
  EXPECT_EQ(map.add_backend("be1"), 0u);
  EXPECT_EQ(map.add_backend("be2"), 1u);
  EXPECT_EQ(map.add_backend("be3"), 2u);
  EXPECT_EQ(map.add_backend("be2"), 1u);  // idempotent
  map.add_text("/only-on-3 be3\n/on-2 be2\n");
  EXPECT_EQ(ids(map.owners("/only-on-3")), (std::vector<BackendId>{2}));
  EXPECT_EQ(map.backend_count(), 3u);
  const std::vector<std::string> owners = {"be1", "be4"};
  map.add_document("/new", owners);
  EXPECT_EQ(ids(map.owners("/new")), (std::vector<BackendId>{0, 3}));
  EXPECT_THROW(map.add_backend("bad name"), ContentMapError);
}

struct BadMap {
  const char* description;
  std::string_view text;
  std::size_t line;
};

TEST(ContentMap, ErrorsNameTheLine) {
  const BadMap cases[] = {
      {"missing owners", "/a be1\n/b\n", 2},
      {"too many fields", "/a be1 be2\n", 1},
      {"relative path", "# c\n\na.html be1\n", 3},
      {"duplicate path", "/a be1\n/b be1\n/a be2\n", 3},
      {"empty owner item", "/a be1,,be2\n", 1},
      {"trailing comma", "/a be1,\n", 1},
      {"repeated owner", "/a be1,be2,be1\n", 1},
      {"bad owner name", "/a be/1\n", 1},
      {"owner name too long", "/a aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n", 1},
      {"second default", "* be1\n/a be1\n* be2\n", 3},
  };
  for (const BadMap& c : cases) {
    SCOPED_TRACE(c.description);
    try {
      (void)ContentMap::parse(c.text);
      ADD_FAILURE() << "no exception";
    } catch (const ContentMapError& e) {
      EXPECT_EQ(e.line(), c.line) << e.what();
      EXPECT_NE(std::string(e.what()).find("line " + std::to_string(c.line)), std::string::npos) << e.what();
    }
  }
}

TEST(ContentMap, EmptyTextIsAnEmptyMap) {
  const ContentMap map = ContentMap::parse("# nothing\n\n");
  EXPECT_EQ(map.document_count(), 0u);
  EXPECT_EQ(map.backend_count(), 0u);
  EXPECT_TRUE(map.owners("/").empty());
}

TEST(ContentMap, LoadFromFile) {
  const std::filesystem::path file =
      std::filesystem::temp_directory_path() / ("hl_content_map_test_" + std::to_string(::getpid()) + ".txt");
  {
    std::ofstream out(file);
    out << kMap;
  }
  const ContentMap map = ContentMap::load(file);
  EXPECT_EQ(map.document_count(), 4u);
  {
    std::ofstream out(file);
    out << "/a be1\n/a be1\n";
  }
  try {
    (void)ContentMap::load(file);
    ADD_FAILURE() << "no exception";
  } catch (const ContentMapError& e) {
    EXPECT_EQ(e.line(), 2u);
    EXPECT_NE(std::string(e.what()).find(file.string()), std::string::npos) << e.what();
  }
  std::filesystem::remove(file);
  EXPECT_THROW((void)ContentMap::load(file), ContentMapError);
}

TEST(ContentMap, ManyDocuments) {
  std::string text;
  for (int i = 0; i < 10000; ++i) text += "/doc/" + std::to_string(i) + " be" + std::to_string(i % 7) + "\n";
  const ContentMap map = ContentMap::parse(text);
  EXPECT_EQ(map.document_count(), 10000u);
  EXPECT_EQ(map.backend_count(), 7u);
  for (int i = 0; i < 10000; i += 997) {
    const auto owners = map.owners("/doc/" + std::to_string(i));
    ASSERT_EQ(owners.size(), 1u);
    EXPECT_EQ(map.backend_name(owners[0]), "be" + std::to_string(i % 7));
  }
}

}  // namespace
}  // namespace hl::dispatch
